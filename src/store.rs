//! What outlives a call: records kept in the Navidrome cache (every call is a fresh
//! instance, ABI §2.2), each with its key, its encoding and a typed get and put (a
//! `Slot`). A value that does not parse is treated as absent, so a corrupted entry
//! degrades to a reconnect or a lookup, never a trap.
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
//!
//! Lookup caches keep their own expiry inside the value (`Found`): the host extends an
//! entry's life on every read (ABI §4.6), so its TTL cannot be trusted.

use crate::gateway::{Conn, Link, Phase};
use crate::host::{self, Host};
use crate::json::Out;
use crate::presence::{Sent, Want, WINDOW_SENDS};
use crate::text::{self, int, join3, split, Fnv};
use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;

/// How long a record lives in the cache unless written again (reads extend it): 0 sends
/// no TTL, so the host's default applies, a day (ABI §4.6: fewer bytes to send).
const DEFAULT_TTL: i64 = 0;

/// A record's encoding as a cache value.
pub trait Record {
    /// Writes the value inside the cache request's `value` string.
    fn save(&self, o: &mut Out);
    fn load(text: &str) -> Option<Self>
    where
        Self: Sized;
}

/// The cache entry holding one record of type `R`.
pub struct Slot<R> {
    pub key: String,
    record: PhantomData<R>,
}

impl<R: Record> Slot<R> {
    fn at(key: String) -> Self {
        Slot { key, record: PhantomData }
    }

    /// `Ok(None)` when absent or unreadable; `Err` when the host failed (so a caller can
    /// refuse to act on state it could not read).
    pub fn read(&self, h: &mut impl Host) -> Result<Option<R>, String> {
        // No record loads from "", an absent entry.
        Ok(R::load(&host::cache_read(h, &self.key)?))
    }

    /// `read` for records whose loss only costs a default.
    pub fn get(&self, h: &mut impl Host) -> Option<R> {
        R::load(&host::cache_get(h, &self.key))
    }

    #[inline(always)]
    pub fn put(&self, h: &mut impl Host, r: &R) -> Result<(), String> {
        put(h, &self.key, r, DEFAULT_TTL)
    }

    pub fn remove(&self, h: &mut impl Host) -> Result<(), String> {
        host::cache_remove(h, &self.key)
    }
}

/// One encoder call for every record type.
fn put(h: &mut impl Host, key: &str, r: &dyn Record, ttl_secs: i64) -> Result<(), String> {
    host::cache_set(h, key, ttl_secs, &|o| r.save(o))
}

/// `<kind>.<user>`.
fn key<R: Record>(kind: &str, user: &str) -> Slot<R> {
    Slot::at(join3(kind, ".", user))
}

/// Records of connection `gen`: `<kind>.<gen>.<user>`.
#[inline(always)]
fn conn_key<R: Record>(kind: &str, gen: u32, user: &str) -> Slot<R> {
    Slot::at(crate::ids::numbered(kind, ".", gen as i64, user))
}

/// The user's link to Discord (`gw`).
pub fn link(user: &str) -> Slot<Link> {
    key("gw", user)
}

/// Connection `gen` as its read loop left it (`cn`).
pub fn conn(gen: u32, user: &str) -> Slot<Conn> {
    conn_key("cn", gen, user)
}

/// What was sent on connection `gen` (`tx`).
pub fn sent(gen: u32, user: &str) -> Slot<Sent> {
    conn_key("tx", gen, user)
}

/// When a heartbeat of connection `gen` that found the send lock taken fell due (`hw`).
pub fn beat_wanted(gen: u32, user: &str) -> Slot<i64> {
    conn_key("hw", gen, user)
}

/// Connection `gen` was closed for idleness: its session ended (`end`, the close code).
pub fn ended(gen: u32, user: &str) -> Slot<i64> {
    conn_key("end", gen, user)
}

/// The presence the user wants shown.
pub fn want(user: &str) -> Slot<Want> {
    key("want", user)
}

/// The latest track of the user's other player.
pub fn other(user: &str) -> Slot<Want> {
    key("other", user)
}

/// The newest now-playing (hosts before 0.62).
#[inline(always)]
pub fn legacy(user: &str) -> Slot<Want> {
    key("legacy", user)
}

/// The time of the user's last `stopped` (ms).
pub fn stopped(user: &str) -> Slot<i64> {
    key("stopped", user)
}

