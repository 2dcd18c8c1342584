//! Text helpers every room uses, with no dependency of their own: byte-wise search and
//! splitting, trimming, decimal and hex numbers, percent-encoding, FNV-1a. Each is lighter
//! in the module than the `core` method it replaces (no character searcher, no Unicode
//! tables, no 128-bit multiplication).

use alloc::string::String;
use alloc::vec::Vec;

/// `a` then `b`. These helpers build strings in less code than slice `concat` does.
pub fn join(a: &str, b: &str) -> String {
    join3(a, b, "")
}

/// `a`, `b` then `c`.
pub fn join3(a: &str, b: &str, c: &str) -> String {
    let mut s = String::from(a);
    s.push_str(b);
    s.push_str(c);
    s
}

/// `s` without ASCII white space at either end (config and template text; `str::trim`
/// would bring Unicode tables and UTF-8 decoding into the module).
#[inline(always)]
pub fn trim(s: &str) -> &str {
    let r = trimmed(s);
    let start = (r >> 32) as usize;
    // SAFETY: only ASCII bytes were taken off the ends.
    unsafe { s.get_unchecked(start..start + r as u32 as usize) }
}

/// Where `trim`'s text starts in `s`, and its length: `start << 32 | len`, one number
/// returned in a register.
#[inline(never)]
fn trimmed(s: &str) -> u64 {
    let mut b = s.as_bytes();
    loop {
        match b {
            [c, r @ ..] | [r @ .., c] if c.is_ascii_whitespace() => b = r,
            _ => break,
        }
    }
    ((b.as_ptr() as usize - s.as_ptr() as usize) as u64) << 32 | b.len() as u64
}

/// `s` split around its first `sep`, an ASCII byte: `str::split_once` without the
/// character searcher it brings into the module, nor its checks of character boundaries.
#[inline(always)]
pub fn cut(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = at(s, sep);
    // SAFETY: an ASCII byte (`& 0x7f`) is a whole character: both sides are UTF-8.
    (i < s.len()).then(|| unsafe { (s.get_unchecked(..i), s.get_unchecked(i + 1..)) })
}

/// Where `sep & 0x7f` first is in `s`, its length if nowhere: a plain number returned in
/// a register.
#[inline(never)]
fn at(s: &str, sep: u8) -> usize {
    s.bytes().position(|b| b == sep & 0x7f).unwrap_or(s.len())
}

/// Where `needle` first occurs in `hay`: a byte search, lighter than `str::find` in the
/// module.
#[inline(always)]
pub fn find(hay: &str, needle: &str) -> Option<usize> {
    Some(find_at(hay, needle)).filter(|&i| i <= hay.len())
}

/// `find`, past the end for none: a plain number returned in a register.
#[inline(never)]
fn find_at(hay: &str, needle: &str) -> usize {
    hay.as_bytes().windows(needle.len().max(1)).position(|w| w.starts_with(needle.as_bytes())).unwrap_or(if needle.is_empty() { 0 } else { usize::MAX })
}

/// The pieces of a text between `sep` bytes (ASCII), as `str::split` yields them.
pub struct Split<'a>(Option<&'a str>, u8);

pub fn split(s: &str, sep: u8) -> Split<'_> {
    Split(Some(s), sep)
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0.take()?;
        let Some((piece, next)) = cut(rest, self.1) else { return Some(rest) };
        self.0 = Some(next);
        Some(piece)
    }
}

/// `v` in decimal.
pub fn num(v: i64) -> String {
    let mut b = Vec::new();
    push_int(&mut b, v);
    utf8(b)
}

/// Appends `v` in decimal.
pub fn push_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_digits(buf, v.unsigned_abs());
}

fn push_digits(buf: &mut Vec<u8>, n: u64) {
    if n >= 10 {
        push_digits(buf, n / 10);
    }
    buf.push(b'0' + (n % 10) as u8);
}

