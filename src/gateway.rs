//! The Discord gateway client as a plain state machine (sans-IO): one `Session` per user,
//! events in, actions out. Rules cited are from Discord's gateway docs
//! (discord-presence spec §1); the driver in `plugin.rs` performs the actions.

use crate::json::Reader;
use alloc::string::String;
use alloc::vec::Vec;

/// Discovery is skipped: the documented gateway, JSON encoding, no compression (§1.1).
pub const GATEWAY_URL: &str = "wss://gateway.discord.gg/?v=10&encoding=json";
const QUERY: &str = "/?v=10&encoding=json";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// No socket, nothing to show.
    Idle = 0,
    /// Socket requested; waiting for Hello (op 10).
    Connecting = 1,
    /// Identify (op 2) sent; waiting for READY.
    Identifying = 2,
    /// Resume (op 6) sent; waiting for RESUMED.
    Resuming = 3,
    /// Session usable: presence updates may be sent.
    Ready = 4,
    /// Socket gone; a reconnect is scheduled.
    Waiting = 5,
    /// Discord refused us for good (4004, 4010–4014): nothing until the config changes.
    Fatal = 6,
}

impl Phase {
    pub fn from_u8(v: u8) -> Option<Phase> {
        use Phase::*;
        [Idle, Connecting, Identifying, Resuming, Ready, Waiting, Fatal].get(v as usize).copied()
    }
}

/// Per-user gateway state kept in the host cache between calls.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Session {
    /// Connection generation; the connection and timer ids carry it so callbacks from an
    /// older socket are recognised and ignored (Navidrome frees ids late, ABI §7.3).
    pub gen: u32,
    pub phase: Phase,
    /// Last dispatch sequence number `s` (§1.2), sent back in heartbeats and Resume.
    pub seq: Option<i64>,
    pub heartbeat_ms: u32,
    /// Consecutive failed connection attempts, for backoff; reset on READY/RESUMED.
    pub attempts: u32,
    /// Close code that made the session fatal.
    pub fatal: u16,
    pub session_id: String,
    pub resume_url: String,
    /// The user's own status as their other Discord sessions show it (index in
    /// `STATUSES`), so our presence never overrides it (spec W16: v2 forced `dnd`).
    pub status: u8,
}

/// Statuses an Update Presence may carry (Discord gateway-events).
pub const STATUSES: [&str; 4] = ["online", "idle", "dnd", "invisible"];

pub fn status_index(s: &[u8]) -> Option<u8> {
    STATUSES.iter().position(|x| x.as_bytes() == s).map(|i| i as u8)
}

impl Default for Session {
    fn default() -> Self {
        Session {
            gen: 0,
            phase: Phase::Idle,
            seq: None,
            heartbeat_ms: 0,
            attempts: 0,
            fatal: 0,
            session_id: String::new(),
            resume_url: String::new(),
            status: 0,
        }
    }
}

/// Frames the client sends. Rendering is in `presence.rs`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Frame {
    Identify,
    Resume { session_id: String, seq: i64 },
    Heartbeat(Option<i64>),
}

/// Timers, one id per (kind, generation, user).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timer {
    /// First heartbeat after `interval × jitter` (one-time).
    FirstBeat,
    /// Every later heartbeat (recurring).
    Beat,
    /// Reconnect after a backoff (one-time).
    Reconnect,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    Connect(String),
    Send(Frame),
    /// Close our socket of generation `gen` with `code`; the driver marks the reason so
    /// the `on_close` it triggers is ignored.
    Close { code: u16, gen: u32 },
    /// Timers of the current generation, in seconds.
    Once(Timer, u32),
    Every(Timer, u32),
    /// Cancel a timer of generation `gen`.
    Cancel(Timer, u32),
    /// Set (true) or clear the heartbeat-ACK-pending flag.
    Ack(bool),
    /// Send the wanted presence if it is not shown yet.
    Flush(Fresh),
    /// A log line; a non-zero code is appended as `(code N)`.
    Log(Level, &'static str, u16),
}

/// What a flush may assume about what Discord shows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fresh {
    /// Nothing new: compare with what was sent.
    No,
    /// A resumed session: same session and rate budget, but what went out on the dead
    /// socket may never have arrived, so the presence is sent again.
    Resumed,
    /// A new session: it shows nothing and has its own rate budget.
    Session,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