/// Marks a host that sends playback reports (Navidrome ≥ 0.62).
#[inline(always)]
pub fn reports_seen() -> Slot<i64> {
    Slot::at("host.reports".into())
}

/// A lookup result: `caa`/`caa.rg` (a cover by release or release group MBID), `uguu`
/// (an upload by track), `down` (a failed service), `assets.blocked` (registration paused
/// for a user).
pub fn found(kind: &str, id: &str) -> Slot<Found> {
    key(kind, id)
}

/// A lookup result under a hash of `id`: `asset.` (a registered image by URL),
/// `spotify.` (a link by artist, title and album, NUL-separated).
pub fn found_hashed(prefix: &str, id: &str) -> Slot<Found> {
    let mut f = Fnv::new();
    f.eat(id.as_bytes());
    let mut k = prefix.as_bytes().to_vec();
    for i in (0..16).rev() {
        k.push(text::hex((f.0 >> (i * 4)) as u8));
    }
    Slot::at(text::utf8(k))
}

/// A lookup result and until when (ms) it holds: `<until> <value>`.
pub struct Found {
    until_ms: i64,
    value: String,
}

impl Record for Found {
    fn save(&self, o: &mut Out) {
        o.int(self.until_ms).raw(" ").text(&self.value);
    }
    fn load(text: &str) -> Option<Self> {
        let (until, value) = text::cut(text, b' ')?;
        Some(Found { until_ms: int(until)?, value: value.into() })
    }
}

impl Slot<Found> {
    /// Whether a value is kept that has not expired at `now`; it goes to `to`, which is
    /// left as it was when there is none.
    pub fn fresh(&self, h: &mut impl Host, now: i64, to: &mut String) -> bool {
        match self.get(h) {
            Some(f) if f.until_ms > now => {
                *to = f.value;
                true
            }
            _ => false,
        }
    }

    /// Keeps `value` for `ttl_ms`; a failed write only costs the lookup again.
    pub fn keep(&self, h: &mut impl Host, value: &str, now: i64, ttl_ms: i64) {
        let _ = put(h, &self.key, &Found { until_ms: now + ttl_ms, value: value.into() }, ttl_ms / 1000);
    }
}

impl Record for i64 {
    fn save(&self, o: &mut Out) {
        o.int(*self);
    }
    fn load(text: &str) -> Option<Self> {
        int(text)
    }
}

/// A record's numbers, each followed by `sep`: the one at `seq.0` is `-` when `seq.1` is
/// none (a sequence number).
fn numbers(o: &mut Out, sep: &str, nums: &[i64], seq: (usize, Option<i64>)) {
    for (i, n) in nums.iter().enumerate() {
        match seq {
            (at, None) if at == i => o.raw("-"),
            _ => o.int(*n),
        }
        .raw(sep);
    }
}

/// A session record: numbers, one of them a sequence number (at `seq.0`, `-` for none),
/// then the session id and the resume URL, space-separated; strings were checked to hold
/// no spaces (`gateway::wire`, which keeps only sane ones).
fn session_text(o: &mut Out, nums: &[i64], seq: (usize, Option<i64>), session_id: &str, resume_url: &str) {
    numbers(o, " ", nums, seq);
    o.text(session_id).raw(" ").text(resume_url);
}

/// Reads a record of `nums.len()` numbers then `texts.len()` texts, `sep` between each
/// (`session_text`, the want): the number at `seq` may be `-` for none, and then the
/// answer is false.
fn fields(text: &str, sep: u8, nums: &mut [i64], seq: usize, texts: &mut [String]) -> Option<bool> {
    let mut p = split(text, sep);
    let mut given = true;
    for (i, n) in nums.iter_mut().enumerate() {
        let raw = p.next()?;
        if i == seq && raw == "-" {
            given = false;
        } else {
            *n = int(raw)?;
        }
    }
    for t in texts {
        *t = p.next()?.into();
    }
    p.next().is_none().then_some(given)
}

/// `gen idle attempts at seq waiting identify_at session_id resume_url`.
impl Record for Link {
    fn save(&self, o: &mut Out) {
        let l = self;
        let nums = [l.gen as i64, l.idle as i64, l.attempts as i64, l.at_ms, l.seq.unwrap_or(0), l.waiting as i64, l.identify_at];
        session_text(o, &nums, (4, l.seq), &l.session_id, &l.resume_url);
    }

