//! Which URLs may reach Discord, whose servers fetch the images and open the links: https,
//! no credentials, and a host that is public as a browser would read it. Hosts are read by
//! the WHATWG URL Standard's host parser (§3.5, "host parsing"): ASCII case-insensitive, one
//! trailing dot dropped, a name whose last label is a number is an IPv4 address in the
//! "IPv4 parser"'s 1–4 decimal, octal or `0x` hex parts (`0x7f.1`, `2130706433`), and
//! bracketed IPv6 may use `::`. What that parser rejects is rejected, and so are forms it
//! reads differently from other parsers or that no real host needs: backslashes, blanks,
//! percent-encoded or non-ASCII hosts, `::` for no group, zones and dotted IPv4 inside IPv6,
//! a last label starting with a digit that is no address. An address must be globally
//! reachable by the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890); a name
//! needs two labels and no special-use top-level domain. Byte slices only: no `std::net`,
//! no buffer, no Unicode tables.

use crate::text::uint;

/// Whether Discord's servers can fetch `url`: https, a public host, no user info, none of
/// Subsonic's `u`, `t`, `s`, `p`, `apiKey`, `jwt` query parameters (keys percent-decoded,
/// case-sensitive as Subsonic reads them), and within the 256 bytes external-assets accepts.
pub fn public_https(url: &str) -> bool {
    let b = url.as_bytes();
    // `https://` compared as one 8-byte number.
    let Some((p, rest)) = b.split_first_chunk() else { return false };
    if u64::from_le_bytes(*p) != u64::from_le_bytes(*b"https://") || b.len() > 256 {
        return false;
    }
    // No blanks nor control bytes (WHATWG drops tabs and newlines anywhere, joining what they
    // split; the host's own checks refuse them there). A key follows each `?` or `&` (`;` and
    // `#` count as `&`); the path before them is none. The authority ends at the first `/`,
    // `?` or `#`; the separators it may hold otherwise (`&`, `;`) are no host characters.
    let mut end = rest.len();
    let mut q = rest;
    while let [c, r @ ..] = q {
        if *c <= b' ' || *c == 127 || sep(*c) && listed(KEYS, r, 0) {
            return false;
        }
        if matches!(c, b'/' | b'?' | b'#') {
            end = end.min(rest.len() - q.len());
        }
        q = r;
    }
    rest.get(..end).and_then(public_authority).is_some()
}

/// `host[:port]` with a public host; user info (`@`) is no host character.
fn public_authority(auth: &[u8]) -> Option<()> {
    let bracket = auth.first() == Some(&b'[');
    let end = auth.iter().position(|&c| c == if bracket { b']' } else { b':' }).unwrap_or(auth.len());
    let (host, port) = auth.split_at(end);
    let port = if bracket { port.get(1..)? } else { port };
    match port {
        [] => {}
        [b':', p @ ..] if uint(p, 10) < 65536 => {}
        _ => return None,
    }
    if bracket {
        return public_v6(ipv6_top(host.get(1..)?)?);
    }
    let h = match host {
        [h @ .., b'.'] => h,
        h => h,
    };
    // Labels of letters, digits, `-` and `_`, none empty; each is an IPv4 part too, all
    // but the last (`dots` of them) bytes in `v`, `big` not 0 when one is no byte.
    let (mut tld, mut v, mut big, mut dots) = (0, 0u64, 0u64, 0u32);
    for (i, &c) in h.iter().enumerate() {
        if c == b'.' && i != tld {
            let x = part(h.get(tld..i)?);
            (v, big, dots, tld) = (v << 8 | x, big | x >> 8, dots + 1, i + 1);
        } else if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
            return None;
        }
    }
    match h.get(tld..)? {
        [] => None,
        // No top-level domain starts with a digit: such a name is an IPv4 address or
        // nothing; WHATWG's IPv4 parser takes 1–4 parts, the last filling the remaining bytes.
        t @ [b'0'..=b'9', ..] => {
            if dots > 3 || big != 0 {
                return None;
            }
            let (last, rest) = (part(t), 32 - 8 * dots);
            if last >> rest == 0 { public_v4((v << rest | last) as u32) } else { None }
        }
        t => (tld > 0 && !listed(SPECIAL, t, 0x20)).then_some(()),
    }
}