/// `x.saturating_mul(c)` for a constant `c > 0`, without the 128-bit multiplication
/// that `saturating_mul` brings into the module.
#[inline(never)]
pub fn mul_sat(x: i64, c: i64) -> i64 {
    if x > i64::MAX / c {
        i64::MAX
    } else if x < i64::MIN / c {
        i64::MIN
    } else {
        x * c
    }
}

/// A decimal integer (`-` allowed), `None` on anything else or on overflow. One parser
/// for every number in text form, instead of `str::parse` per type.
pub fn int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes() {
        [b'-', d @ ..] => (true, d),
        d => (false, d),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v = 0i64;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        // `v * 10 - d` without the 128-bit multiplication `checked_mul` brings in: a
        // result that wrapped is far from `10 * v`.
        let x = v.wrapping_mul(10).wrapping_sub((b - b'0') as i64);
        if x / 10 != v {
            return None;
        }
        v = x;
    }
    if neg { Some(v) } else { v.checked_neg() }
}

/// `s` as a number in `radix` ("" is 0); 2^32 or more when it is not one or does not fit
/// 32 bits, so that one comparison checks both the digits and the range.
#[inline(never)]
pub fn uint(s: &[u8], radix: u32) -> u64 {
    let mut v = 0u64;
    for &c in s {
        // `char::to_digit` would bring its check of the radix. Bytes below `0` wrap to
        // 0xd0 and more; above `9`, all but letters are 36 or more (`@` and `` ` `` wrap).
        let d = if c <= b'9' { c.wrapping_sub(b'0') as u32 } else { (c | 0x20).wrapping_sub(b'a') as u32 + 10 };
        if d >= radix {
            return u64::MAX;
        }
        v = v * radix as u64 + d as u64;
        if v >> 32 != 0 {
            break;
        }
    }
    v
}