    fn load(text: &str) -> Option<Link> {
        let (mut n, mut t) = ([0; 7], [String::new(), String::new()]);
        let seq = fields(text, b' ', &mut n, 4, &mut t)?.then_some(n[4]);
        let [session_id, resume_url] = t;
        Some(Link { gen: n[0] as u32, idle: n[1] != 0, attempts: n[2] as u32, at_ms: n[3], seq, session_id, resume_url, waiting: n[5] != 0, identify_at: n[6] })
    }
}

/// `phase seq heartbeat status ready ack session_id resume_url`: the record's bytes,
/// which also tell whether a connection changed.
#[inline(always)]
pub fn conn_text(c: &Conn) -> Vec<u8> {
    let mut o = Out::new();
    c.save(&mut o);
    o.buf
}

impl Record for Conn {
    fn save(&self, o: &mut Out) {
        let c = self;
        session_text(o, &[c.phase as i64, c.seq.unwrap_or(0), c.heartbeat_ms as i64, c.status as i64, c.ready_ms, c.ack_ms], (1, c.seq), &c.session_id, &c.resume_url);
    }

    fn load(text: &str) -> Option<Conn> {
        let (mut n, mut t) = ([0; 6], [String::new(), String::new()]);
        let seq = fields(text, b' ', &mut n, 1, &mut t)?.then_some(n[1]);
        let [session_id, resume_url] = t;
        Some(Conn { phase: Phase::from_u8(n[0] as u8)?, seq, heartbeat_ms: n[2] as u32, status: n[3].clamp(0, 3) as u8, ready_ms: n[4], ack_ms: n[5], session_id, resume_url })
    }
}

/// `fingerprint start beat times…`.
impl Record for Sent {
    fn save(&self, o: &mut Out) {
        o.int(self.fingerprint as i64);
        for v in [self.start_ms, self.beat_ms].iter().chain(&self.times) {
            o.raw(" ").int(*v);
        }
    }

    fn load(text: &str) -> Option<Sent> {
        let mut v = Vec::new();
        for t in split(text, b' ') {
            v.push(int(t)?);
        }
        match *v {
            [fingerprint, start_ms, beat_ms, ..] if v.len() <= 3 + WINDOW_SENDS => Some(Sent { fingerprint: fingerprint as u64, start_ms, beat_ms, times: v.split_off(3) }),
            _ => None,
        }
    }
}

/// The wanted presence: `at start end legacy paused`, then title, artist, album, album
/// artist, track id, first artist, album MBID, group MBID, recording MBID and player,
/// separated by DEL (U+007F). No text keeps a DEL: a control character, which Discord shows
/// as nothing (`presence::text_field` drops it). Unlike quoted strings, a separator costs
/// one byte inside the cache request: fewer host calls to move the record.
impl Record for Want {
    fn save(&self, o: &mut Out) {
        let w = self;
        // No number is optional: `seq` is past them.
        numbers(o, SEP, &[w.at_ms, w.start_ms, w.end_ms, w.legacy, w.paused as i64], (5, None));
        for (i, v) in w.texts().iter().enumerate() {
            if i > 0 {
                o.raw(SEP);
            }
            for piece in split(v, SEP.as_bytes()[0]) {
                o.text(piece);
            }
        }
    }

    fn load(text: &str) -> Option<Want> {
        // The texts start empty in a loop (`from_fn`), not field by field; no number is
        // optional: `seq` is past them.
        let (mut n, mut t) = ([0; 5], core::array::from_fn(|_| String::new()));
        fields(text, SEP.as_bytes()[0], &mut n, 5, &mut t)?;
        let [title, artist, album, album_artist, track_id, artist0, album_mbid, group_mbid, recording_mbid, player] = t;
        let [at_ms, start_ms, end_ms, legacy, paused] = n;
        Some(Want { at_ms, paused: paused != 0, start_ms, end_ms, title, artist, album, album_artist, track_id, artist0, album_mbid, group_mbid, recording_mbid, player, legacy })
    }
}

/// The want's field separator.
const SEP: &str = "\u{7f}";

#[cfg(test)]
mod tests {
    use super::*;

    /// Saved as the cache request carries it (escaped in a JSON string), then loaded.
    fn rt<R: Record>(r: &R) -> Option<R> {
        R::load(&crate::json::at_depth1(|o| r.save(o)))
    }

