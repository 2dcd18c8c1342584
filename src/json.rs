//! Minimal JSON: a pull reader that never builds a DOM (RFC 8259 tokens, skipping is
//! iterative so deep nesting cannot overflow the 32 KiB stack) and a writer that can
//! emit a value *inside* a JSON string, escaped once or twice in a single pass.

use crate::text::utf8;
use alloc::string::String;
use alloc::vec::Vec;

pub struct Reader<'a> {
    s: &'a [u8],
    pub i: usize,
}

impl<'a> Reader<'a> {
    #[inline(never)]
    pub fn new(s: &'a [u8]) -> Self {
        Reader { s, i: 0 }
    }

    /// The byte at the position; 0 at the end (neither blank nor part of any token).
    #[inline(never)]
    fn byte(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    pub fn peek(&mut self) -> u8 {
        loop {
            let c = self.byte();
            if !blank(c) {
                return c;
            }
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == c;
        self.i += hit as usize;
        hit
    }

    /// Eats the literal `word` (`null`, `true`) if it comes next.
    pub fn lit(&mut self, word: &[u8]) -> bool {
        self.peek();
        let hit = self.s.get(self.i..).is_some_and(|r| r.starts_with(word));
        self.i += word.len() * hit as usize;
        hit
    }

    #[inline(always)]
    pub fn null(&mut self) -> bool {
        self.lit(b"null")
    }

    /// The bytes between the quotes of a string token, escapes left in place.
    #[inline(always)]
    pub fn raw_str(&mut self) -> Option<&'a [u8]> {
        // The text ends before the closing quote, just read.
        let start = self.str_at();
        if start == usize::MAX { None } else { self.s.get(start..self.i - 1) }
    }

    /// Reads a string token: where its text starts, a plain number returned in a register;
    /// `usize::MAX` for none.
    #[inline(never)]
    fn str_at(&mut self) -> usize {
        if !self.eat(b'"') {
            return usize::MAX;
        }
        let start = self.i;
        loop {
            let Some(&c) = self.s.get(self.i) else { return usize::MAX };
            self.i += 1;
            match c {
                b'"' => return start,
                // A backslash at the very end must not leave the position past it.
                b'\\' => self.i = (self.i + 1).min(self.s.len()),
                _ => {}
            }
        }
    }

    /// A string token, decoded, (tests') shorthand for `string_to`.
    #[cfg(test)]
    pub fn string(&mut self) -> Option<String> {
        let mut s = String::new();
        self.string_to(&mut s)?;
        Some(s)
    }

    /// A string token, decoded into `to`, which is left as it was when there is none.
    #[inline(never)]
    pub fn string_to(&mut self, to: &mut String) -> Option<()> {
        let mut v = self.raw_str()?.to_vec();
        let n = unescape(&mut v)?;
        v.truncate(n);
        *to = utf8(v);
        Some(())
    }

    /// A number scaled by 10^`frac` and truncated toward zero (`1.5` with frac 3 is 1500);
    /// saturates instead of overflowing, accepts exponents (`2.5e1` is 25).
    pub fn number(&mut self, frac: u32) -> Option<i64> {
        let mut v = 0;
        self.number_to(frac, &mut v)?;
        Some(v)
    }

    /// `number` read into `to`, which is left as it was when there is none.
    #[inline(never)]
    pub fn number_to(&mut self, frac: u32, to: &mut i64) -> Option<()> {
        let neg = self.eat(b'-');
        // Significant digits in `v`, and the power of ten still to apply to them (it moves
        // by one per byte read and at most 1000 for the exponent: an i32 for any input
        // under 2 GiB); `dot` is 1 past the decimal point.
        let (mut v, mut scale, mut dot, start) = (0i64, frac as i32, 0, self.i);
        loop {
            let c = self.byte();
            let d = c.wrapping_sub(b'0') as i64;
            if d < 10 {
                // Digits that no longer fit only move the point.
                // `v * 10 + d` fits exactly when it does not wrap (a wrapped value is
                // negative or far from `10 * v`).
                let x = v.wrapping_mul(10).wrapping_add(d);
                if x / 10 == v {
                    v = x;
                    scale -= dot;
                } else {
                    scale += 1 - dot;
                }
            } else if c == b'.' && dot == 0 {
                dot = 1;
            } else {
                break;
            }
            self.i += 1;
        }
        // Some digit besides the point.
        if self.i == start + dot as usize {
            return None;
        }
        if self.byte() | 0x20 == b'e' {
            self.i += 1;
            let eneg = self.eat(b'-');
            if !eneg {
                self.eat(b'+');
            }
            let (start, mut e) = (self.i, 0u32);
            while let c @ b'0'..=b'9' = self.byte() {
                e = (e * 10 + (c - b'0') as u32).min(1000);
                self.i += 1;
            }
            if self.i == start {
                return None;
            }
            scale += if eneg { -(e as i32) } else { e as i32 };
        }
        // Saturates upwards; past 19 steps either way `v` no longer changes.
        for _ in 0..scale.unsigned_abs().min(40) {
            v = if scale < 0 { v / 10 } else { crate::text::mul_sat(v, 10) };
        }
        *to = if neg { -v } else { v };
        Some(())
    }

    /// Walks an object, decoding the text fields `names` into the slots at the same places
    /// (one decode call for a whole table of text fields) and skipping the rest.
    pub fn texts(&mut self, names: &[&str], slots: &mut [&mut String]) -> Option<()> {
        self.object(|k, r| {
            match key_index(k, names) {
                Some(i) => r.string_to(slots[i])?,
                None => r.skip()?,
            }
            Some(())
        })
    }

    pub fn int(&mut self) -> Option<i64> {
        self.number(0)
    }

    /// Skips one value of any kind without recursion.
    pub fn skip(&mut self) -> Option<()> {
        let mut depth = 0u32;
        loop {
            let c = self.peek();
            if c == b'"' {
                if self.str_at() == usize::MAX {
                    return None;
                }
            } else if c == b'{' || c == b'[' || depth > 0 && matches!(c, b'}' | b']' | b',' | b':') {
                self.i += 1;
                // `[` and `]` are `{` and `}` with the 0x20 bit clear.
                depth = depth + (c | 0x20 == b'{') as u32 - (c | 0x20 == b'}') as u32;
            } else if lit(c) {
                while lit(self.byte()) {
                    self.i += 1;
                }
            } else {
                return None;
            }
            if depth == 0 {
                return Some(());
            }
        }
    }

    /// Walks an object; `f` gets each raw key and must consume the value. `null` (how Go
    /// writes a nil map, slice or pointer) is an empty object.
    pub fn object(&mut self, mut f: impl FnMut(&'a [u8], &mut Self) -> Option<()>) -> Option<()> {
        self.object_dyn(&mut f)
    }

    #[inline(never)]
    fn object_dyn(&mut self, f: &mut dyn FnMut(&'a [u8], &mut Self) -> Option<()>) -> Option<()> {
        if self.null() {
            return Some(());
        }
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let k = self.raw_str()?;
            if !self.eat(b':') {
                return None;
            }
            f(k, self)?;
            if !self.eat(b',') {
                return self.eat(b'}').then_some(());
            }
        }
    }

    /// Walks an array; `f` must consume each element. `null` is an empty array.
    pub fn array(&mut self, mut f: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.array_dyn(&mut f)
    }

    #[inline(never)]
    fn array_dyn(&mut self, f: &mut dyn FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.null() {
            return Some(());
        }
        if !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(());
        }
        loop {
            f(self)?;
            if !self.eat(b',') {
                return self.eat(b']').then_some(());
            }
        }
    }
}

/// Whitespace between JSON tokens (RFC 8259 §2).
pub fn blank(c: u8) -> bool {
    // A bit each for `\t \n \r` and the space.
    c <= b' ' && 0x1_0000_2600u64 >> c & 1 != 0
}

/// A byte of a number or literal (`true`, `null`), as far as skipping tells them apart.
pub fn lit(c: u8) -> bool {
    // A letter either case; or `+ - .` and the digits, a bit each in 0x7FED from `+` up.
    (c | 0x20).wrapping_sub(b'a') < 26 || c.wrapping_sub(b'+') < 15 && 0x7FED >> (c - b'+') & 1 != 0
}

/// Which of `names` the object key `k` is: one table lookup, where a `match` on byte
/// string literals compiles to a comparison per name and byte.
#[inline(always)]
pub fn key_index(k: &[u8], names: &[&str]) -> Option<usize> {
    let i = key_at(k, names);
    (i < names.len()).then_some(i)
}

/// `key_index`, `names.len()` for none: a number returned in a register.
#[inline(never)]
fn key_at(k: &[u8], names: &[&str]) -> usize {
    names.iter().position(|n| n.as_bytes() == k).unwrap_or(names.len())
}

/// The four hex digits `b` starts with; more than 0xFFFF when it does not.
fn hex4(b: &[u8]) -> u64 {
    b.get(..4).map_or(u64::MAX, |h| crate::text::uint(h, 16))
}

/// The marker bits of the first byte of a UTF-8 sequence: byte k of this for a sequence of
/// k + 1 bytes.
pub const LEAD: u32 = 0xF0E0_C000;

/// What the escape `\e` stands for, `u` aside: `e` itself unless it is one of `bfnrt`.
#[inline(never)]
fn escaped(e: u8) -> u8 {
    b"bfnrt".iter().position(|&x| x == e).map_or(e, |i| b"\x08\x0c\n\r\t"[i])
}

/// Decodes JSON string escapes in place (the result is never longer) and returns the new
/// length. Lone surrogates become U+FFFD, as Go's decoder does.
pub fn unescape(b: &mut [u8]) -> Option<usize> {
    let (mut r, mut w) = (0, 0);
    while let Some(&c) = b.get(r) {
        r += 1;
        let mut u = c as u32;
        if c == b'\\' {
            let e = *b.get(r)?;
            r += 1;
            u = match e {
                b'u' => {
                    let mut u = hex4(b.get(r..)?);
                    if u > 0xFFFF {
                        return None;
                    }
                    r += 4;
                    if let (0xD800..0xDC00, [b'\\', b'u', lo @ ..]) = (u, b.get(r..)?) {
                        if let lo @ 0xDC00..=0xDFFF = hex4(lo) {
                            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                            r += 6;
                        }
                    }
                    if (0xD800..0xE000).contains(&u) {
                        u = 0xFFFD;
                    }
                    u as u32
                }
                _ => escaped(e) as u32,
            };
        }
        // `c` itself, or the escaped character in UTF-8: never more bytes than it took.
        let n = if c != b'\\' { 1 } else { 1 + (u >= 0x80) as usize + (u >= 0x800) as usize + (u >= 0x10000) as usize };
        for i in (0..n).rev() {
            b[w + i] = if i > 0 { 0x80 | (u & 0x3f) as u8 } else { u as u8 | (LEAD >> (8 * n - 8)) as u8 };
            u >>= 6;
        }
        w += n;
    }
    Some(w)
}

/// Output buffer. `depth` is how many JSON strings the text being written sits inside:
/// 0 for a plain document, 1 for a frame carried in `websocket_sendtext`'s `message`.
/// Templates passed to `raw` must already be escaped for the current depth.
pub struct Out {
    pub buf: Vec<u8>,
    pub depth: u8,
}

impl Out {
    pub fn new() -> Self {
        Out { buf: Vec::with_capacity(512), depth: 0 }
    }