/// The lower-case hex digit of the low four bits of `n` (`| 0x20` lowers a letter and
/// keeps a digit).
pub fn hex(n: u8) -> u8 {
    HEX_UPPER[(n & 15) as usize] | 0x20
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Percent-encodes every byte except ASCII letters, digits (`uint`'s digits in base 36)
/// and `keep`.
pub fn percent(s: &str, keep: &[u8]) -> String {
    let mut o = Vec::new();
    for &b in s.as_bytes() {
        if uint(&[b], 36) < 36 || keep.iter().any(|&k| k == b) {
            o.push(b);
        } else {
            o.push(b'%');
            o.push(HEX_UPPER[(b >> 4) as usize]);
            o.push(HEX_UPPER[(b & 15) as usize]);
        }
    }
    utf8(o)
}

/// 64-bit FNV-1a (the official plugin's cache-key hash, spec §3.9).
pub struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub fn eat(&mut self, b: &[u8]) {
        for &c in b {
            self.0 = (self.0 ^ c as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The least character a sequence of 0 (ASCII) to 4 bytes may encode is `(1 << k) >> 1`,
/// `k` the `n`th 5-bit field here: 0, 0x80, 0x800, 0x10000.
const MIN_CP: u32 = 8 << 10 | 12 << 15 | 17 << 20;

/// Bytes to a String. Everything Navidrome hands over went through Go's encoder, which
/// already replaced invalid UTF-8, so an invalid value is simply dropped (empty). Checked
/// here as `core::str::from_utf8` checks (RFC 3629: no overlong forms, no surrogates,
/// nothing above U+10FFFF), in a fraction of its code and without its 256-byte table.
pub fn utf8(v: Vec<u8>) -> String {
    if !is_utf8(&v) {
        return String::new();
    }
    // SAFETY: checked to be UTF-8.
    unsafe { String::from_utf8_unchecked(v) }
}

fn is_utf8(mut v: &[u8]) -> bool {
    while let [c, rest @ ..] = v {
        // 0: ASCII; 2–4: the first byte of a sequence that long (a bit each in 0x1d); 1 or
        // 5+: never first.
        let n = c.leading_ones() as usize;
        if 0x1d >> n & 1 == 0 {
            return false;
        }
        let Some((tail, next)) = rest.split_at_checked(n.saturating_sub(1)) else { return false };
        let mut cp = (c & (0x7f >> n)) as u32;
        for &b in tail {
            if b & 0xc0 != 0x80 {
                return false;
            }
            cp = cp << 6 | (b & 0x3f) as u32;
        }
        if cp < (1u32 << (MIN_CP >> (5 * n) & 31)) >> 1 || cp > 0x10ffff || (0xd800..0xe000).contains(&cp) {
            return false;
        }
        v = next;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(-42), "-42");
        assert_eq!(int("-"), None);
        assert_eq!(int(&num(i64::MIN)), Some(i64::MIN));
        assert_eq!(int(&num(i64::MAX)), Some(i64::MAX));
        assert_eq!(int("9223372036854775808"), None);
        for t in ["-9223372036854775809", "92233720368547758070", "-92233720368547758080", "922337203685477581"] {
            assert_eq!(int(t), t.parse().ok(), "{t}");
        }
        for x in [i64::MIN, i64::MIN / 1000 - 1, i64::MIN / 1000, -7, 0, 9, i64::MAX / 1000, i64::MAX / 1000 + 1, i64::MAX] {
            for c in [1, 1000, 1_000_000] {
                assert_eq!(mul_sat(x, c), x.saturating_mul(c), "{x} {c}");
            }
        }
        assert_eq!(uint(b"ff", 16), 255);
        assert_eq!(uint(b"", 10), 0);
        assert!(uint(b"100000000", 16) >> 32 != 0 && uint(b"fg", 16) >> 32 != 0);
        assert_eq!((uint(b"07", 8), uint(b"Ff", 16), uint(b"19", 10)), (7, 255, 19));
        for (bad, radix) in [("8", 8), ("a", 10), ("/", 16), (":", 16), ("@", 16), ("G", 16), ("[", 16), ("`", 16), ("g", 16), ("{", 16), ("é", 16)] {
            assert!(uint(bad.as_bytes(), radix) >> 32 != 0, "{bad}");
        }
        for (c, radix) in (0..=255u8).flat_map(|c| [8, 10, 16].map(|r| (c, r))) {
            assert_eq!(uint(&[c], radix), (c as char).to_digit(radix).map_or(u64::MAX, u64::from), "{c} {radix}");
        }
    }

    #[test]
    fn search_split_trim_percent() {
        assert_eq!(cut("a:b:c", b':'), Some(("a", "b:c")));
        assert_eq!((cut("é:ü", b':'), cut("é", b':'), cut(":", b':')), (Some(("é", "ü")), None, Some(("", ""))));
        assert_eq!(find("abcabc", "ca"), Some(2));
        // An empty needle is found at once, as `str::find` finds it (never a trap).
        assert_eq!((find("ab", ""), find("", ""), find("", "a")), (Some(0), Some(0), None));
        assert_eq!(split("a,,b", b',').collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!((trim(" \t x y \n"), trim("\r\x0c é\n"), trim(" \t")), ("x y", "é", ""));
        assert_eq!(percent("a b/é", b"/"), "a%20b/%C3%A9");
    }

    #[test]
    fn utf8_as_core_checks_it() {
        let good: [&[u8]; 5] = [b"", b"\x00\x7f\xc2\x80\xe0\xa0\x80", b"a\xc3\xa9", b"\xe2\x82\xac\xef\xbf\xbf", b"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"];
        let bad: [&[u8]; 9] = [b"\x80", b"\xc3", b"\xc0\xaf", b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"a\xe2\x82"];
        for v in good.iter().chain(&bad) {
            assert_eq!(utf8(v.to_vec()).as_bytes(), core::str::from_utf8(v).map_or(&b""[..], |s| s.as_bytes()), "{v:?}");
        }
    }
}