pub enum Event<'a> {
    /// The wanted presence changed (`want`: there is something to show).
    Want,
    /// A text frame arrived on the current connection.
    Frame(&'a [u8]),
    /// The socket ended (server close, network error, or a failed dial: code 0).
    Closed(u16),
    /// A heartbeat timer fired; `ack_pending` is the flag set by the previous beat.
    Beat { first: bool, ack_pending: bool },
    Reconnect,
    /// Nothing was shown for the configured idle time: end the session.
    Idle,
}

/// What the machine needs besides its state: is there something to show, and entropy
/// for jitter (wasm32-unknown-unknown has no RNG; the driver hashes time and ids).
pub struct Ctx {
    pub want: bool,
    pub rand: u64,
}

/// How a close code is handled (Discord close-code table, spec §1.7).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OnClose {
    /// Reconnect and Resume if session data is held.
    Resume,
    /// Reconnect with a new session (Identify).
    Identify,
    /// Reconnect later, slowly (4008 rate limited, 4015 too many sessions).
    SlowDown,
    /// Never reconnect for this user until the configuration changes.
    Fatal(&'static str),
}

pub fn close_rule(code: u16) -> OnClose {
    match code {
        4004 => OnClose::Fatal("Discord rejected the token (authentication failed): it is invalid or revoked; presence stopped for this user until the token is updated in the plugin settings"),
        4010 | 4011 => OnClose::Fatal("Discord rejected the sharding; presence stopped for this user"),
        4012 => OnClose::Fatal("Discord rejected the gateway API version; presence stopped for this user"),
        4013 | 4014 => OnClose::Fatal("Discord rejected the gateway intents; presence stopped for this user"),
        4003 | 4007 | 4009 => OnClose::Identify,
        4008 | 4015 => OnClose::SlowDown,
        _ => OnClose::Resume,
    }
}

/// Reconnect delay in seconds: exponential from 2 s, capped at 60 s, with jitter in the
/// upper half so clients spread out; 4008/4015 wait at least 60 s.
pub fn backoff_secs(attempts: u32, slow: bool, rand: u64) -> u32 {
    let cap = if slow { 600 } else { 60 };
    let base = (2u32 << attempts.min(9).saturating_sub(1)).max(if slow { 60 } else { 2 }).min(cap);
    base / 2 + (rand % (base as u64 / 2 + 1)) as u32
}

impl Session {
    fn connect(&mut self, out: &mut Vec<Action>) {
        self.gen = self.gen.wrapping_add(1);
        self.phase = Phase::Connecting;
        let url = if self.resumable() {
            let mut u = String::from(self.resume_url.strip_suffix('/').unwrap_or(&self.resume_url));
            u.push_str(QUERY);
            u
        } else {
            self.forget();
            GATEWAY_URL.into()
        };
        let msg = if self.resumable() { "connecting to Discord to resume the session" } else { "connecting to Discord" };
        out.push(Action::Log(Level::Info, msg, 0));
        out.push(Action::Connect(url));
    }