    #[test]
    fn link_and_conn_round_trip() {
        let mut l = Link::default();
        assert_eq!(rt(&l), Some(l.clone()));
        l = Link { gen: 7, idle: false, attempts: 3, at_ms: 1714600000000, seq: Some(123456789), session_id: "abc".into(), resume_url: "wss://gateway-us-east1-b.discord.gg".into(), waiting: true, identify_at: 1714600000000 };
        assert_eq!(rt(&l), Some(l.clone()));
        l.resume_url.clear();
        assert_eq!(rt(&l), Some(l));
        let mut c = Conn::default();
        assert_eq!(rt(&c), Some(c.clone()));
        c = Conn { phase: Phase::Fatal, seq: Some(9), heartbeat_ms: 41250, status: 2, ready_ms: 5, ack_ms: 6, session_id: "s".into(), resume_url: String::new() };
        assert_eq!(rt(&c), Some(c));
    }

    #[test]
    fn corrupt_records_are_absent() {
        assert!(Link::load("1 0 0 0 - 0 0 a b").is_some() && Conn::load("1 - 0 0 0 0 a b").is_some());
        for bad in ["", "x", "1 0 0 0 - 0 0 a", "1 0 0 0 - 0 0 a b c", "1 0 0 0 - 0 a b", "1 0 0 0 - 0 x a b", "1 0 0 0 1x 0 0 a b", "- 0 0 0 - 0 0 a b", "99999999999999999999 0 0 0 - 0 0 a b"] {
            assert_eq!(Link::load(bad), None, "{bad:?}");
        }
        for bad in ["", "9 - 0 0 0 0 a b", "1 - 0 0 0 0 a", "1 - 0 0 0 0 a b c", "1 - - 0 0 0 a b", "- - 0 0 0 0 a b"] {
            assert_eq!(Conn::load(bad), None, "{bad:?}");
        }
        assert_eq!(Sent::load("1 2 3 4 5 6 7 8 9"), None);
        assert_eq!(Sent::load("1 2"), None);
        assert_eq!(Sent::load("a 1 2"), None);
        // An absent entry reads as "": no record.
        assert!(Sent::load("").is_none() && Found::load("").is_none() && i64::load("").is_none());
    }

    #[test]
    fn sent_round_trips() {
        let s = Sent { fingerprint: u64::MAX - 5, start_ms: -1, beat_ms: 7, times: vec![1, 2, 1714600000000] };
        assert_eq!(rt(&s), Some(s));
        let s = Sent::default();
        assert_eq!(rt(&s), Some(s));
    }

    #[test]
    fn want_round_trips() {
        let mut w = Want { at_ms: 5, paused: true, start_ms: -1, end_ms: 9, title: "A \"B\" \\ C\u{7} |".into(), player: "p".into(), legacy: 3, ..Want::default() };
        assert_eq!(rt(&w), Some(w.clone()));
        // A DEL is the separator: a text loses it, and the other fields stay in place.
        w.artist = "\u{7f}x\u{7f}".into();
        let back = rt(&w).unwrap();
        assert_eq!((back.artist.as_str(), back.album.as_str(), back.player.as_str()), ("x", "", "p"));
        let full = "1\u{7f}2\u{7f}3\u{7f}4\u{7f}0\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}";
        assert!(Want::load(full).is_some());
        for bad in ["", "[1,", "1\u{7f}2\u{7f}3\u{7f}4\u{7f}5", &[full, "\u{7f}"].concat(), &full.replacen('2', "x", 1), &full[..full.len() - 1]] {
            assert!(Want::load(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn found_expires() {
        assert_eq!(Found::load("12 a b").map(|f| (f.until_ms, f.value)), Some((12, "a b".into())));
        assert!(Found::load("x a").is_none() && Found::load("12").is_none());
    }

    #[test]
    fn keys() {
        assert_eq!(link("a:b").key, "gw.a:b");
        assert_eq!(conn(12, "a:b").key, "cn.12.a:b");
        assert_eq!(found_hashed("asset.", "x").key.len(), 6 + 16);
    }

    #[test]
    fn cache_keys_are_fnv_hex() {
        assert_eq!(found_hashed("", "").key, "cbf29ce484222325");
        assert_eq!(found_hashed("asset.", "https://example.com/art.jpg").key, "asset.911d7a8ed5f599b0");
        assert_ne!(found_hashed("s.", "a\0b").key, found_hashed("s.", "ab\0").key);
    }
}