/// Not globally reachable (IANA IPv4 Special-Purpose Address Registry): this network,
/// private, shared (CGNAT), loopback, link-local, IETF protocol assignments, documentation,
/// 6to4 relay, benchmarking, multicast, reserved and broadcast: network | prefix length.
#[allow(clippy::identity_op)]
const V4: [u32; 14] = [
    0x0000_0000 | 8,
    0x0a00_0000 | 8,
    0x6440_0000 | 10,
    0x7f00_0000 | 8,
    0xa9fe_0000 | 16,
    0xac10_0000 | 12,
    0xc000_0000 | 24,
    0xc000_0200 | 24,
    0xc058_6300 | 24,
    0xc0a8_0000 | 16,
    0xc612_0000 | 15,
    0xc633_6400 | 24,
    0xcb00_7100 | 24,
    0xe000_0000 | 3,
];

/// `a` is a public IPv4 address.
fn public_v4(a: u32) -> Option<()> {
    V4.iter().all(|&n| (a ^ n) >> (32 - (n & 31)) != 0).then_some(())
}

/// `top`, the first 32 bits of an IPv6 address, is in global unicast 2000::/3 (outside it
/// all is special: ::1, fc00::/7, fe80::/10, multicast…) but not in the blocks the IANA IPv6
/// Special-Purpose Address Registry lists there: IETF protocol assignments 2001::/23,
/// documentation 2001:db8::/32 and 3fff::/20, and 6to4 2002::/16 (it embeds IPv4).
fn public_v6(top: u32) -> Option<()> {
    (top >> 29 == 1 && top >> 9 != 0x2001_0000 >> 9 && top != 0x2001_0db8 && top >> 16 != 0x2002 && top >> 12 != 0x3fff0).then_some(())
}

/// A query key (up to `=` or the next key, percent-decoded) or a label (ORed with `case`,
/// 0x20 for lower case) as one number: its last 8 bytes. 0 when a `%` is not followed by
/// two hex digits (Go's query parser then skips the key). Leading NULs aside, two words up
/// to 8 bytes long are equal as numbers only when they are equal.
fn word(s: &[u8], case: u8) -> u64 {
    let (mut w, mut i) = (0u64, 0);
    while let Some(&c) = s.get(i).filter(|&&c| c != b'=' && !sep(c)) {
        let c = match c {
            b'%' => match s.get(i + 1..i + 3).map_or(256, |h| uint(h, 16)) {
                x @ 0..=255 => (i += 2, x as u8).1,
                _ => return 0,
            },
            c => c | case,
        };
        (w, i) = (w << 8 | c as u64, i + 1);
    }
    w
}

/// Whether `list`, words each followed by a space (read by `word` too), holds the `word`
/// of `s`.
fn listed(list: &str, s: &[u8], case: u8) -> bool {
    let w = word(s, case);
    let mut l = list;
    while let Some((k, rest)) = crate::text::cut(l, b' ') {
        if word(k.as_bytes(), 0) == w {
            return true;
        }
        l = rest;
    }
    false
}

/// Where a query key ends and the next begins.
#[inline(never)]
fn sep(c: u8) -> bool {
    matches!(c, b'?' | b'&' | b';' | b'#')
}

/// Subsonic's credential parameters.
const KEYS: &str = "u t s p apiKey jwt ";

/// Special-use names no public resolver answers (RFC 6761, 6762 appendix G, 7686, 8375,
/// 9476, ICANN's `.internal`); all of `.arpa` is infrastructure, no web hosts.
const SPECIAL: &str = "localhost local lan arpa internal intranet corp home private test invalid example onion alt ";

/// An IPv4 part as WHATWG's IPv4 parser reads it: decimal, octal (`0` first) or hex (`0x`
/// first), 2^32 or more when it is none or does not fit 32 bits.
fn part(p: &[u8]) -> u64 {
    match p {
        [b'0', b'x' | b'X', d @ ..] => uint(d, 16),
        [b'0', d @ ..] => uint(d, 8),
        _ => uint(p, 10),
    }
}