    fn open(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Identifying | Phase::Resuming | Phase::Ready)
    }

    fn resumable(&self) -> bool {
        !self.session_id.is_empty() && !self.resume_url.is_empty() && self.seq.is_some()
    }

    /// Drops the session so the next Hello is answered with Identify (§1.6).
    fn forget(&mut self) {
        self.session_id.clear();
        self.resume_url.clear();
        self.seq = None;
    }

    fn stop_beats(&self, out: &mut Vec<Action>) {
        out.push(Action::Cancel(Timer::FirstBeat, self.gen));
        out.push(Action::Cancel(Timer::Beat, self.gen));
    }

    /// Closes our socket with 4000, which keeps the session resumable (§1.5).
    fn close(&self, out: &mut Vec<Action>) {
        self.stop_beats(out);
        out.push(Action::Close { code: 4000, gen: self.gen });
    }

    fn reconnect_now(&mut self, out: &mut Vec<Action>) {
        self.close(out);
        self.connect(out);
    }

    fn wait(&mut self, secs: u32, out: &mut Vec<Action>) {
        self.phase = Phase::Waiting;
        out.push(Action::Once(Timer::Reconnect, secs));
    }

    pub fn handle(&mut self, ev: Event, ctx: &Ctx) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Want => match self.phase {
                Phase::Idle if ctx.want => self.connect(&mut out),
                Phase::Ready => out.push(Action::Flush(Fresh::No)),
                // Waiting for a reconnect whose timer may have been lost: ask again (a
                // pending one with the same id stays the only one).
                Phase::Waiting => out.push(Action::Once(Timer::Reconnect, 0)),
                _ => {}
            },
            // Only a socket we still consider open speaks: late frames or closes after
            // our own close (idle, op 9) change nothing.
            Event::Frame(text) if self.open() => self.on_frame(text, ctx, &mut out),
            Event::Closed(code) if self.open() => self.on_closed(code, ctx, &mut out),
            Event::Frame(_) | Event::Closed(_) => {}
            Event::Beat { first, ack_pending } => match self.phase {
                // A heartbeat interval after Hello and still no READY/RESUMED (lost, or
                // never sent): start over with a new session.
                Phase::Identifying | Phase::Resuming if !first => {
                    out.push(Action::Log(Level::Warn, "no READY from Discord; identifying again", 0));
                    self.close(&mut out);
                    self.forget();
                    self.connect(&mut out);
                }
                Phase::Identifying | Phase::Resuming | Phase::Ready if ack_pending => {
                    // No ACK since the last beat: a zombied connection (§1.4).
                    out.push(Action::Log(Level::Warn, "no heartbeat ACK from Discord; reconnecting", 0));
                    self.reconnect_now(&mut out);
                }
                Phase::Identifying | Phase::Resuming | Phase::Ready => {
                    out.push(Action::Ack(true));
                    out.push(Action::Send(Frame::Heartbeat(self.seq)));
                    if first {
                        out.push(Action::Every(Timer::Beat, (self.heartbeat_ms / 1000).max(1)));
                    }
                }
                _ => out.push(Action::Cancel(if first { Timer::FirstBeat } else { Timer::Beat }, self.gen)),
            },
            // Closing with 1000 ends the session at Discord, so the next socket identifies.
            Event::Idle if self.phase == Phase::Ready => {
                self.stop_beats(&mut out);
                out.push(Action::Close { code: 1000, gen: self.gen });
                out.push(Action::Log(Level::Info, "idle: closing the gateway session", 0));
                self.forget();
                self.phase = Phase::Idle;
            }
            Event::Idle => {}
            Event::Reconnect => {
                if self.phase == Phase::Waiting {
                    if ctx.want {
                        self.connect(&mut out)
                    } else {
                        self.phase = Phase::Idle
                    }
                }
            }
        }
        out
    }

    fn on_frame(&mut self, text: &[u8], ctx: &Ctx, out: &mut Vec<Action>) {
        let Some(env) = Envelope::parse(text) else {
            out.push(Action::Log(Level::Warn, "ignoring a gateway frame that is not valid JSON", 0));
            return;
        };
        if let Some(s) = env.s {
            self.seq = Some(s);
        }
        let d = || Reader::new(&text[env.d..]);
        match env.op {
            // Hello: answer with Identify or Resume, then heartbeat at its interval (§1.3).
            10 => {
                let mut ms = 0;
                d().object(|k, r| {
                    if k == b"heartbeat_interval" {
                        ms = r.int()?;
                    } else {
                        r.skip()?;
                    }
                    Some(())
                });
                self.heartbeat_ms = ms.clamp(1000, 600_000) as u32;
                if self.resumable() {
                    self.phase = Phase::Resuming;
                    let (session_id, seq) = (self.session_id.clone(), self.seq.unwrap_or(0));
                    out.push(Action::Send(Frame::Resume { session_id, seq }));
                } else {
                    self.phase = Phase::Identifying;
                    self.forget();
                    out.push(Action::Send(Frame::Identify));
                }
                out.push(Action::Ack(false));
                let first = (self.heartbeat_ms as u64 * (ctx.rand % 1000) / 1_000_000) as u32;
                out.push(Action::Once(Timer::FirstBeat, first));
            }
            0 if env.t == b"READY" => {
                let (sid, url, sessions) = ready_fields(&text[env.d..]);
                self.session_id = sid;
                self.resume_url = url;
                self.learn_status(&sessions);
                self.ready(true, out);
            }
            // The user's sessions changed (e.g. status set on another device).
            0 if env.t == b"SESSIONS_REPLACE" => {
                let mut sessions = Vec::new();
                d().array(|r| session_entry(r, &mut sessions));
                let before = self.status;
                self.learn_status(&sessions);
                if self.phase == Phase::Ready && self.status != before {
                    out.push(Action::Flush(Fresh::No));
                }
            }
            0 if env.t == b"RESUMED" => self.ready(false, out),
            11 => out.push(Action::Ack(false)),
            1 => out.push(Action::Send(Frame::Heartbeat(self.seq))),
            7 => {
                out.push(Action::Log(Level::Info, "Discord asked to reconnect (op 7); resuming", 0));
                self.reconnect_now(out);
            }
            9 => {
                let resumable = d().lit(b"true");
                if resumable {
                    out.push(Action::Log(Level::Info, "invalid session (op 9, resumable); resuming", 0));
                    self.reconnect_now(out);
                } else {
                    // Wait a random 1–5 s, then Identify again (§1.5).
                    out.push(Action::Log(Level::Info, "invalid session (op 9); identifying again", 0));
                    self.forget();
                    self.close(out);
                    self.wait(1 + (ctx.rand % 5) as u32, out);
                }
            }
            _ => {}
        }
    }

    /// Adopts the status of the user's first other session (not ours, not the "all"
    /// aggregate that includes ours); with none, keeps `online`.
    fn learn_status(&mut self, sessions: &[(String, u8)]) {
        let other = sessions.iter().find(|(id, _)| id != "all" && *id != self.session_id);
        self.status = other.map_or(0, |(_, st)| *st);
    }

    /// READY (a new session) or RESUMED: either way the presence is sent again.
    fn ready(&mut self, new_session: bool, out: &mut Vec<Action>) {
        self.phase = Phase::Ready;
        self.attempts = 0;
        let msg = if new_session { "gateway session ready" } else { "gateway session resumed" };
        out.push(Action::Log(Level::Info, msg, 0));
        out.push(Action::Flush(if new_session { Fresh::Session } else { Fresh::Resumed }));
    }

    fn on_closed(&mut self, code: u16, ctx: &Ctx, out: &mut Vec<Action>) {
        self.stop_beats(out);
        let rule = close_rule(code);
        if let OnClose::Fatal(why) = rule {
            out.push(Action::Log(Level::Error, why, code));
            self.phase = Phase::Fatal;
            self.fatal = code;
            self.forget();
            return;
        }
        out.push(Action::Log(Level::Warn, "gateway connection closed", code));
        if rule == OnClose::Identify {
            self.forget();
        }
        if !ctx.want {
            self.phase = Phase::Idle;
            return;
        }
        // A failed dial also lands here (code 0): try a fresh session next time.
        if code == 0 {
            self.forget();
        }
        self.attempts = self.attempts.saturating_add(1);
        self.wait(backoff_secs(self.attempts, rule == OnClose::SlowDown, ctx.rand), out);
    }
}

