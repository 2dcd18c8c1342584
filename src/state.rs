//! What outlives a call: records kept in the Navidrome cache (every call is a fresh
//! instance, ABI §2.2). Each record is a short text value; a value that does not parse
//! is treated as absent, so a corrupted entry degrades to a reconnect, never a trap.

use crate::gateway::{Phase, Session};
use alloc::string::String;
use alloc::vec::Vec;

/// Cache keys: `<kind>.<user>`.
pub fn key(kind: &str, user: &str) -> String {
    let mut k = String::from(kind);
    k.push('.');
    k.push_str(user);
    k
}

/// `s` without ASCII white space at either end (config and template text; `str::trim`
/// would bring Unicode tables and UTF-8 decoding into the module).
pub fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &s[start..end]
}

pub fn num(v: i64) -> String {
    let mut o = crate::json::Out::new();
    o.int(v);
    crate::json::utf8(o.buf)
}

/// A decimal integer (`-` allowed), `None` on anything else or on overflow. One parser
/// for every number in text form, instead of `str::parse` per type.
pub fn int(s: &str) -> Option<i64> {
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    if digits.is_empty() {
        return None;
    }
    let mut v = 0i64;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub((b - b'0') as i64)?;
    }
    if neg { Some(v) } else { v.checked_neg() }
}

/// `gen phase seq heartbeat attempts fatal status session_id resume_url`, space-separated
/// (`-` for no seq). The two strings were checked to hold no spaces (`gateway::ready_fields`).
pub fn save_session(s: &Session) -> String {
    let mut o = String::new();
    for v in [s.gen as i64, s.phase as i64] {
        o.push_str(&num(v));
        o.push(' ');
    }
    match s.seq {
        Some(q) => o.push_str(&num(q)),
        None => o.push('-'),
    }
    for v in [s.heartbeat_ms as i64, s.attempts as i64, s.fatal as i64, s.status as i64] {
        o.push(' ');
        o.push_str(&num(v));
    }
    for v in [&s.session_id, &s.resume_url] {
        o.push(' ');
        o.push_str(v);
    }
    o
}

pub fn load_session(text: &str) -> Option<Session> {
    let mut f = text.split(' ');
    let mut n = || int(f.next()?);
    let gen = n()? as u32;
    let phase = Phase::from_u8(n()? as u8)?;
    let seq = {
        let raw = f.next()?;
        if raw == "-" { None } else { Some(int(raw)?) }
    };
    let mut n = || int(f.next()?);
    let (heartbeat_ms, attempts, fatal) = (n()? as u32, n()? as u32, n()? as u16);
    let status = n()?.clamp(0, 3) as u8;
    let session_id = f.next()?.into();
    let resume_url = f.next()?.into();
    f.next().is_none().then_some(Session { gen, phase, seq, heartbeat_ms, attempts, fatal, session_id, resume_url, status })
}

/// The last presence frames sent on the current session: a fingerprint of what was shown
/// (0: nothing), its start time, and the times of the last 5 presence updates (rate budget).
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Sent {
    pub fingerprint: u64,
    pub start_ms: i64,
    pub times: Vec<i64>,
}

pub fn save_sent(s: &Sent) -> String {
    let mut o = num(s.fingerprint as i64);
    for v in core::iter::once(&s.start_ms).chain(&s.times) {
        o.push(' ');
        o.push_str(&num(*v));
    }
    o
}

pub fn load_sent(text: &str) -> Option<Sent> {
    let mut f = text.split(' ').map(int);
    let fingerprint = f.next()?? as u64;
    let start_ms = f.next()??;
    let times = f.collect::<Option<Vec<_>>>()?;
    (times.len() <= crate::presence::WINDOW_SENDS).then_some(Sent { fingerprint, start_ms, times })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_round_trips() {
        let mut s = Session::default();
        assert_eq!(load_session(&save_session(&s)), Some(s.clone()));
        s.gen = 7;
        s.phase = Phase::Ready;
        s.seq = Some(123456789);
        s.heartbeat_ms = 41250;
        s.attempts = 3;
        s.fatal = 4004;
        s.status = 2;
        s.session_id = "abc".into();
        s.resume_url = "wss://gateway-us-east1-b.discord.gg".into();
        assert_eq!(load_session(&save_session(&s)), Some(s));
    }

    #[test]
    fn corrupt_records_are_absent() {
        for bad in ["", "x", "1 9 - 0 0 0 0  ", "1 4 - 0 0 0 0 a b c", "1 4 1x 0 0 0 0 a b", "99999999999999999999 1 - 0 0 0 0 a b", "1 4 - 0 0 0 a b"] {
            assert_eq!(load_session(bad), None, "{bad:?}");
        }
        assert_eq!(load_sent("1 2 3 4 5 6 7 8"), None);
        assert_eq!(load_sent("1"), None);
        assert_eq!(load_sent("a 1"), None);
    }

    #[test]
    fn sent_round_trips() {
        let s = Sent { fingerprint: u64::MAX - 5, start_ms: -1, times: vec![1, 2, 1714600000000] };
        assert_eq!(load_sent(&save_sent(&s)), Some(s));
        let s = Sent::default();
        assert_eq!(load_sent(&save_sent(&s)), Some(s));
    }

    #[test]
    fn numbers_and_keys() {
        assert_eq!(num(-42), "-42");
        assert_eq!(int("-"), None);
        assert_eq!(int(&num(i64::MIN)), Some(i64::MIN));
        assert_eq!(int(&num(i64::MAX)), Some(i64::MAX));
        assert_eq!(int("9223372036854775808"), None);
        assert_eq!(key("gw", "a:b"), "gw.a:b");
    }
}