/// The first 32 bits of an IPv6 address (WHATWG's IPv6 parser) that may be public: groups
/// of 1–4 hex digits, eight of them or one `::` standing for at least one zero group. The
/// address must be in global unicast 2000::/3, so its first group is written out; IPv4
/// tails, zones, and so IPv4-mapped, -compatible and NAT64 addresses are all rejected.
fn ipv6_top(s: &[u8]) -> Option<u32> {
    let (s, trailing) = match s {
        [s @ .., b':', b':'] => (s, 1),
        s => (s, 0),
    };
    let (mut top, mut n, mut gaps) = (0u32, 0u32, trailing);
    let mut rest = s;
    loop {
        let (g, r) = rest.split_at(rest.iter().position(|&c| c == b':').unwrap_or(rest.len()));
        gaps += g.is_empty() as u32;
        let v = uint(g, 16);
        if g.len() > 4 || v >> 16 != 0 {
            return None;
        }
        if n < 2 {
            top |= (v as u32) << (16 - 16 * n);
        }
        n += 1;
        // The groups between `:`s, as `split` yields them: one after a last `:`.
        let [_, r @ ..] = r else { break };
        rest = r;
    }
    (top >> 29 == 1 && !matches!(s, [.., b':']) && (gaps == 0 && n == 8 || gaps == 1 && n + trailing <= 8)).then_some(top)
}

#[cfg(test)]
mod tests {
    use super::public_https;

