//! What goes over the socket: the frames Discord sends, decoded to what the session
//! machine reads, and the templates of the control frames the client sends (spec §1.2, §2).

use crate::json::{lit, Out, Reader};
use alloc::string::String;
use alloc::vec::Vec;

/// Statuses an Update Presence may carry (Discord gateway-events).
pub const STATUSES: [&str; 4] = ["online", "idle", "dnd", "invisible"];

#[inline(always)]
pub fn status_index(s: &[u8]) -> Option<u8> {
    crate::json::key_index(s, &STATUSES).map(|i| i as u8)
}

/// Frames the client sends besides the presence update (`presence::presence`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Frame {
    Identify,
    Resume { session_id: String, seq: i64 },
    Heartbeat(Option<i64>),
}

/// Writes a gateway frame at depth 1 (inside the `message` string of a send request).
pub fn frame(o: &mut Out, f: &Frame, token: &str) {
    match f {
        // Identify (op 2): user-account properties of a desktop client (spec §2.1), no
        // compression, intents 0.
        Frame::Identify => {
            o.raw(r#"{\"op\":2,\"d\":{\"token\":"#).str(token);
            o.raw(r#",\"intents\":0,\"properties\":{\"os\":\"Linux\",\"browser\":\"Discord Client\",\"device\":\"\"}}}"#);
        }
        Frame::Resume { session_id, seq } => {
            o.raw(r#"{\"op\":6,\"d\":{\"token\":"#).str(token);
            o.raw(r#",\"session_id\":"#).str(session_id).raw(r#",\"seq\":"#).int(*seq).raw("}}");
        }
        // Heartbeat (op 1): the last sequence number, null before the first dispatch.
        Frame::Heartbeat(seq) => {
            o.raw(r#"{\"op\":1,\"d\":"#);
            match seq {
                Some(s) => o.int(*s),
                None => o.raw("null"),
            };
            o.raw("}");
        }
    }
}

/// What a frame from Discord is (Discord gateway events; the opcodes of §1.2).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Not valid JSON: ignored with a warning.
    #[default]
    Invalid,
    /// Hello (op 10).
    Hello,
    /// READY (op 0).
    Ready,
    /// RESUMED (op 0).
    Resumed,
    /// SESSIONS_REPLACE (op 0): `d` lists the user's sessions (user accounts, discord.food).
    Sessions,
    /// Heartbeat ACK (op 11).
    Ack,
    /// Heartbeat request (op 1).
    Beat,
    /// Reconnect (op 7).
    Reconnect,
    /// Invalid Session (op 9) with `d` false: identify again.
    Refused,
    /// Invalid Session (op 9) with `d` true: resumable.
    Resumable,
    /// Any other dispatch or opcode.
    Other,
}

/// A frame from Discord, as the session machine reads it.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Inbound {
    pub kind: Kind,
    /// The sequence number `s`, if the frame carries one (§1.2).
    pub seq: Option<i64>,
    /// Hello's `d.heartbeat_interval` in ms, 0 when absent.
    pub heartbeat_ms: i64,
    /// READY's `d.session_id` and `d.resume_gateway_url`, each empty unless sane: they are
    /// stored space-separated and the URL is dialled.
    pub session_id: String,
    pub resume_url: String,
    /// READY's `d.sessions`, SESSIONS_REPLACE's `d`.
    pub sessions: Sessions,
}

/// What a sessions list says about the user's other devices: the session id and status
/// of its first entry with a status, other than the `all` aggregate that includes ours,
/// and the status of the first after it with another id. Whichever session is ours, the
/// first one that is not is among these two.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Sessions {
    id: Vec<u8>,
    /// 1 + the status, 0 for none: a plain byte, no Option.
    first: u8,
    next: u8,
}

impl Sessions {
    #[inline(never)]
    fn add(&mut self, id: &[u8], st: u8) {
        if id == b"all" {
        } else if self.first == 0 {
            self.id.extend_from_slice(id);
            self.first = st + 1;
        } else if self.next == 0 && self.id != id {
            self.next = st + 1;
        }
    }

    /// The status (index in `STATUSES`) of the user's first session that is neither `own`
    /// nor `all`; `online` without one.
    pub fn status(&self, own: &str) -> u8 {
        let st = if self.first != 0 && self.id != own.as_bytes() { self.first } else { self.next };
        st.saturating_sub(1)
    }
}

/// Where the payload of `nd_websocket_on_text_message` is read from: `fill` copies its
/// bytes from offset `at` into `buf` and says how many (0 at the end).
pub trait Source {
    fn fill(&mut self, at: usize, buf: &mut [u8]) -> usize;
}

/// A payload in memory (tests, fuzzing).
impl Source for Vec<u8> {
    fn fill(&mut self, at: usize, buf: &mut [u8]) -> usize {
        let rest = self.get(at..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        n
    }
}

/// The payload is read through a window this long: a 2 MiB READY costs no more memory
/// than a heartbeat ACK.
const WINDOW: usize = 4096;
/// Longest key or value kept whole: a longer one is cut at `CAP + 1` bytes, so it matches
/// no key and fails the sanity check of READY's fields.
const CAP: usize = 256;

/// Keys the decoder looks for; a key's id is its place here plus one, plus `OUTER` in the
/// outer payload.
const KEYS: [&str; 11] = ["op", "s", "t", "d", "heartbeat_interval", "session_id", "resume_gateway_url", "sessions", "status", "connectionId", "message"];
const OUTER: u32 = 16;
const D: u32 = 4;
const SID: u32 = 6;
const STATUS: u32 = 9;
/// The outer payload's `message`: its text is the frame, fed to a second tokenizer.
const MESSAGE: u32 = 11 + OUTER;
/// A position is the key of each level down to a value (`ARR` for an array's element,
/// `OTHER` for a key not in `KEYS`), a byte per level from the lowest. Only containers
/// that may hold a kept value are entered, so there are 4 levels at most.
const ARR: u32 = 0xFE;
const OTHER: u32 = 0xFF;
/// The entries of a sessions list: READY's `d.sessions[]`, SESSIONS_REPLACE's `d[]`.
const ENTRY_READY: u32 = D | 8 << 8 | ARR << 16;
const ENTRY_REPLACE: u32 = D | ARR << 8;
/// The values kept, in the order of `Parts::slots`: the frame's `op`, `s`, `t`, `d`,
/// `d.heartbeat_interval`, `d.session_id`, `d.resume_gateway_url`, a sessions list
/// entry's `session_id` and `status` (either list), the payload's `connectionId` and
/// `message`.
const SLOTS: [u32; 13] = [1, 2, 3, D, D | 5 << 8, D | SID << 8, D | 7 << 8, ENTRY_READY | SID << 24, ENTRY_READY | STATUS << 24, ENTRY_REPLACE | SID << 16, ENTRY_REPLACE | STATUS << 16, 10 + OUTER, MESSAGE];

// What the tokenizer expects next.
/// A value, or the end of an array.
const VALUE: u8 = 0;
/// A key, or the end of an object.
const KEY: u8 = 1;
const COLON: u8 = 2;
/// `,` or the end of the container.
const AFTER: u8 = 3;
/// Inside a string.
const STR: u8 = 4;
/// Inside a number or literal.
const LIT: u8 = 5;
/// Inside a container where nothing is kept: only its end is looked for, nesting and
/// strings counted as a skipping reader does.
const SKIP: u8 = 6;
/// The top object ended: the rest is ignored (as a reader that stops there would).
const DONE: u8 = 7;
/// Not JSON.
const BAD: u8 = 8;

/// A JSON tokenizer fed a byte at a time, with bounded state: the open levels (4 at most,
/// which are arrays, the position), the nesting of a skipped container, and the key or
/// value being read, escapes decoded (surrogate pairs joined, a lone half U+FFFD as Go's
/// decoder does). The string at `MESSAGE` is not kept but passed on whole. What it enters
/// is checked as RFC 8259 grammar; what it skips only for nesting and strings, as the
/// reader it replaces skipped.
#[derive(Default)]
struct Tok {
    st: u8,
    /// The string being read is a key.
    key: bool,
    /// The string being read is the message.
    fwd: bool,
    /// 0, 1 after a backslash, 2–5 in the hex digits of `\u`.
    esc: u8,
    code: u32,
    /// A high surrogate waiting for its low half.
    high: u32,
    depth: u32,
    /// A bit per open level, the innermost lowest: set for an array.
    arrays: u8,
    path: u32,
    /// Containers open in the one being skipped, itself included.
    skip: u32,
    /// `OUTER` for the outer payload, 0 for the frame.
    base: u32,
    /// The key or value being read: a string is its opening quote then its text, an object
    /// or array its first byte.
    cap: Vec<u8>,
}

impl Tok {
    /// The position of the value being read.
    fn at(&self) -> u32 {
        self.path
    }

    /// Sets the key of the current level in the position.
    fn set(&mut self, v: u32) {
        let l = 8 * (self.depth - 1);
        self.path = self.path & !(0xFF << l) | v << l;
    }

    fn put(&mut self, b: u8, p: &mut Parts) {
        if self.fwd {
            p.message.push(b);
        } else if self.cap.len() <= CAP {
            self.cap.push(b);
        }
    }

    /// A character as UTF-8; a lone low surrogate is U+FFFD.
    fn char(&mut self, u: u32, p: &mut Parts) {
        let u = if (0xD800..0xE000).contains(&u) { 0xFFFD } else { u };
        // Continuation bytes after the first, whose marker bits are a byte of `LEAD`.
        let n = (u >= 0x80) as u32 + (u >= 0x800) as u32 + (u >= 0x10000) as u32;
        for i in (0..=n).rev() {
            let b = (u >> (6 * i)) as u8;
            self.put(if i == n { (crate::json::LEAD >> (8 * n)) as u8 | b } else { 0x80 | b & 0x3F }, p);
        }
    }

    /// Anything in a string but a `\u` escape: a high surrogate before it had no low half.
    fn flush(&mut self, p: &mut Parts) {
        if core::mem::take(&mut self.high) != 0 {
            self.char(0xFFFD, p);
        }
    }

    /// Feeds `s`. The hot paths of a READY are not taken byte by byte: a run of plain
    /// text in a string is passed on or kept whole, and a container that holds nothing
    /// kept (guilds, relationships…) is skipped in a loop of its own.
    fn feed(&mut self, s: &[u8], p: &mut Parts) {
        let mut i = 0;
        while let Some(&c) = s.get(i) {
            i += 1;
            if self.st == SKIP {
                // In a string (`key`), after a backslash (`esc`).
                if self.key {
                    if self.esc != 0 {
                        self.esc = 0;
                    } else if c == b'\\' {
                        self.esc = 1;
                    } else {
                        self.key = c != b'"';
                    }
                } else {
                    // `[` and `]` are `{` and `}` with the 0x20 bit clear.
                    if c == b'"' {
                        self.key = true;
                    } else if c | 0x20 == b'{' {
                        self.skip += 1;
                    } else if c | 0x20 == b'}' {
                        self.skip -= 1;
                        if self.skip == 0 {
                            self.st = AFTER;
                        }
                    }
                }
            } else if self.st == STR && self.fwd && self.esc == 0 && self.high == 0 && c != b'"' && c != b'\\' {
                p.message.push(c);
            } else {
                self.push(c, p);
            }
        }
    }

    #[inline(never)]
    fn push(&mut self, c: u8, p: &mut Parts) {
        let mut st = self.st;
        if st == STR {
            match self.esc {
                0 if c == b'\\' => self.esc = 1,
                0 if c == b'"' => {
                    self.flush(p);
                    if self.key {
                        self.st = COLON;
                        self.set(crate::json::key_index(&self.cap, &KEYS).map_or(OTHER, |i| i as u32 + 1 + self.base));
                    } else {
                        self.st = AFTER;
                        p.value(self);
                    }
                }
                1 if c == b'u' => (self.esc, self.code) = (2, 0),
                0 | 1 => {
                    // `json::escaped`'s table, written out: called here, in the per-byte path,
                    // it made a 2 MiB READY 1.33x as slow (inlined there, +150 B).
                    let c = if self.esc == 0 { c } else { match c { b'b' => 8, b'f' => 12, b'n' => b'\n', b'r' => b'\r', b't' => b'\t', _ => c } };
                    self.esc = 0;
                    self.flush(p);
                    self.put(c, p);
                }
                _ => {
                    let Some(v) = (c as char).to_digit(16) else { return self.st = BAD };
                    self.code = self.code << 4 | v;
                    self.esc += 1;
                    if self.esc == 6 {
                        self.esc = 0;
                        let u = self.code;
                        if self.high != 0 && (0xDC00..0xE000).contains(&u) {
                            let hi = core::mem::take(&mut self.high);
                            return self.char(0x10000 + ((hi - 0xD800) << 10) + (u - 0xDC00), p);
                        }
                        self.flush(p);
                        if (0xD800..0xDC00).contains(&u) {
                            self.high = u;
                        } else {
                            self.char(u, p);
                        }
                    }
                }
            }
            return;
        }
        if st == LIT {
            if lit(c) {
                return self.put(c, p);
            }
            p.value(self);
            st = AFTER;
        }
        let arr = self.arrays & 1 == 1;
        // What follows `,` here: a value in an array, a key in an object.
        let next = arr as u8 ^ KEY;
        self.st = match c {
            _ if st >= DONE => st,
            _ if crate::json::blank(c) => st,
            b',' if st == AFTER => next,
            b':' if st == COLON => VALUE,
            b'}' | b']' if (c == b']') == arr && (st == AFTER || st == next) => {
                self.set(0);
                self.depth -= 1;
                self.arrays >>= 1;
                p.close(self);
                if self.depth == 0 { DONE } else { AFTER }
            }
            b'"' if st == KEY => {
                self.key = true;
                self.cap.clear();
                STR
            }
            // The top value must be an object.
            _ if st == VALUE && (self.depth > 0 || c == b'{') && (lit(c) || matches!(c, b'"' | b'{' | b'[')) => {
                self.key = false;
                self.fwd = false;
                self.cap.clear();
                self.put(c, p);
                match c {
                    b'"' => {
                        self.fwd = self.at() == MESSAGE;
                        STR
                    }
                    b'{' | b'[' => {
                        let arr = c == b'[';
                        p.value(self);
                        // Skipped unless a kept value may be inside.
                        let (at, mask) = (self.at(), ((1u64 << (8 * self.depth)) - 1) as u32);
                        if !SLOTS.iter().any(|&s| s & mask == at && s != at) {
                            (self.skip, self.key, self.esc) = (1, false, 0);
                            return self.st = SKIP;
                        }
                        self.depth += 1;
                        self.arrays = self.arrays << 1 | arr as u8;
                        self.set(if arr { ARR } else { 0 });
                        arr as u8 ^ KEY
                    }
                    _ => LIT,
                }
            }
            _ => BAD,
        };
    }
}

/// What has been read of the payload: the values it may need (keys come in any order, `d`
/// before `t`), kept until the end, the user's sessions, and the message's text not yet fed
/// to the frame's tokenizer.
struct Parts {
    slots: [Vec<u8>; SLOTS.len()],
    sessions: Sessions,
    message: Vec<u8>,
}

/// The text of a string value as `Tok::cap` holds it.
fn string(v: &[u8]) -> Option<&[u8]> {
    match v {
        [b'"', text @ ..] => Some(text),
        _ => None,
    }
}

/// `v` if it is printable ASCII without blanks, under 256 bytes and starts with `prefix`;
/// else empty.
fn sane(v: &[u8], prefix: &[u8]) -> String {
    let v = string(v).filter(|v| v.len() < 256 && v.starts_with(prefix) && v.iter().all(|&b| b > b' ' && b < 0x7f));
    crate::text::utf8(v.unwrap_or_default().to_vec())
}

impl Parts {
    fn value(&mut self, t: &Tok) {
        if let Some(i) = SLOTS.iter().position(|&p| p == t.at()) {
            self.slots[i].clear();
            self.slots[i].extend_from_slice(&t.cap);
        }
    }

    /// An entry of a sessions list ended: kept if its status is known.
    fn close(&mut self, t: &Tok) {
        let at = t.at();
        // Its `session_id` and `status`: `SLOTS` 7 and 8, or 9 and 10.
        let i = if at == ENTRY_READY { 7 } else if at == ENTRY_REPLACE { 9 } else { return };
        let [id, st] = &mut self.slots[i..i + 2] else { return };
        if let Some(st) = string(st).and_then(status_index) {
            self.sessions.add(string(id).unwrap_or_default(), st);
        }
        id.clear();
        st.clear();
    }

    /// The typed frame: `op` must be a number, `s` a number or null, `t` a string or null
    /// (§1.2); `None` if not.
    #[inline(always)]
    fn frame(&mut self) -> Option<Inbound> {
        let [op, s, t, d, hb, sid, url, ..] = &self.slots;
        let int = |v| Reader::new(v).int();
        let null = |v: &Vec<u8>| v.is_empty() || v == b"null";
        let op = if op.is_empty() { -1 } else { int(op)? };
        let seq = if null(s) { None } else { Some(int(s)?) };
        let t = if null(t) { b"" } else { string(t)? };
        let kind = match op {
            10 => Kind::Hello,
            0 => match crate::json::key_index(t, &["READY", "SESSIONS_REPLACE", "RESUMED"]) {
                Some(0) => Kind::Ready,
                Some(1) => Kind::Sessions,
                Some(_) => Kind::Resumed,
                None => Kind::Other,
            },
            11 => Kind::Ack,
            1 => Kind::Beat,
            7 => Kind::Reconnect,
            9 if d == b"true" => Kind::Resumable,
            9 => Kind::Refused,
            _ => Kind::Other,
        };
        let list = if d.first() == Some(if kind == Kind::Ready { &b'{' } else { &b'[' }) { core::mem::take(&mut self.sessions) } else { Sessions::default() };
        Some(Inbound { kind, seq, heartbeat_ms: int(hb).unwrap_or(0), session_id: sane(sid, b""), resume_url: sane(url, b"wss://"), sessions: list })
    }
}

/// Decodes the payload of `nd_websocket_on_text_message` (ABI §5),
/// `{"connectionId":"…","message":"<the frame>"}` with its keys in any order, in one pass
/// through a window of `WINDOW` bytes: the message's escapes are decoded as they come and
/// its frame is read as they come out, keeping only what [`Inbound`] holds, so that READY's
/// megabytes of guilds are skipped without being held (§1.3: "pull out only the few
/// fields you need"). `None`: a malformed payload.
pub fn text(src: &mut dyn Source) -> Option<(String, Inbound)> {
    let (mut outer, mut inner) = (Tok { base: OUTER, ..Tok::default() }, Tok::default());
    let mut p = Parts { slots: core::array::from_fn(|_| Vec::new()), sessions: Sessions::default(), message: Vec::new() };
    let mut buf = [0; WINDOW];
    let mut at = 0;
    while outer.st < DONE {
        let n = src.fill(at, &mut buf);
        if n == 0 {
            break;
        }
        at += n;
        outer.feed(&buf[..n], &mut p);
        let mut message = core::mem::take(&mut p.message);
        inner.feed(&message, &mut p);
        message.clear();
        p.message = message;
    }
    // Both are strings; the connection id may be missing.
    let [.., id, message] = &p.slots;
    if outer.st != DONE || message != b"\"" {
        return None;
    }
    let id = crate::text::utf8(if id.is_empty() { &[] } else { string(id)? }.to_vec());
    let frame = if inner.st == DONE { p.frame() } else { None };
    Some((id, frame.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    /// A payload handed over in pieces: `cut(at)` is at most how many bytes the fill at
    /// offset `at` returns.
    struct Pieces<'a>(&'a [u8], &'a dyn Fn(usize) -> usize);

    impl Source for Pieces<'_> {
        fn fill(&mut self, at: usize, buf: &mut [u8]) -> usize {
            let rest = &self.0[at.min(self.0.len())..];
            let n = rest.len().min(buf.len()).min((self.1)(at).max(1));
            buf[..n].copy_from_slice(&rest[..n]);
            n
        }
    }

    /// The payload Navidrome passes for `frame`, the message string escaped as Go does.
    fn payload(id: &str, frame: &str) -> Vec<u8> {
        let mut o = Out::new();
        o.raw("{").key("connectionId").str(id).key("message").str(frame).raw("}");
        o.buf
    }

    fn decode(b: &[u8]) -> Option<(String, Inbound)> {
        text(&mut b.to_vec())
    }

    fn inbound(f: &str) -> Inbound {
        decode(&payload("1:a", f)).unwrap().1
    }

    /// READY with sequence number 1, whose sessions list names another session with
    /// `status` (none for 0).
    fn ready(sid: &str, url: &str, status: u8) -> Inbound {
        let mut sessions = Sessions::default();
        if status > 0 {
            sessions.add(b"other", status);
        }
        Inbound { kind: Kind::Ready, seq: Some(1), session_id: sid.into(), resume_url: url.into(), sessions, ..Inbound::default() }
    }

    const READY: &str = r#"{"t":"READY","s":1,"op":0,"d":{"v":9,"sessions":[{"session_id":"all","status":"online"},{"status":"dnd","session_id":"other","client_info":{"status":"idle"}}],"session_id":"abc","resume_gateway_url":"wss://r.discord.gg","x":[{"y":"}"}]}}"#;

    #[test]
    fn frames_become_typed_messages() {
        let hello = inbound(r#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#);
        assert_eq!((hello.kind, hello.heartbeat_ms, hello.seq), (Kind::Hello, 41250, None));
        assert_eq!(inbound(r#"{"op":10,"d":{"heartbeat_interval":"1"}}"#).heartbeat_ms, 0);
        assert_eq!(inbound(READY), ready("abc", "wss://r.discord.gg", 2));
        let kinds = [
            (r#"{"op":0,"t":"RESUMED","s":2,"d":{}}"#, Kind::Resumed, Some(2)),
            (r#"{"op":0,"t":"MESSAGE_CREATE","s":3,"d":{}}"#, Kind::Other, Some(3)),
            (r#"{"op":11}"#, Kind::Ack, None),
            (r#"{"op":1,"d":null}"#, Kind::Beat, None),
            (r#"{"op":7,"d":null}"#, Kind::Reconnect, None),
            (r#"{"op":9,"d":true}"#, Kind::Resumable, None),
            (r#"{"op":9,"d":false}"#, Kind::Refused, None),
            (r#"{"op":9,"d":"true"}"#, Kind::Refused, None),
            (r#"{"d":{"op":11},"s":5}"#, Kind::Other, Some(5)),
            (" {\"op\":11.0}\n trailing", Kind::Ack, None),
        ];
        for (f, kind, seq) in kinds {
            let got = inbound(f);
            assert_eq!((got.kind, got.seq), (kind, seq), "{f}");
        }
        let replace = inbound(r#"{"op":0,"t":"SESSIONS_REPLACE","s":4,"d":[{"session_id":"me","status":"online"},{"session_id":"desk","status":"idle"}]}"#);
        assert_eq!((replace.kind, replace.sessions.status("me"), replace.sessions.status("desk")), (Kind::Sessions, 1, 0));
    }

    #[test]
    fn not_json_is_an_invalid_frame() {
        let bad = [
            "not a frame", "", "[]", "null", "5", r#"{"op":"10"}"#, r#"{"op":null}"#, r#"{"op":1,"s":"2"}"#, r#"{"op":0,"t":5}"#,
            r#"{"op":{}}"#, r#"{"op":1"#, r#"{"op" 1}"#, r#"{"op":1 "s":2}"#, r#"{"d":[1}"#, r#"{"d":{"a"}}"#, r#"{"d":"\uZZZZ"}"#, r#"{"d":"a}"#, "{,}",
        ];
        for f in bad {
            assert_eq!(inbound(f).kind, Kind::Invalid, "{f}");
        }
    }

    #[test]
    fn a_malformed_payload_is_none() {
        let bad: [&[u8]; 9] = [
            b"[]", b"", b"null", br#"{"connectionId":"x"}"#, br#"{"message":5}"#, br#"{"message":{"op":11}}"#,
            br#"{"connectionId":1,"message":"{}"}"#, br#"{"message":"{}""#, br#"{"message":"\u12"}"#,
        ];
        for b in bad {
            assert_eq!(decode(b), None, "{}", String::from_utf8_lossy(b));
        }
        assert_eq!(decode(br#"{"message":"{\"op\":11}"}"#), Some((String::new(), Inbound { kind: Kind::Ack, ..Inbound::default() })), "no connection id");
    }

    #[test]
    fn what_holds_nothing_kept_is_only_skipped() {
        // As the reader this replaces skipped: nesting and strings only, at any depth.
        let deep = ["[".repeat(500), "]".repeat(500)].concat();
        for f in [format!(r#"{{"x":{deep},"op":11}}"#), r#"{"op":11,"x":{"a" "b"]}"#.into(), r#"{"op":11,"x":["\"]}\\",{"d":{]}]}"#.into()] {
            assert_eq!(inbound(&f).kind, Kind::Ack, "{f}");
        }
        assert_eq!(inbound(r#"{"op":11,"x":["a"}"#).kind, Kind::Invalid, "unbalanced: the object never ends");
    }

    #[test]
    fn keys_come_in_any_order() {
        let parts = [
            r#""op":0"#,
            r#""s":1"#,
            r#""t":"READY""#,
            r#""d":{"sessions":[{"session_id":"other","status":"dnd"}],"session_id":"abc","resume_gateway_url":"wss://r.discord.gg"}"#,
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [3, 0, 2, 1], [1, 3, 0, 2], [2, 3, 1, 0], [0, 3, 1, 2]] {
            let f = format!("{{{}}}", order.map(|i| parts[i]).join(","));
            assert_eq!(inbound(&f), ready("abc", "wss://r.discord.gg", 2), "{f}");
        }
        let (id, f) = decode(br#"{"message":"{\"op\":11}","x":[1,{"connectionId":"no"}],"connectionId":"2:bob"}"#).unwrap();
        assert_eq!((id.as_str(), f.kind), ("2:bob", Kind::Ack));
    }

    #[test]
    fn decoys_and_junk_are_skipped() {
        let junk = r#""guilds":[{"id":"1","name":"Guild \"1\" caf\u00e9 \ud83c\udfb5 \\o/ \/","session_id":"decoy","resume_gateway_url":"wss://decoy.discord.gg","sessions":[{"session_id":"d","status":"idle"}],"features":["NEWS",["x",[],{}],{"nested":{"deeper":[1,-2.5e-3,1E+2,true,false,null,{"op":7,"t":"RESUMED","d":true}]}}],"topic":"say \"}\" or \"]\" then \"session_id\":\"decoy\""}],"session_id":"decoy","d":{"session_id":"decoy"},"#;
        let f = READY.replace(r#""v":9,"#, &[r#""v":9,"#, junk].concat());
        assert_eq!(inbound(&f), ready("abc", "wss://r.discord.gg", 2));
        // The outer payload's own junk, and a frame key named like the outer ones.
        let (id, f) = decode(br#"{"x":{"message":"no","connectionId":"no"},"connectionId":"1:a","message":"{\"op\":11,\"connectionId\":\"2:b\",\"message\":\"\"}"}"#).unwrap();
        assert_eq!((id.as_str(), f.kind), ("1:a", Kind::Ack));
    }

    #[test]
    fn escapes_are_decoded_at_both_levels() {
        // Every escape of a JSON string, in the message and in the frame it holds; a lone
        // surrogate half is U+FFFD.
        let f = r#"{"op":0,"t":"RE\u0041DY","s":1,"d":{"session_id":"a\u0062c","resume_gateway_url":"wss:\/\/r.discord.gg","x":"\"\\\/\b\f\n\r\t\u00e9\ud83c\udfb5\ud83c\u0041\udfb5\ud83cx"}}"#;
        let b = payload("1:\u{e9}\u{1f3b5}\n\"", f);
        let (id, got) = decode(&b).unwrap();
        assert_eq!((id.as_str(), got), ("1:\u{e9}\u{1f3b5}\n\"", ready("abc", "wss://r.discord.gg", 0)));
        let b = br#"{"connectionId":"\/\u00e9\ud83c\udfb5\ud800\ud800\u0041\udc00\t","message":"{\u0022op\u0022:\u00311}"}"#;
        assert_eq!(decode(b), Some(("/\u{e9}\u{1f3b5}\u{fffd}\u{fffd}A\u{fffd}\t".into(), Inbound { kind: Kind::Ack, ..Inbound::default() })));
        assert_eq!(inbound(r#"{"op":0,"t":"READY","d":{"session_id":"\ud83c"}}"#).session_id, "", "U+FFFD is not sane");
    }

    #[test]
    fn window_boundaries_fall_anywhere() {
        let b = payload("1:\u{e9}\"x", &READY.replace(r#""v":9"#, r#""v":"\u00e9\ud83c\udfb5 \\\" \t""#));
        let whole = decode(&b).unwrap();
        assert_eq!(whole.1, ready("abc", "wss://r.discord.gg", 2));
        for k in 1..b.len() {
            // One cut at every offset, and pieces of every length.
            assert_eq!(text(&mut Pieces(&b, &|at| if at < k { k - at } else { usize::MAX })).as_ref(), Some(&whole), "cut at {k}");
            assert_eq!(text(&mut Pieces(&b, &|_| k)).as_ref(), Some(&whole), "pieces of {k}");
        }
    }

    #[test]
    fn long_values_are_cut_and_fail_the_sanity_check() {
        let long = "a".repeat(300);
        assert_eq!(inbound(&READY.replace("abc", &long).replace("r.discord.gg", &long)), ready("", "", 2));
        assert_eq!(inbound(&READY.replace("abc", &"a".repeat(255))).session_id.len(), 255);
        assert_eq!(inbound(&READY.replace("abc", &"a".repeat(256))).session_id, "");
        assert_eq!(inbound(&READY.replace("abc", "a b")).session_id, "");
        assert_eq!(inbound(&READY.replace("wss://r", "https://r")).resume_url, "");
        assert_eq!(inbound(&READY.replace("\"READY\"", &format!("\"{long}READY\""))).kind, Kind::Other);
    }

    #[test]
    fn sessions_lists() {
        // The first session that is neither ours nor "all", whichever is ours.
        let list = |d: &str| inbound(&format!(r#"{{"op":0,"t":"SESSIONS_REPLACE","d":{d}}}"#)).sessions;
        let l = list(r#"[{"session_id":"all","status":"online"},{"session_id":"me","status":"online"},{"session_id":"me","status":"idle"},{"session_id":"desk","status":"dnd"},{"session_id":"tv","status":"idle"}]"#);
        assert_eq!((l.status("me"), l.status("desk"), l.status("x")), (2, 0, 0));
        // Entries without a known status do not count; nor do other values in the list.
        let l = list(r#"[{"session_id":"a","status":"bogus"},{"status":"idle"},{"session_id":"b","status":"dnd","status":5},["x",{"session_id":"c","status":"dnd"}],"y",null]"#);
        assert_eq!((l.status(""), l.status("x")), (0, 1));
        assert_eq!(list(r#"{"sessions":[{"session_id":"a","status":"dnd"}]}"#).status("me"), 0, "not a list");
        let f = READY.replace(r#""d":{"v":9,"#, r#""d":[{"session_id":"q","status":"dnd"}],"e":{"v":9,"#);
        assert_eq!(inbound(&f), Inbound { kind: Kind::Ready, seq: Some(1), ..Inbound::default() }, "READY's d is an object");
    }

    #[test]
    fn a_megabyte_of_junk_streams_through() {
        // Built as the gateway fake builds a user's READY, and handed over a window at a
        // time by a source that never holds it (it makes the bytes as they are asked for).
        let guild = r#"{"id":"1","name":"Guild \"1\" caf\u00e9 \ud83c\udfb5 \\o/","features":["NEWS",["x",[],{}],{"nested":{"deeper":[1,-2.5e-3,1E+2,true,false,null]}}],"channels":[{"topic":"say \"}\" or \"]\" then \"session_id\":\"decoy\""}],"session_id":"decoy","resume_gateway_url":"wss://decoy.discord.gg"},"#;
        let inside = |f: &str| {
            let p = payload("", f);
            p[r#"{"connectionId":"","message":""#.len()..].to_vec()
        };
        let mut head = payload("1:a", r#"{"t":"READY","s":1,"op":0,"d":{"guilds":["#);
        head.truncate(head.len() - 2); // the message string and the payload go on
        let mut mid = inside(guild);
        mid.truncate(mid.len() - 2);
        let tail = inside(r#"{}],"sessions":[{"session_id":"d","status":"idle"}],"session_id":"abc","resume_gateway_url":"wss://r.discord.gg"}}"#);
        struct Gen<'a>(&'a [u8], &'a [u8], usize, &'a [u8]);
        impl Source for Gen<'_> {
            fn fill(&mut self, at: usize, buf: &mut [u8]) -> usize {
                let (h, m) = (self.0.len(), self.1.len() * self.2);
                let mut n = 0;
                while n < buf.len() {
                    let i = at + n;
                    buf[n] = match i {
                        _ if i < h => self.0[i],
                        _ if i < h + m => self.1[(i - h) % self.1.len()],
                        _ if i < h + m + self.3.len() => self.3[i - h - m],
                        _ => break,
                    };
                    n += 1;
                }
                n
            }
        }
        let n = (1 << 20) / mid.len() + 1;
        let (id, f) = text(&mut Gen(&head, &mid, n, &tail)).unwrap();
        let mut sessions = Sessions::default();
        sessions.add(b"d", 1);
        assert_eq!((id.as_str(), f), ("1:a", Inbound { sessions, ..ready("abc", "wss://r.discord.gg", 0) }));
    }


    #[test]
    fn control_frames_are_exact() {
        let tok = "to\"k\\en";
        assert_eq!(
            crate::json::at_depth1(|o| frame(o, &Frame::Identify, tok)),
            r#"{"op":2,"d":{"token":"to\"k\\en","intents":0,"properties":{"os":"Linux","browser":"Discord Client","device":""}}}"#
        );
        assert_eq!(crate::json::at_depth1(|o| frame(o, &Frame::Heartbeat(None), tok)), r#"{"op":1,"d":null}"#);
        assert_eq!(crate::json::at_depth1(|o| frame(o, &Frame::Heartbeat(Some(42)), tok)), r#"{"op":1,"d":42}"#);
        assert_eq!(
            crate::json::at_depth1(|o| frame(o, &Frame::Resume { session_id: "s1".into(), seq: 9 }, "t")),
            r#"{"op":6,"d":{"token":"t","session_id":"s1","seq":9}}"#
        );
    }
}
