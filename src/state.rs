//! What outlives a call: records kept in the Navidrome cache (every call is a fresh
//! instance, ABI §2.2). Each record is a short text value; a value that does not parse
//! is treated as absent, so a corrupted entry degrades to a reconnect, never a trap.
//!
//! Navidrome runs callbacks concurrently: a goroutine per timer firing, one read loop per
//! websocket (one callback at a time), one worker for playback reports beside one for
//! now-playing, users in parallel. Its cache has no compare-and-swap, so two calls that
//! read, change and write one record lose an update. Every record therefore has one
//! writer at a time, or a lost update is harmless. The only atomic operation the host
//! offers is its scheduler's refusal of a duplicate id (`already exists`, under a
//! mutex), which serves as the lock and as the single-run guarantee below.
//!
//! | record | written by | why concurrent writers cannot corrupt it |
//! |---|---|---|
//! | `gw.<user>` link: current generation, idle, attempts, session to resume, identify budget | the reconnect timer `rc:<gen>:<user>` only | one timer per id runs at a time; `rc:<gen+1>` exists only after `rc:<gen>` wrote the link and dialled; a stale `rc` finds a newer generation and does nothing |
//! | `cn.<gen>.<user>` one connection: phase, seq, session, status, READY and ACK times | that connection's read loop only | Navidrome calls one websocket callback at a time per connection; other calls read it |
//! | `tx.<gen>.<user>` sent on one connection: presence fingerprint, rate window, last heartbeat | whoever holds the send lock `sl:<gen>:<user>` | the lock is a one-time schedule (a duplicate id is refused); it also keeps two sends off one socket (gorilla panics on concurrent writes); if a holder dies its lease fires and repairs |
//! | `hw.<gen>.<user>` when a heartbeat that found the lock taken fell due | that heartbeat's call | the lock's holder reads it after releasing and sends the beat if none went out since; if an older time overwrites a newer one, the newer beat's own retry timer sends it a second later |
//! | `end.<gen>.<user>` the connection was closed for idleness (its session ended) | idle-close timers | a constant: two writers write the same value |
//! | `want.<user>` the wanted presence; `stopped.<user>` time of the last stop | playback reports (one worker for the server); on 0.60–0.61 the now-playing timers `np`/`ne`, which only write the newest presence they were scheduled for | a lost update can only lose a want that a later report or timer writes again |
//! | `other.<user>` the latest track of another player of the user, shown again when the shown player stops | playback reports (one worker for the server) | serial |
//! | `legacy.<user>` the newest now-playing | now-playing calls (one worker) | serial |
//! | `host.reports`, lookup caches (covers, links, registrations, failures, `down.<service>`) | any call | values, not read-modify-write: two writers write equivalent values |
//!
//! Connection and timer ids carry the generation, so a callback of an older connection
//! finds a newer link and changes nothing.

use crate::gateway::{Conn, Link, Phase};
use crate::json::Out;
use crate::presence::{Sent, WINDOW_SENDS};
use crate::text::{int, join3, num, split, Split};
use alloc::string::String;
use alloc::vec::Vec;

/// Cache keys: `<kind>.<user>`.
pub fn key(kind: &str, user: &str) -> String {
    join3(kind, ".", user)
}

/// Records of connection `gen`: `<kind>.<gen>.<user>`.
pub fn conn_key(kind: &str, gen: u32, user: &str) -> String {
    numbered(kind, ".", gen as i64, user)
}

/// `<kind><sep><n><sep><user>`: connection record keys, and timer ids (`:`).
pub fn numbered(kind: &str, sep: &str, n: i64, user: &str) -> String {
    join3(kind, sep, &join3(&num(n), sep, user))
}

/// Fields of a record, space-separated; strings were checked to hold no spaces
/// (`gateway::ready_fields`), `-` stands for no sequence number.
struct Fields(Out);

impl Fields {
    fn new() -> Self {
        Fields(Out::new())
    }
    fn int(mut self, v: i64) -> Self {
        if !self.0.buf.is_empty() {
            self.0.raw(" ");
        }
        self.0.int(v);
        self
    }
    fn seq(mut self, v: Option<i64>) -> Self {
        match v {
            Some(q) => self.int(q),
            None => {
                self.0.raw(if self.0.buf.is_empty() { "-" } else { " -" });
                self
            }
        }
    }
    fn text(mut self, v: &str) -> Self {
        self.0.raw(" ").raw(v);
        self
    }
    fn ints(mut self, v: &[i64]) -> Self {
        for t in v {
            self = self.int(*t);
        }
        self
    }
    fn done(self) -> String {
        crate::text::utf8(self.0.buf)
    }
}

struct Parse<'a>(Split<'a>);

impl<'a> Parse<'a> {
    fn new(text: &'a str) -> Self {
        Parse(split(text, b' '))
    }
    fn int(&mut self) -> Option<i64> {
        int(self.0.next()?)
    }
    fn seq(&mut self) -> Option<Option<i64>> {
        let raw = self.0.next()?;
        if raw == "-" { Some(None) } else { Some(Some(int(raw)?)) }
    }
    fn text(&mut self) -> Option<String> {
        self.0.next().map(String::from)
    }
    fn end(mut self) -> Option<()> {
        self.0.next().is_none().then_some(())
    }
    /// The remaining fields: numbers, at most `most`.
    fn ints(&mut self, most: usize) -> Option<Vec<i64>> {
        let mut v = Vec::new();
        for t in self.0.by_ref() {
            v.push(int(t)?);
        }
        (v.len() <= most).then_some(v)
    }
}

