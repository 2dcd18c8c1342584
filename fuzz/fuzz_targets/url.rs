//! The URL policy (`nd::url::public_https`) on any text, or on any text after `https://`
//! when it starts with `!`. It must not panic, and every URL it accepts must be public by
//! this target's own, simpler reading: https, at most 256 bytes, no blanks, no user info, a
//! valid port; a bracketed host is an IPv6 address by `std::net` in 2000::/3 and globally
//! reachable; a host WHATWG reads as IPv4 (its last label a number) is parsed here part by
//! part and must be globally reachable; any other host is a name of two or more labels
//! outside the special-use domains; and no query key, decoded as Go decodes it, is a
//! Subsonic credential.
#![no_main]
#![feature(ip)]
use libfuzzer_sys::fuzz_target;
use nd::url::public_https;
use std::net::{Ipv4Addr, Ipv6Addr};

const SPECIAL: [&str; 10] = ["localhost", "local", "lan", "home.arpa", "internal", "intranet", "corp", "home", "private", "example"];
const CREDENTIALS: [&str; 6] = ["u", "t", "s", "p", "apiKey", "jwt"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let url = match text.strip_prefix('!') {
        Some(rest) => format!("https://{rest}"),
        None => text.to_string(),
    };
    if public_https(&url) {
        check(&url);
    }
});

fn check(url: &str) {
    let rest = url.strip_prefix("https://").expect("not https");
    assert!(url.len() <= 256, "too long");
    assert!(!url.bytes().any(|b| b.is_ascii_control() || b == b' '), "blank or control byte");
    let auth = rest.split(['/', '?', '#']).next().unwrap();
    assert!(!auth.contains(['@', '\\', '%']), "user info, backslash or escape in {auth:?}");
    let (host, port) = match auth.strip_prefix('[') {
        Some(r) => r.split_once(']').expect("no closing bracket"),
        None => auth.split_at(auth.find(':').unwrap_or(auth.len())),
    };
    if !port.is_empty() {
        let p = port.strip_prefix(':').expect("junk after the host");
        assert!(p.bytes().all(|b| b.is_ascii_digit()) && (p.is_empty() || p.parse::<u32>().is_ok_and(|n| n < 65536)), "port {p:?}");
    }
    if auth.starts_with('[') {
        let a: Ipv6Addr = host.parse().unwrap_or_else(|_| panic!("not IPv6: {host:?}"));
        assert!(public_v6(a), "non-public IPv6 {a}");
    } else {
        let h = host.to_ascii_lowercase();
        let h = h.strip_suffix('.').unwrap_or(&h);
        let labels: Vec<&str> = h.split('.').collect();
        let last = labels[labels.len() - 1];
        let number = !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || last.strip_prefix("0x").is_some_and(|x| x.bytes().all(|b| b.is_ascii_hexdigit())));
        if number {
            let a = whatwg_ipv4(&labels).unwrap_or_else(|| panic!("WHATWG rejects {h:?}"));
            assert!(public_v4(a), "non-public IPv4 {a} from {h:?}");
        } else {
            assert!(labels.len() >= 2 && labels.iter().all(|l| !l.is_empty()), "single label or empty label: {h:?}");
            assert!(h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "host characters: {h:?}");
            assert!(!SPECIAL.iter().any(|s| h == *s || h.ends_with(&format!(".{s}"))), "special-use name {h:?}");
        }
    }
    // Go's url.ParseQuery: pairs split at `&`, a pair with `;` skipped, keys unescaped.
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap();
    for pair in query.split('&').filter(|p| !p.contains(';')) {
        let key = pair.split('=').next().unwrap();
        if let Some(k) = go_unescape(key) {
            assert!(!CREDENTIALS.contains(&k.as_str()), "credential {k:?} in {url:?}");
        }
    }
}

/// The WHATWG URL Standard's IPv4 parser on the labels of a host ending in a number.
fn whatwg_ipv4(parts: &[&str]) -> Option<Ipv4Addr> {
    if parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut numbers = Vec::new();
    for p in parts {
        let (digits, radix) = if let Some(x) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            (x, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        let n = if digits.is_empty() { 0 } else { u64::from_str_radix(digits, radix).ok()? };
        if digits.starts_with('+') {
            return None;
        }
        numbers.push(n);
    }
    let (last, init) = numbers.split_last()?;
    if init.iter().any(|&n| n > 255) || *last >= 256u64.pow(5 - numbers.len() as u32) {
        return None;
    }
    let mut v = *last;
    for (i, n) in init.iter().enumerate() {
        v += n * 256u64.pow(3 - i as u32);
    }
    Some(Ipv4Addr::from(v as u32))
}

fn public_v4(a: Ipv4Addr) -> bool {
    let [x, y, ..] = a.octets();
    a.is_global()
        && !(a.is_private() || a.is_loopback() || a.is_link_local() || a.is_unspecified() || a.is_documentation() || a.is_multicast() || a.is_broadcast())
        && !(x == 0 || x >= 240 || x == 100 && (64..128).contains(&y) || x == 198 && (18..20).contains(&y))
}

fn public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    s[0] >> 13 == 1
        && a.is_global()
        && a.to_ipv4_mapped().is_none()
        && !(s[0] == 0x2001 && s[1] == 0xdb8)
        && !(s[0] == 0x64 && s[1] == 0xff9b)
        && !a.is_loopback()
        && !a.is_unspecified()
        && !a.is_unique_local()
        && !a.is_unicast_link_local()
        && !a.is_multicast()
}

/// Go's `url.QueryUnescape`: `+` is a blank, `%` needs two hex digits (else an error).
fn go_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok().filter(|_| !h.starts_with('+'))?);
                i += 3;
            }
            b'+' => (out.push(b' '), i += 1).1,
            c => (out.push(c), i += 1).1,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