    #[inline(never)]
    pub fn raw(&mut self, s: &str) -> &mut Self {
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// `c` escaped `depth` times: a quote or backslash gets 2^depth - 1 backslashes, a
    /// control character 2^(depth - 1) backslashes and `u00XX`.
    fn put(&mut self, mut c: u8, depth: u8) {
        if depth > 0 && (c == b'"' || c == b'\\' || c < 0x20) {
            let ctl = c < 0x20;
            for _ in 0..(1u32 << depth) - 1 >> ctl as u32 {
                self.buf.push(b'\\');
            }
            if ctl {
                self.buf.extend_from_slice(b"\\u00");
                self.buf.push(crate::text::hex(c >> 4));
                c = crate::text::hex(c);
            }
        }
        self.buf.push(c);
    }

    /// Text escaped for the current depth (the inside of a string, no quotes).
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.utf8(s.as_bytes())
    }

    /// `text` for bytes the caller knows to be UTF-8.
    pub fn utf8(&mut self, b: &[u8]) -> &mut Self {
        for &c in b {
            self.put(c, self.depth);
        }
        self
    }

    /// A JSON string value (quotes included) escaped for the current depth.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.open().text(s).close()
    }

    /// An object key, with the comma before it unless it opens the object.
    pub fn key(&mut self, k: &str) -> &mut Self {
        if self.buf.last() != Some(&b'{') {
            self.buf.push(b',');
        }
        self.str(k).buf.push(b':');
        self
    }

