//! The plugin's modules compiled for the host by path (the plugin crate is a cdylib only:
//! an rlib would cost the wasm its LTO), plus what the fuzz targets and property tests
//! share: a strict JSON check independent of the plugin's reader, a host wrapper that
//! checks every request, and `World`, a scripted Navidrome (and optionally Discord).
#![allow(dead_code)]

extern crate alloc;

#[path = "../../src/config.rs"]
pub mod config;
#[path = "../../src/enrich.rs"]
pub mod enrich;
#[path = "../../tests/support/fake.rs"]
pub mod fake;
#[path = "../../src/gateway/mod.rs"]
pub mod gateway;
#[path = "../../src/host.rs"]
pub mod host;
#[path = "../../src/ids.rs"]
pub mod ids;
#[path = "../../src/input.rs"]
pub mod input;
#[path = "../../src/json.rs"]
pub mod json;
#[path = "../../src/players.rs"]
pub mod players;
#[path = "../../src/plugin.rs"]
pub mod plugin;
#[path = "../../src/presence.rs"]
pub mod presence;
#[path = "../../src/store.rs"]
pub mod store;
#[path = "../../src/text.rs"]
pub mod text;
#[path = "../../src/url.rs"]
pub mod url;

use fake::Fake;
use host::Level;
use host::{Call, Host};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const USER: &str = "alice";
pub const TOKEN: &str = "MTk4.fzTOKEN.q9";
pub const CLIENT_ID: &str = "123456789012345678";
/// Seconds: the time of the first report.
pub const T0: i64 = 1_714_600_000;
/// Discord drops a gateway payload over 4096 bytes (gateway docs, "Sending Events").
pub const MAX_FRAME: usize = 4096;

/// Strict RFC 8259 parse by serde_json; panics with the text when invalid.
pub fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(b)))
}

/// The string token at `r`, decoded by the plugin's reader.
pub fn text(r: &mut json::Reader) -> Option<String> {
    let mut s = String::new();
    r.string_to(&mut s).map(|_| s)
}

/// A string value, as Navidrome's decoder reads a text written at depth 1.
pub fn string(b: &[u8]) -> String {
    match parse(b) {
        Value::String(s) => s,
        v => panic!("not a JSON string: {v}"),
    }
}

/// The check of `parse` without building the value: serde_json accepts the same texts
/// (syntax, UTF-8, escapes and surrogates, number range, depth) whatever it builds.
pub fn validate(b: &[u8]) {
    if let Err(e) = serde_json::from_slice::<Strict>(b) {
        panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(b));
    }
}