/// `gen idle attempts at seq session_id resume_url waiting identify_at`.
pub fn save_link(l: &Link) -> String {
    let f = Fields::new().int(l.gen as i64).int(l.idle as i64).int(l.attempts as i64).int(l.at_ms).seq(l.seq).text(&l.session_id).text(&l.resume_url);
    f.int(l.waiting as i64).int(l.identify_at).done()
}

pub fn load_link(text: &str) -> Option<Link> {
    let mut p = Parse::new(text);
    let l = Link {
        gen: p.int()? as u32,
        idle: p.int()? != 0,
        attempts: p.int()? as u32,
        at_ms: p.int()?,
        seq: p.seq()?,
        session_id: p.text()?,
        resume_url: p.text()?,
        waiting: p.int()? != 0,
        identify_at: p.int()?,
    };
    p.end().map(|_| l)
}

/// `phase seq heartbeat status fatal ready ack session_id resume_url`.
pub fn save_conn(c: &Conn) -> String {
    Fields::new()
        .int(c.phase as i64)
        .seq(c.seq)
        .int(c.heartbeat_ms as i64)
        .int(c.status as i64)
        .int(c.fatal as i64)
        .int(c.ready_ms)
        .int(c.ack_ms)
        .text(&c.session_id)
        .text(&c.resume_url)
        .done()
}

pub fn load_conn(text: &str) -> Option<Conn> {
    let mut p = Parse::new(text);
    let c = Conn {
        phase: Phase::from_u8(p.int()? as u8)?,
        seq: p.seq()?,
        heartbeat_ms: p.int()? as u32,
        status: p.int()?.clamp(0, 3) as u8,
        fatal: p.int()? as u16,
        ready_ms: p.int()?,
        ack_ms: p.int()?,
        session_id: p.text()?,
        resume_url: p.text()?,
    };
    p.end().map(|_| c)
}

pub fn save_sent(s: &Sent) -> String {
    Fields::new().int(s.fingerprint as i64).int(s.start_ms).int(s.beat_ms).ints(&s.times).done()
}

pub fn load_sent(text: &str) -> Option<Sent> {
    let mut p = Parse::new(text);
    let (fingerprint, start_ms, beat_ms) = (p.int()? as u64, p.int()?, p.int()?);
    Some(Sent { fingerprint, start_ms, beat_ms, times: p.ints(WINDOW_SENDS)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_and_conn_round_trip() {
        let mut l = Link::default();
        assert_eq!(load_link(&save_link(&l)), Some(l.clone()));
        l = Link { gen: 7, idle: false, attempts: 3, at_ms: 1714600000000, seq: Some(123456789), session_id: "abc".into(), resume_url: "wss://gateway-us-east1-b.discord.gg".into(), waiting: true, identify_at: 1714600000000 };
        assert_eq!(load_link(&save_link(&l)), Some(l.clone()));
        l.resume_url.clear();
        assert_eq!(load_link(&save_link(&l)), Some(l));
        let mut c = Conn::default();
        assert_eq!(load_conn(&save_conn(&c)), Some(c.clone()));
        c = Conn { phase: Phase::Fatal, seq: Some(9), heartbeat_ms: 41250, status: 2, fatal: 4004, ready_ms: 5, ack_ms: 6, session_id: "s".into(), resume_url: String::new() };
        assert_eq!(load_conn(&save_conn(&c)), Some(c));
    }

    #[test]
    fn corrupt_records_are_absent() {
        for bad in ["", "x", "1 0 0 0 - a", "1 0 0 0 - a b c", "1 0 0 0 - a b", "1 0 0 0 - a b 0 1 2", "1 0 0 0 - a b 0", "1 0 0 0 - a b 0 x", "1 0 0 0 1x a b", "99999999999999999999 0 0 0 - a b"] {
            assert_eq!(load_link(bad), None, "{bad:?}");
        }
        for bad in ["", "9 - 0 0 0 0 0 a b", "1 - 0 0 0 0 0 a", "1 - 0 0 0 0 0 a b c"] {
            assert_eq!(load_conn(bad), None, "{bad:?}");
        }
        assert_eq!(load_sent("1 2 3 4 5 6 7 8 9"), None);
        assert_eq!(load_sent("1 2"), None);
        assert_eq!(load_sent("a 1 2"), None);
    }

    #[test]
    fn sent_round_trips() {
        let s = Sent { fingerprint: u64::MAX - 5, start_ms: -1, beat_ms: 7, times: vec![1, 2, 1714600000000] };
        assert_eq!(load_sent(&save_sent(&s)), Some(s));
        let s = Sent::default();
        assert_eq!(load_sent(&save_sent(&s)), Some(s));
    }

    #[test]
    fn keys() {
        assert_eq!(key("gw", "a:b"), "gw.a:b");
        assert_eq!(conn_key("cn", 12, "a:b"), "cn.12.a:b");
    }
}