/// The envelope of a gateway frame (§1.2); `d` is the offset of the payload in the frame.
pub struct Envelope<'a> {
    pub op: i64,
    pub s: Option<i64>,
    pub t: &'a [u8],
    pub d: usize,
}

impl<'a> Envelope<'a> {
    pub fn parse(text: &'a [u8]) -> Option<Self> {
        let mut r = Reader::new(text);
        let mut env = Envelope { op: -1, s: None, t: b"", d: text.len() };
        r.object(|k, r| {
            match k {
                b"op" => env.op = r.int()?,
                b"s" if !r.null() => env.s = Some(r.int()?),
                b"t" if !r.null() => env.t = r.raw_str()?,
                b"d" => {
                    env.d = r.i;
                    r.skip()?;
                }
                b"s" | b"t" => {}
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(env)
    }
}

/// One `{session_id, status, …}` of a sessions list (user accounts, discord.food).
fn session_entry(r: &mut Reader, out: &mut Vec<(String, u8)>) -> Option<()> {
    let (mut id, mut st) = (String::new(), None);
    r.object(|k, r| {
        match k {
            b"session_id" => id = r.string()?,
            b"status" => st = status_index(r.raw_str()?),
            _ => r.skip()?,
        }
        Some(())
    })?;
    if let Some(st) = st {
        out.push((id, st));
    }
    Some(())
}

/// `session_id`, `resume_gateway_url` and the user's sessions from a READY payload,
/// scanned in one pass without building anything for the (possibly megabytes of) rest.
fn ready_fields(d: &[u8]) -> (String, String, Vec<(String, u8)>) {
    let (mut sid, mut url, mut sessions) = (String::new(), String::new(), Vec::new());
    Reader::new(d).object(|k, r| {
        if r.text_into(k, &mut [("session_id", &mut sid), ("resume_gateway_url", &mut url)])? {
            return Some(());
        }
        match k {
            b"sessions" => r.array(|r| session_entry(r, &mut sessions)),
            _ => r.skip(),
        }
    });
    // Both are stored space-separated and the URL is dialled: keep only sane values.
    let ok = |s: &str| !s.is_empty() && s.len() < 256 && s.bytes().all(|b| b > b' ' && b < 0x7f);
    if !ok(&sid) {
        sid.clear();
    }
    if !(ok(&url) && url.starts_with("wss://")) {
        url.clear();
    }
    (sid, url, sessions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    /// The actions of one event, without the informational log lines.
    fn step(s: &mut Session, ev: Event, ctx: &Ctx) -> Vec<Action> {
        s.handle(ev, ctx).into_iter().filter(|a| !matches!(a, Log(Level::Info, ..))).collect()
    }

    const WANT: Ctx = Ctx { want: true, rand: 500 };
    const IDLE: Ctx = Ctx { want: false, rand: 500 };

    fn hello() -> &'static [u8] {
        br#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#
    }

    fn ready_session() -> Session {
        let mut s = Session::default();
        step(&mut s, Event::Want, &WANT);
        step(&mut s, Event::Frame(hello()), &WANT);
        step(&mut s, 
            Event::Frame(br#"{"t":"READY","s":1,"op":0,"d":{"v":9,"session_id":"abc","resume_gateway_url":"wss://r.discord.gg","x":[{"y":"}"}]}}"#),
            &WANT,
        );
        s
    }

    #[test]
    fn want_connects_once_and_waits_for_hello() {
        let mut s = Session::default();
        assert_eq!(step(&mut s, Event::Want, &IDLE), vec![]);
        assert_eq!(step(&mut s, Event::Want, &WANT), vec![Connect(GATEWAY_URL.into())]);
        assert_eq!((s.phase, s.gen), (Phase::Connecting, 1));
        assert_eq!(step(&mut s, Event::Want, &WANT), vec![], "no second socket, nothing sent before Hello");
    }

    #[test]
    fn hello_identifies_and_schedules_jittered_first_beat() {
        let mut s = Session::default();
        step(&mut s, Event::Want, &WANT);
        let a = step(&mut s, Event::Frame(hello()), &WANT);
        assert_eq!(a, vec![Send(Frame::Identify), Ack(false), Once(Timer::FirstBeat, 20)]);
        assert_eq!((s.phase, s.heartbeat_ms), (Phase::Identifying, 41250));
        let a = step(&mut s, Event::Beat { first: true, ack_pending: false }, &WANT);
        assert_eq!(a, vec![Ack(true), Send(Frame::Heartbeat(None)), Every(Timer::Beat, 41)]);
    }

    #[test]
    fn ready_stores_session_and_flushes() {
        let s = ready_session();
        assert_eq!((s.phase, s.seq, s.attempts), (Phase::Ready, Some(1), 0));
        assert_eq!((s.session_id.as_str(), s.resume_url.as_str()), ("abc", "wss://r.discord.gg"));
        let mut s2 = s.clone();
        assert_eq!(step(&mut s2, Event::Want, &WANT), vec![Flush(Fresh::No)]);
    }

    #[test]
    fn dispatches_update_seq_and_heartbeats_carry_it() {
        let mut s = ready_session();
        step(&mut s, Event::Frame(br#"{"op":0,"t":"SESSIONS_REPLACE","s":7,"d":[]}"#), &WANT);
        assert_eq!(s.seq, Some(7));
        let a = step(&mut s, Event::Beat { first: false, ack_pending: false }, &WANT);
        assert_eq!(a, vec![Ack(true), Send(Frame::Heartbeat(Some(7)))]);
        assert_eq!(step(&mut s, Event::Frame(br#"{"op":11}"#), &WANT), vec![Ack(false)]);
        assert_eq!(step(&mut s, Event::Frame(br#"{"op":1,"d":null}"#), &WANT), vec![Send(Frame::Heartbeat(Some(7)))]);
    }

    #[test]
    fn missed_ack_is_a_zombie_and_resumes() {
        let mut s = ready_session();
        let a = step(&mut s, Event::Beat { first: false, ack_pending: true }, &WANT);
        assert_eq!(a[3..], [Close { code: 4000, gen: 1 }, Connect("wss://r.discord.gg/?v=10&encoding=json".into())]);
        assert_eq!(a[1..3], [Cancel(Timer::FirstBeat, 1), Cancel(Timer::Beat, 1)]);
        assert_eq!(s.gen, 2);
        let a = step(&mut s, Event::Frame(hello()), &WANT);
        assert_eq!(a[0], Send(Frame::Resume { session_id: "abc".into(), seq: 1 }));
        assert_eq!(s.phase, Phase::Resuming);
        let a = step(&mut s, Event::Frame(br#"{"op":0,"t":"RESUMED","s":2,"d":{}}"#), &WANT);
        assert_eq!(a.last(), Some(&Flush(Fresh::Resumed)));
        assert_eq!((s.phase, s.seq), (Phase::Ready, Some(2)));
    }

    #[test]
    fn op7_and_op9_true_resume_op9_false_reidentifies_later() {
        for f in [&br#"{"op":7,"d":null}"#[..], br#"{"op":9,"d":true}"#] {
            let mut s = ready_session();
            let a = step(&mut s, Event::Frame(f), &WANT);
            assert!(a.contains(&Connect("wss://r.discord.gg/?v=10&encoding=json".into())), "{a:?}");
        }
        let mut s = ready_session();
        let a = step(&mut s, Event::Frame(br#"{"op":9,"d":false}"#), &WANT);
        assert!(a.contains(&Close { code: 4000, gen: 1 }) && a.contains(&Once(Timer::Reconnect, 1)), "{a:?}");
        assert_eq!((s.phase, s.session_id.as_str(), s.seq), (Phase::Waiting, "", None));
        assert_eq!(step(&mut s, Event::Reconnect, &WANT), vec![Connect(GATEWAY_URL.into())]);
    }

    #[test]
    fn fatal_close_stops_for_good() {
        let mut s = ready_session();
        let a = step(&mut s, Event::Closed(4004), &WANT);
        assert!(matches!(&a[2], Log(Level::Error, m, 4004) if m.contains("token")));
        assert_eq!((s.phase, s.fatal), (Phase::Fatal, 4004));
        assert_eq!(step(&mut s, Event::Want, &WANT), vec![]);
        assert_eq!(step(&mut s, Event::Reconnect, &WANT), vec![]);
    }

    #[test]
    fn abnormal_close_resumes_with_backoff() {
        let mut s = ready_session();
        let a = step(&mut s, Event::Closed(1006), &WANT);
        assert_eq!(a.last(), Some(&Once(Timer::Reconnect, backoff_secs(1, false, 500))));
        assert_eq!(s.phase, Phase::Waiting);
        assert!(step(&mut s, Event::Reconnect, &WANT)[0] == Connect("wss://r.discord.gg/?v=10&encoding=json".into()));
        // 4009: the session timed out, identify anew.
        let mut s = ready_session();
        step(&mut s, Event::Closed(4009), &WANT);
        assert_eq!(step(&mut s, Event::Reconnect, &WANT), vec![Connect(GATEWAY_URL.into())]);
        // Nothing to show: no reconnect.
        let mut s = ready_session();
        step(&mut s, Event::Closed(1006), &IDLE);
        assert_eq!(s.phase, Phase::Idle);
    }

    #[test]
    fn backoff_grows_caps_and_slows_down() {
        let max = |a, slow| backoff_secs(a, slow, u64::MAX - 1);
        assert!(backoff_secs(1, false, 0) >= 1);
        assert!(max(1, false) <= 2 && max(3, false) <= 8 && max(30, false) <= 60);
        assert!(backoff_secs(30, false, 0) >= 30);
        assert!(backoff_secs(1, true, 0) >= 30);
    }

    #[test]
    fn no_ready_within_a_heartbeat_starts_over() {
        let mut s = Session::default();
        step(&mut s, Event::Want, &WANT);
        step(&mut s, Event::Frame(hello()), &WANT);
        assert!(step(&mut s, Event::Beat { first: true, ack_pending: false }, &WANT).contains(&Send(Frame::Heartbeat(None))));
        let a = step(&mut s, Event::Beat { first: false, ack_pending: false }, &WANT);
        assert!(a.contains(&Close { code: 4000, gen: 1 }) && a.contains(&Connect(GATEWAY_URL.into())), "{a:?}");
        assert_eq!((s.phase, s.gen), (Phase::Connecting, 2));
    }

    #[test]
    fn a_want_while_waiting_asks_for_the_reconnect_again() {
        let mut s = ready_session();
        step(&mut s, Event::Closed(1006), &WANT);
        assert_eq!(step(&mut s, Event::Want, &WANT), vec![Once(Timer::Reconnect, 0)]);
    }

    #[test]
    fn beats_from_a_dead_socket_cancel_themselves() {
        let mut s = Session::default();
        assert_eq!(step(&mut s, Event::Beat { first: false, ack_pending: false }, &WANT), vec![Cancel(Timer::Beat, 0)]);
    }

    #[test]
    fn envelope_and_ready_scanning() {
        let e = Envelope::parse(br#"{"d":{"a":[1,{"b":"s\"}"}]},"t":"X","s":null,"op":0}"#).unwrap();
        assert_eq!((e.op, e.s, e.t), (0, None, &b"X"[..]));
        assert!(Envelope::parse(b"not json").is_none());
        let (sid, url, _) = ready_fields(br#"{"session_id":"a b","resume_gateway_url":"http://x"}"#);
        assert_eq!((sid.as_str(), url.as_str()), ("", ""));
    }

    #[test]
    fn status_follows_the_users_other_sessions() {
        let mut s = Session::default();
        step(&mut s, Event::Want, &WANT);
        step(&mut s, Event::Frame(hello()), &WANT);
        step(&mut s, Event::Frame(br#"{"op":0,"s":1,"t":"READY","d":{"sessions":[{"session_id":"all","status":"online"},{"session_id":"me","status":"online"},{"session_id":"desk","status":"dnd","client_info":{}}],"session_id":"me"}}"#), &WANT);
        assert_eq!(STATUSES[s.status as usize], "dnd");
        let a = step(&mut s, Event::Frame(br#"{"op":0,"s":2,"t":"SESSIONS_REPLACE","d":[{"session_id":"desk","status":"idle"}]}"#), &WANT);
        assert_eq!((STATUSES[s.status as usize], a), ("idle", vec![Flush(Fresh::No)]));
        let a = step(&mut s, Event::Frame(br#"{"op":0,"s":3,"t":"SESSIONS_REPLACE","d":[{"session_id":"me","status":"online"},{"session_id":"desk","status":"idle"}]}"#), &WANT);
        assert_eq!(a, vec![]);
        step(&mut s, Event::Frame(br#"{"op":0,"s":4,"t":"SESSIONS_REPLACE","d":[{"session_id":"me","status":"online"}]}"#), &WANT);
        assert_eq!(s.status, 0, "alone again: online");
    }

    #[test]
    fn idle_ends_the_session() {
        let mut s = ready_session();
        let a = step(&mut s, Event::Idle, &IDLE);
        assert!(a.contains(&Close { code: 1000, gen: 1 }));
        assert_eq!((s.phase, s.session_id.as_str()), (Phase::Idle, ""));
        assert_eq!(step(&mut s, Event::Idle, &IDLE), vec![]);
        // Frames still in flight on the closed socket change nothing.
        for f in [&br#"{"op":7}"#[..], br#"{"op":1}"#, br#"{"op":9,"d":true}"#, hello()] {
            assert_eq!(step(&mut s, Event::Frame(f), &WANT), vec![]);
        }
        assert_eq!(step(&mut s, Event::Closed(1006), &WANT), vec![]);
        assert_eq!(s.phase, Phase::Idle);
    }
}