/// Any JSON value, read through serde_json's `deserialize_any` as `Value` is, and dropped
/// but for an integer (as `Value::as_i64` reads it).
struct Strict(Option<i64>);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(Strict(None))
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Strict;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict(None))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Strict, E> {
        Ok(Strict(Some(i)))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Strict, E> {
        Ok(Strict(i64::try_from(u).ok()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Strict, A::Error> {
        while a.next_element::<Strict>()?.is_some() {}
        Ok(Strict(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Strict, A::Error> {
        while a.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict(None))
    }
}

/// A JSON text's integer "op" (as `parse(f)["op"].as_i64()` reads it).
fn op(f: &str) -> Option<i64> {
    serde_json::from_str::<BTreeMap<String, Strict>>(f).ok()?.remove("op")?.0
}

pub fn check_frame(f: &str) {
    validate(f.as_bytes());
    assert!(f.len() <= MAX_FRAME, "gateway frame of {} bytes: {f}", f.len());
}

/// JSON as Go's encoder writes it (Navidrome's payloads): `<`, `>`, `&`, U+2028, U+2029
/// escaped. Those characters only occur inside strings here. (Searched by std, which the
/// fuzzer does not instrument.)
pub fn go_json(v: &Value) -> Vec<u8> {
    let mut s = v.to_string();
    for (c, e) in [('<', "\\u003c"), ('>', "\\u003e"), ('&', "\\u0026"), ('\u{2028}', "\\u2028"), ('\u{2029}', "\\u2029")] {
        if s.contains(c) {
            s = s.replace(c, e);
        }
    }
    s.into_bytes()
}

/// Whether `hay` holds the ASCII `needle` (replacing invalid UTF-8 keeps every ASCII byte).
fn has(hay: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(hay).contains(needle)
}

/// The Fake behind a check of every request: strict JSON, frames within Discord's limits.
/// The Fake's clock is the simulated time; it keeps each timer's due time by it.
#[derive(Clone)]
pub struct Checked {
    pub fake: Fake,
}

impl Host for Checked {
    fn call(&mut self, f: Call, req: &[u8]) -> Vec<u8> {
        // Strict JSON; read into a value where a field is needed.
        let v = match f {
            Call::WsSend => parse(req),
            _ => {
                validate(req);
                Value::Null
            }
        };
        if f == Call::WsSend {
            check_frame(v["message"].as_str().expect("message is a string"));
        }
        self.fake.call(f, req)
    }
    fn config(&mut self, key: &str) -> Option<String> {
        self.fake.config(key)
    }
    fn log(&mut self, level: Level, msg: &str) {
        self.fake.log(level, msg)
    }
    fn now_ms(&mut self) -> i64 {
        self.fake.now_ms()
    }
}

/// A configured user over the Fake; `line` runs one scripted step and checks, after it,
/// that outputs and frames are valid JSON, frames ≤ 4096 bytes, and the token is in no
/// log line or error (unless an input carried it).
#[derive(Clone)]
pub struct World {
    pub h: Checked,
    tainted: bool,
    frames: usize,
    logs: usize,
    /// Act as Discord: Hello on connect, READY/RESUMED, heartbeat ACKs.
    pub discord: bool,
    answered: (usize, usize),
    seq: i64,
    /// (connection, plugin time, simulated clock) of every presence update sent.
    pub op3: Vec<(String, i64, i64)>,
    /// By connection: indices in `op3`, and how many of them `check_rate` has checked.
    rated: BTreeMap<String, (Vec<usize>, usize)>,
}

impl World {
    pub fn new() -> World {
        let mut fake = Fake::default();
        fake.config.insert("clientid".into(), CLIENT_ID.into());
        fake.config.insert("users".into(), json!([{"token": TOKEN, "username": USER}]).to_string());
        // Every lookup answers, so settings that enable them reach their parsers.
        for (prefix, status, location, body) in [
            ("https://discord.com/api/v9/applications/", 200, "", r#"[{"url":"https://nd.example.org/x","external_asset_path":"external/art"}]"#),
            ("https://labs.api.listenbrainz.org/", 200, "", r#"[{"spotify_track_ids":["63OQupATfueTdZMWIV7nzz"]}]"#),
            ("https://coverartarchive.org/", 307, "http://archive.org/download/x.jpg", ""),
            ("https://uguu.se/upload", 200, "", r#"{"success":true,"files":[{"url":"https://a.uguu.se/up.png"}]}"#),
        ] {
            fake.route(prefix, status, location, body);
        }
        fake.clock = T0 * 1000;
        let h = Checked { fake };
        World { h, tainted: false, frames: 0, logs: 0, discord: false, answered: (0, 0), seq: 0, op3: Vec::new(), rated: BTreeMap::new() }
    }

    /// Connected and READY, showing a track. Built once and cloned: the plugin keeps all
    /// its state in the host, so a clone is the same session.
    pub fn ready() -> World {
        thread_local! {
            static READY: World = {
                let mut w = World::new();
                w.report("playing", 0, 10);
                // The report asks for the reconnect timer at 0 s, which dials.
                w.advance(0);
                w.script(b"{\"op\":10,\"d\":{\"heartbeat_interval\":41250},\"s\":null,\"t\":null}\n{\"op\":0,\"t\":\"READY\",\"s\":1,\"d\":{\"session_id\":\"s1\",\"resume_gateway_url\":\"wss://r.discord.gg\"}}");
                // The new track's update goes out from its lookups' timer.
                w.advance(0);
                w
            };
        }
        READY.with(World::clone)
    }

    /// The current generation, as the plugin's link record has it.
    fn gen(&self) -> u32 {
        self.h.fake.cache.get(&store::link(USER).key).and_then(|t| <gateway::Link as store::Record>::load(t)).map_or(0, |l| l.gen)
    }

    /// The current connection id (`<gen>:<user>`).
    pub fn conn(&self) -> String {
        format!("{}:{USER}", self.gen())
    }

    /// Calls an export (`a` is_authorized, `p` playback_report, `n` now_playing, `t` text,
    /// `e` error, `c` close, `s` scheduler) with a raw payload.
    pub fn call(&mut self, export: u8, payload: &[u8]) -> plugin::Result {
        self.tainted |= has(payload, "fzTOKEN");
        let h = &mut self.h;
        let r = match export {
            b'a' => plugin::is_authorized(h, payload),
            b'p' => plugin::playback_report(h, payload),
            b'n' => plugin::now_playing(h, payload),
            b't' => plugin::on_text(h, payload.to_vec()),
            b'e' => plugin::on_end(h, payload, true),
            b'c' => plugin::on_end(h, payload, false),
            b's' => plugin::on_timer(h, payload),
            _ => return Ok(None),
        };
        match &r {
            Ok(Some(out)) => drop(parse(out)),
            Err(e) => assert!(self.tainted || !e.contains(TOKEN), "token in an error: {e}"),
            Ok(None) => {}
        }
        self.check();
        r
    }

    fn check(&mut self) {
        let fake = &self.h.fake;
        let mut at = None;
        for (c, f) in &fake.frames[self.frames..] {
            check_frame(f);
            if f.starts_with("{\"op\":3") {
                // The plugin's time of its last update (its sent record), read once a step.
                let at = *at.get_or_insert_with(|| {
                    let sent = fake.cache.get(&store::sent(self.gen(), USER).key).and_then(|t| <presence::Sent as store::Record>::load(t)).unwrap_or_default();
                    sent.times.last().copied().unwrap_or(i64::MIN)
                });
                self.op3.push((c.clone(), at, self.h.fake.clock));
            }
        }
        self.frames = fake.frames.len();
        for (_, l) in &fake.logs[self.logs..] {
            assert!(self.tainted || !l.contains(TOKEN), "token logged: {l}");
        }
        self.logs = fake.logs.len();
        if self.discord {
            self.answer();
        }
    }

    /// Discord's side: Hello for each new socket, READY for Identify, RESUMED for
    /// Resume, an ACK for each heartbeat.
    fn answer(&mut self) {
        let (c0, f0) = self.answered;
        let fake = &self.h.fake;
        self.answered = (fake.connects.len(), fake.frames.len());
        let mut out: Vec<(String, Value)> = Vec::new();
        for (_, id) in &fake.connects[c0..] {
            out.push((id.clone(), json!({"op": 10, "d": {"heartbeat_interval": 41250}, "s": null, "t": null})));
        }
        for (id, f) in &fake.frames[f0..] {
            self.seq += 1;
            let reply = match op(f) {
                Some(2) => json!({"op": 0, "t": "READY", "s": self.seq, "d": {"session_id": "s1", "resume_gateway_url": "wss://r.discord.gg"}}),
                Some(6) => json!({"op": 0, "t": "RESUMED", "s": self.seq, "d": {}}),
                Some(1) => json!({"op": 11}),
                _ => continue,
            };
            out.push((id.clone(), reply));
        }
        for (id, frame) in out {
            if self.h.fake.open.contains(&id) {
                let _ = self.call(b't', &go_json(&json!({"connectionId": id, "message": frame.to_string()})));
            }
        }
    }

    /// A text frame on the current connection (invalid UTF-8 replaced, as Go does).
    pub fn text(&mut self, frame: &[u8]) {
        let p = go_json(&json!({"connectionId": self.conn(), "message": String::from_utf8_lossy(frame)}));
        let _ = self.call(b't', &p);
    }

    /// The server ends the current socket: an error text, or a close code.
    pub fn drop_conn(&mut self, error: Option<&[u8]>, code: i64) {
        let id = self.conn();
        self.h.fake.open.remove(&id);
        let _ = match error {
            Some(e) => self.call(b'e', &go_json(&json!({"connectionId": id, "error": String::from_utf8_lossy(e)}))),
            None => self.call(b'c', &go_json(&json!({"connectionId": id, "code": code, "reason": ""}))),
        };
    }

    /// Runs a pending timer as the scheduler would (a one-time timer is removed first).
    pub fn fire(&mut self, id: &str) {
        let Some(&(_, recurring)) = self.h.fake.timers.get(id) else { return };
        if !recurring {
            self.h.fake.remove_timer(id);
        }
        let _ = self.call(b's', &go_json(&json!({"scheduleId": id, "payload": "", "isRecurring": recurring})));
    }

    /// Moves the clock on by `ms`, firing each timer when it falls due. A timer may fire
    /// every second for as long as the clock runs (the plugin's floor for a gateway's
    /// heartbeat interval); thousands of firings with the clock standing still are a loop.
    pub fn advance(&mut self, ms: i64) {
        let end = self.h.fake.clock + ms;
        let mut still = 0;
        loop {
            let fake = &mut self.h.fake;
            match fake.due.iter().map(|(id, &at)| (at, id.clone())).min() {
                Some((at, id)) if at <= end => {
                    still = if at > fake.clock { 0 } else { still + 1 };
                    assert!(still < 10_000, "timers keep firing without the clock moving: {:?}", fake.timers);
                    fake.clock = fake.clock.max(at);
                    if let Some(&(every, true)) = fake.timers.get(&id) {
                        fake.due.insert(id.clone(), at + every * 1000);
                    }
                    self.fire(&id);
                }
                _ => {
                    fake.clock = end;
                    return;
                }
            }
        }
    }

    /// A playback report at the current clock, as Navidrome sends it: the text `go_json`
    /// writes (keys in order), built directly. `state` is a plain word.
    pub fn report(&mut self, state: &str, track: u8, pos_s: i64) {
        let track = format!(r#"{{"album":"Album","albumArtist":"Artist","albumArtists":[],"artist":"Artist","artists":[{{"id":"1","name":"Artist"}}],"discNumber":1,"duration":180,"id":"T{track}","title":"T{track}","trackNumber":1}}"#);
        let p = format!(r#"{{"playbackRate":1,"playerId":"p1","playerName":"NavidromeUI","positionMs":{},"state":"{state}","timestamp":{},"track":{track},"username":"{USER}"}}"#, pos_s * 1000, self.h.fake.clock / 1000);
        let _ = self.call(b'p', p.as_bytes());
    }

    /// One step per line: `{…` a frame on the current connection; `f<n>` fire pending
    /// timer n; `E<text>` / `C<code>` the server drops the socket; `k<key>=<value>` set (or
    /// with no value, remove) a config key; `+<secs>` advance the clock (an hour at most);
    /// otherwise an export letter (see `call`) and its raw payload.
    pub fn script(&mut self, data: &[u8]) {
        for line in data.split(|&b| b == b'\n') {
            let Some((&op, rest)) = line.split_first() else { continue };
            let num = || std::str::from_utf8(rest).ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
            match op {
                b'{' => self.text(line),
                b'f' => {
                    let ids: Vec<String> = self.h.fake.timers.keys().cloned().collect();
                    if !ids.is_empty() {
                        self.fire(&ids[num().unsigned_abs() as usize % ids.len()]);
                    }
                }
                b'E' => self.drop_conn(Some(rest), 0),
                b'C' => self.drop_conn(None, num()),
                b'k' => {
                    let s = String::from_utf8_lossy(rest);
                    let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                    match v {
                        "" => self.h.fake.config.remove(k),
                        v => self.h.fake.config.insert(k.into(), v.into()),
                    };
                }
                // At most an hour a step: a heartbeat a second over a day is 86 400 calls.
                b'+' => self.advance(num().clamp(0, 3_600) * 1000),
                _ => drop(self.call(op, rest)),
            }
        }
    }

    /// Presence updates sent on one connection (Discord's budget is per connection): no
    /// more than 5 in any 20 s, by the plugin's own time and by the simulated clock.
    /// Checks the last update's connection, each window of 6 once: those ending at the
    /// updates it has not checked before.
    pub fn check_rate(&mut self) {
        let from = self.rated.values().map(|(ix, _)| ix.len()).sum();
        for (i, p) in self.op3.iter().enumerate().skip(from) {
            self.rated.entry(p.0.clone()).or_default().0.push(i);
        }
        let Some((conn, _, _)) = self.op3.last() else { return };
        let (ix, checked) = self.rated.get_mut(conn).expect("indexed above");
        for (name, pick) in [("plugin time", 0), ("clock", 1)] {
            let t = |j: usize| if pick == 0 { self.op3[ix[j]].1 } else { self.op3[ix[j]].2 };
            for j in (*checked).max(5)..ix.len() {
                if t(j) - t(j - 5) < 20_000 {
                    let sent: Vec<_> = ix.iter().map(|&i| &self.op3[i]).collect();
                    panic!("6 presence updates on {conn} within {} ms of {name}: {sent:?}", t(j) - t(j - 5));
                }
            }
        }
        *checked = ix.len();
    }
}