    fn quote(&mut self) -> &mut Self {
        self.put(b'"', self.depth);
        self
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        crate::text::push_int(&mut self.buf, v);
        self
    }

    /// Opens a nested JSON string: what follows is escaped one level deeper.
    pub fn open(&mut self) -> &mut Self {
        self.quote();
        self.depth += 1;
        self
    }

    pub fn close(&mut self) -> &mut Self {
        self.depth -= 1;
        self.quote()
    }
}


/// RFC 4648 §4 alphabet: Go encodes `[]byte` fields with it, `=`-padded (ABI §4.0).
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl Out {
    /// Bytes as a base64 string value (its characters need no escaping at any depth).
    pub fn b64(&mut self, data: &[u8]) -> &mut Self {
        self.quote();
        for c in data.chunks(3) {
            let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                let ch = if i <= c.len() { B64[(n >> (18 - 6 * i) & 63) as usize] } else { b'=' };
                self.buf.push(ch);
            }
        }
        self.quote()
    }
}

/// Decodes standard padded base64; `None` on any other character.
pub fn unbase64(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s.iter().take_while(|&&c| c != b'=') {
        acc = acc << 6 | B64.iter().position(|&x| x == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Writes `f` at depth 1, inside a JSON string as records and frames travel in host
/// requests, and decodes that string as the host does.
#[cfg(test)]
pub fn at_depth1(f: impl FnOnce(&mut Out)) -> String {
    let mut o = Out::new();
    o.open();
    f(&mut o);
    o.close();
    Reader::new(&o.buf).string().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Option<String> {
        Reader::new(s.as_bytes()).string()
    }

    #[test]
    fn strings_round_trip_at_every_depth() {
        let samples = ["plain", "quo\"te", "back\\slash", "ctl\u{1}\n\t\u{1f}", "é漢🎵\u{202e}", ""];
        for s in samples {
            let mut o = Out::new();
            o.str(s);
            let once = String::from_utf8(o.buf).unwrap();
            assert_eq!(decode(&once).as_deref(), Some(s), "{once}");
            // Depth 1: the quoted value inside another string, escaped twice in one pass.
            let mut o = Out::new();
            o.open().raw("{\\\"k\\\":").str(s).raw("}").close();
            let twice = String::from_utf8(o.buf).unwrap();
            let inner = decode(&twice).unwrap();
            let mut r = Reader::new(inner.as_bytes());
            let mut got = None;
            r.object(|k, r| {
                assert_eq!(k, b"k");
                got = r.string();
                Some(())
            })
            .unwrap();
            assert_eq!(got.as_deref(), Some(s), "{twice}");
        }
    }

    #[test]
    fn escapes_nest() {
        // Two levels deep: a quote takes 3 backslashes, a backslash 4, a control character 2.
        let mut o = Out::new();
        o.depth = 2;
        o.text("\"\\\u{1}");
        assert_eq!(o.buf, br#"\\\"\\\\\\u0001"#);
        assert_eq!(decode(r#""\b\f\n\r\t\"\\\/\q""#).unwrap(), "\u{8}\u{c}\n\r\t\"\\/q");
    }

    #[test]
    fn unicode_escapes_and_surrogates() {
        assert_eq!(decode(r#""\u00e9\ud83c\udfb5\/""#).unwrap(), "é🎵/");
        assert_eq!(decode(r#""\ud800x""#).unwrap(), "\u{FFFD}x");
        assert_eq!(decode(r#""\u12""#), None);
        assert_eq!(decode(r#""open"#), None);
        assert_eq!(decode("\"\\"), None);
        // A failed read leaves the reader usable.
        let mut r = Reader::new(b"\"\\");
        assert_eq!(r.raw_str(), None);
        assert!(!r.lit(b"true") && !r.null() && r.skip().is_none() && r.string().is_none());
    }

    #[test]
    fn numbers_scale_and_saturate() {
        let n = |s: &str, f| Reader::new(s.as_bytes()).number(f);
        assert_eq!(n("215.37", 3), Some(215_370));
        assert_eq!(n("1", 3), Some(1000));
        assert_eq!(n("1.23456", 3), Some(1234));
        assert_eq!(n("-2.5", 0), Some(-2));
        assert_eq!(n("1e3", 0), Some(1000));
        assert_eq!(n("1.5E-1", 3), Some(150));
        assert_eq!(n("1e+21", 0), Some(i64::MAX));
        assert_eq!(n("99999999999999999999999", 0), Some(i64::MAX));
        assert_eq!(n("2.5555e1", 0), Some(25));
        assert_eq!(n("9223372036854775807", 0), Some(i64::MAX), "all 19 digits");
        assert_eq!(n("9E--888888880", 0), None);
        assert_eq!(n("1e-2147483648", 3), Some(0));
        assert_eq!(n("99999999999.599999999999999259E1", 0), Some(999_999_999_995));
        assert_eq!(n("x", 0), None);
        assert_eq!(n("-", 0), None);
        assert_eq!((n(".", 0), n("-.e1", 0), n("1.", 3), n(".5", 3)), (None, None, Some(1000), Some(500)));
    }

    #[test]
    fn skip_walks_any_value_without_recursion() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let mut r = Reader::new(deep.as_bytes());
        assert_eq!(r.skip(), Some(()));
        assert_eq!(r.i, deep.len());
        let mut r = Reader::new(br#"{"a":[1,"x\"]",{"b":null}],"c":true} ,"#);
        r.skip().unwrap();
        assert_eq!(r.peek(), b',');
        assert_eq!(Reader::new(b"").skip(), None);
        assert_eq!(Reader::new(b"}").skip(), None);
    }

    #[test]
    fn literal_and_blank_bytes() {
        for c in 0..=255u8 {
            assert_eq!(lit(c), matches!(c, b'+' | b'-' | b'.' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z'), "{c}");
            assert_eq!(blank(c), matches!(c, b' ' | b'\n' | b'\r' | b'\t'), "{c}");
        }
    }

    #[test]
    fn object_rejects_malformed_input() {
        for bad in [&b"{"[..], b"{\"a\" 1}", b"{\"a\":1", b"[1,2", b"{\"a\":1,}"] {
            let mut r = Reader::new(bad);
            let ok = if bad[0] == b'[' {
                r.array(|r| r.skip())
            } else {
                r.object(|_, r| r.skip())
            };
            assert_eq!(ok, None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn base64_round_trips() {
        for (raw, enc) in [(&b""[..], ""), (b"f", "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v"), (b"foobar", "Zm9vYmFy"), (&[0xff, 0, 0xfe][..], "/wD+")] {
            let mut o = Out::new();
            o.b64(raw);
            assert_eq!(o.buf, [b"\"", enc.as_bytes(), b"\""].concat());
            assert_eq!(unbase64(enc.as_bytes()).as_deref(), Some(raw));
        }
        assert_eq!(unbase64(b"Zm9v!"), None);
    }

    #[test]
    fn utf8_is_checked_as_core_checks_it() {
        let same = |b: &[u8]| assert_eq!(utf8(b.to_vec()), String::from_utf8(b.to_vec()).unwrap_or_default(), "{b:x?}");
        for a in 0..=255u8 {
            same(&[a]);
            for b in 0..=255u8 {
                same(&[a, b]);
                same(&[b'x', a, b, b'y']);
                for c in [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff] {
                    same(&[a, b, c]);
                    for d in [0x00, 0x80, 0xbf, 0xc0] {
                        same(&[a, b, c, d]);
                    }
                }
            }
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            same(&x.to_le_bytes()[..(x % 9) as usize]);
        }
    }

    #[test]
    fn ints_are_written_exactly() {
        let mut o = Out::new();
        o.int(0).raw(" ").int(-42).raw(" ").int(i64::MIN).raw(" ").int(1714599995000);
        assert_eq!(o.buf, b"0 -42 -9223372036854775808 1714599995000");
    }
}