    /// (accepted, URL): every form that once slipped through, with the good URLs the plugin
    /// sends every day.
    const CASES: &[(bool, &str)] = &[
        // Public https URLs.
        (true, "https://i.scdn.co/image/x"),
        (true, "https://coverartarchive.org/release/76df3287-6cda-33eb-8e9a-044b5e15ffdd/front-500"),
        (true, "https://ia800505.us.archive.org/13/items/mbid-76df3287/mbid-76df3287-829890_thumb500.jpg"),
        (true, "https://example.com:8443/a"),
        (true, "https://example.com/a.jpg"),
        (true, "https://example.com"),
        (true, "https://example.com:/x"),
        (true, "https://nd.example.org:4533/share/img/x?size=300"),
        (true, "https://xn--bcher-kva.de/cover.jpg"),
        (true, "https://xn--n3h.com/"),
        (true, "https://my-host_1.a.b.c.example.net/"),
        (true, "https://EXAMPLE.Com/x"),
        (true, "https://example.com./x"),
        (true, "https://8.8.8.8/x"),
        (true, "https://1.1.1.1/"),
        (true, "https://0x08080808/"),
        (true, "https://8.8.2056/"),
        (true, "https://11.0.0.1/"),
        (true, "https://172.15.255.255/"),
        (true, "https://172.32.0.1/x"),
        (true, "https://100.128.0.1/"),
        (true, "https://198.20.0.1/"),
        (true, "https://223.255.255.255/"),
        (true, "https://[2606:4700::1111]/x"),
        (true, "https://[2a00:1450:4001:82a::200e]:443/"),
        (true, "https://example.com/x?user=alice&size=300"),
        (true, "https://example.com/x?U=1&apikey=2&JWT=3"),
        // Not https, no host, not a valid URL, or a form no real host needs.
        (false, "http://example.com/a.jpg"),
        (false, "https:///x"),
        (false, "https://"),
        (false, "https://:443/"),
        (false, "https://example.com:99999/"),
        (false, "https://example.com:8o/"),
        (false, "https://exa mple.com/"),
        (false, "https://exam\tple.com/"),
        (false, "https://example.com/\nx"),
        (false, "https://a..b.com/"),
        (false, "https://.example.com/"),
        (false, "https://example.com\\@127.0.0.1/"),
        (false, "https://256.0.0.1/"),
        (false, "https://1.2.3.4.5/"),
        (false, "https://09.1.2.3/"),
        (false, "https://example.123/"),
        (false, "https://[1:2:3:4:5:6:7:8:9]/"),
        (false, "https://[1::2::3]/"),
        (false, "https://[1::2:3:4:5:6:7:8]/"),
        (false, "https://[::1]x/"),
        (false, "https://ex%61mple.com/x"),
        (false, "https://[fe80::1%25eth0]/"),
        // Loopback, however it is written; IPv4 inside IPv6 is never accepted.
        (false, "https://localhost/x"),
        (false, "https://LOCALHOST:4533/x"),
        (false, "https://localhost./x"),
        (false, "https://nd.localhost/x"),
        (false, "https://%6c%6f%63%61%6c%68%6f%73%74/x"),
        (false, "https://127.0.0.1/x"),
        (false, "https://127.0.0.1./x"),
        (false, "https://127.0.0.%31/x"),
        (false, "https://127.1/x"),
        (false, "https://2130706433/x"),
        (false, "https://0x7f000001/x"),
        (false, "https://0X7F.1/x"),
        (false, "https://0177.0.0.1/x"),
        (false, "https://0/x"),
        (false, "https://0.0.0.0/x"),
        (false, "https://[::1]/x"),
        (false, "https://[0::1]/x"),
        (false, "https://[0:0:0:0:0:0:0:1]/x"),
        (false, "https://[::]/x"),
        (false, "https://[::ffff:127.0.0.1]/x"),
        (false, "https://[::ffff:7f00:1]/x"),
        (false, "https://[::127.0.0.1]/x"),
        (false, "https://[64:ff9b::7f00:1]/x"),
        (false, "https://[::ffff:8.8.8.8]/x"),
        (false, "https://[64:ff9b::808:808]/x"),
        // Private, shared, link-local, reserved, multicast, documentation.
        (false, "https://10.1.2.3/x"),
        (false, "https://012.1.2.3/x"),
        (false, "https://172.16.0.1/x"),
        (false, "https://172.31.255.255/x"),
        (false, "https://192.168.1.10:4533/x"),
        (false, "https://3232235777/x"),
        (false, "https://169.254.169.254/latest"),
        (false, "https://100.64.0.1/x"),
        (false, "https://100.127.255.255/x"),
        (false, "https://198.18.0.1/x"),
        (false, "https://198.19.255.255/x"),
        (false, "https://224.0.0.1/x"),
        (false, "https://239.255.255.250/x"),
        (false, "https://240.0.0.1/x"),
        (false, "https://255.255.255.255/x"),
        (false, "https://192.0.0.8/x"),
        (false, "https://192.0.2.1/x"),
        (false, "https://198.51.100.7/x"),
        (false, "https://203.0.113.9/x"),
        (false, "https://[64:ff9b::10.0.0.1]/x"),
        (false, "https://[fd00::1]/x"),
        (false, "https://[fc00::1]/x"),
        (false, "https://[fe80::1]/x"),
        (false, "https://[FE80::1]/x"),
        (false, "https://[ff02::1]/x"),
        (false, "https://[2001:db8::1]/x"),
        // Names that never resolve publicly.
        (false, "https://nas/x"),
        (false, "https://navidrome:4533/x"),
        (false, "https://nas.local/x"),
        (false, "https://NAS.LOCAL./x"),
        (false, "https://music.lan/x"),
        (false, "https://nd.home.arpa/x"),
        (false, "https://nd.internal/x"),
        (false, "https://nd.intranet/x"),
        (false, "https://nd.corp/x"),
        (false, "https://nd.home/x"),
        (false, "https://nd.private/x"),
        // Credentials.
        (false, "https://user:pw@example.com/x"),
        (false, "https://user@example.com/x"),
        (false, "https://@example.com/x"),
        (false, "https://example.com@127.0.0.1/x"),
        (false, "https://example.com/rest/getCoverArt?id=1&u=alice&t=abc&s=salt"),
        (false, "https://example.com/x?p=pw"),
        (false, "https://example.com/x?size=1&s=salt"),
        (false, "https://example.com/x?apiKey=k"),
        (false, "https://example.com/x?jwt=k"),
        (false, "https://example.com/x?%75=admin&%70=pw"),
        (false, "https://example.com/x?%61piKey=k"),
        (false, "https://example.com/x?%6a%77%74=k"),
        (false, "https://example.com/a&u=1/x"),
        (false, "https://example.com/x?a=1;u=2"),
        (false, "https://example.com/x#jwt=k"),
        (false, "https://example.com/x?u&size=1"),
        (true, "https://example.com/x?size=1&ua=2#us"),
        (false, "https://example.com:44\x7f3/"),
        (false, "https://[2606:4700::1111\x01]/"),
    ];

    #[test]
    fn only_public_https_urls_pass() {
        let wrong: Vec<_> = CASES.iter().filter(|&&(ok, url)| public_https(url) != ok).collect();
        assert!(wrong.is_empty(), "{} of {} cases decided wrongly: {wrong:?}", wrong.len(), CASES.len());
        let long = ["https://example.com/", &"a".repeat(236)].concat();
        assert!(public_https(&long) && !public_https(&[&long, "a"].concat()));
    }
}
