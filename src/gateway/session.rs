//! The gateway client as plain state machines (sans-IO): events in, actions out. Rules
//! cited are from Discord's gateway docs (discord-presence spec §1).
//!
//! Navidrome runs callbacks concurrently and its cache has no compare-and-swap, so the
//! state is split by who may change it (the table is in `state.rs`):
//! - [`Link`], which connection is current, is changed only by the reconnect timer of the
//!   current generation ([`Link::reconnect`]); the scheduler runs one timer per id at a time.
//! - [`Conn`], one connection's session, is changed only by that connection's read loop
//!   ([`Conn::on_frame`], [`Conn::on_closed`]), which Navidrome runs one frame at a time.
//! - Timers of a connection ([`beat`], [`idle`]) only send, close it and ask for the
//!   reconnect timer.

use super::close::{OnClose, END, KEEP};
use super::wire::{Frame, Inbound, Kind};
use crate::host::Level;
use alloc::string::String;

/// Discovery is skipped: the documented gateway, JSON encoding, no compression (§1.1).
pub const GATEWAY_URL: &str = "wss://gateway.discord.gg/?v=10&encoding=json";
/// Its path and query, which a resume URL gets too (the text is stored once).
const QUERY: &str = GATEWAY_URL.split_at(24).1;
/// What a dial logs: resuming the session, or (its first words) starting one.
const RESUMING: &str = "connecting to Discord to resume the session";
const CONNECTING: &str = RESUMING.split_at(21).0;

/// Where one connection is; only its read loop moves it, and only forward.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Phase {
    /// Socket requested; waiting for Hello (op 10).
    #[default]
    Connecting = 0,
    /// Identify (op 2) sent; waiting for READY.
    Identifying = 1,
    /// Resume (op 6) sent; waiting for RESUMED.
    Resuming = 2,
    /// Session usable: presence updates may be sent.
    Ready = 3,
    /// Socket gone; the reconnect timer takes over.
    Closed = 4,
    /// Discord refused us for good (4004, 4010–4014): nothing until the config changes.
    Fatal = 5,
}

impl Phase {
    #[inline(always)]
    pub fn from_u8(v: u8) -> Option<Phase> {
        use Phase::*;
        // A match on the discriminants compiles to a range check, no table.
        Some(match v {
            0 => Connecting,
            1 => Identifying,
            2 => Resuming,
            3 => Ready,
            4 => Closed,
            5 => Fatal,
            _ => return None,
        })
    }
}

/// Which connection is current, and what carries over to the next one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Link {
    /// Connection generation; connection and timer ids carry it so callbacks from an
    /// older socket are recognised and ignored (Navidrome frees ids late, ABI §7.3).
    pub gen: u32,
    /// No connection is wanted: the next one starts from a new session.
    pub idle: bool,
    /// Consecutive connections that ended before a stable session, for backoff.
    pub attempts: u32,
    /// When this generation was started (ms).
    pub at_ms: i64,
    /// The session to resume on the next connection (§1.6), if any.
    pub seq: Option<i64>,
    pub session_id: String,
    pub resume_url: String,
    /// This generation dials nothing: the identify budget was spent; its reconnect
    /// timer fires when the budget allows one more (`at_ms`).
    pub waiting: bool,
    /// The identify budget's clock (ms, a GCRA's theoretical arrival time): each new
    /// session moves it `IDENTIFY_EVERY_MS` past the later of itself and now; one is
    /// allowed while it is at most `IDENTIFY_AHEAD_MS` ahead of now.
    pub identify_at: i64,
}

impl Default for Link {
    #[inline(always)]
    fn default() -> Self {
        Link { gen: 0, idle: true, attempts: 0, at_ms: 0, seq: None, session_id: String::new(), resume_url: String::new(), waiting: false, identify_at: 0 }
    }
}

/// New sessions (Identify) a user may start, whatever the gateway answers: 4 at once,
/// then one every 20 minutes, so at most 6 in any hour. An account that identifies in a
/// loop is what Discord flags, and while Discord throttles identifies (op 9) each one
/// only earns another op 9. Resumes do not count.
const IDENTIFY_BURST: i64 = 4;
pub const IDENTIFY_EVERY_MS: i64 = 1_200_000;
/// How far ahead of now the budget's clock may be for one more new session.
const IDENTIFY_AHEAD_MS: i64 = (IDENTIFY_BURST - 1) * IDENTIFY_EVERY_MS;

/// Per-connection gateway state.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Conn {
    pub phase: Phase,
    /// Last dispatch sequence number `s` (§1.2), sent back in heartbeats and Resume.
    pub seq: Option<i64>,
    pub heartbeat_ms: u32,
    /// The user's own status as their other Discord sessions show it (index in
    /// `STATUSES`), so our presence never overrides it (spec W16: v2 forced `dnd`).
    pub status: u8,
    /// When READY or RESUMED arrived, and the last heartbeat ACK (ms).
    pub ready_ms: i64,
    pub ack_ms: i64,
    pub session_id: String,
    pub resume_url: String,
}

/// What one event asks the driver to do, each at most once, done in this order.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Actions {
    /// A log line.
    pub log: Option<(Level, &'static str)>,
    /// Stop the connection's heartbeat timers: the first beat's, the recurring one's.
    pub cancel_first: bool,
    pub cancel_beat: bool,
    /// A log line about the socket's close, its code appended as `(code N)`.
    pub closed: Option<(Level, &'static str, u16)>,
    pub send: Option<Frame>,
    /// Close this connection with a code; the driver marks the reason so the `on_close`
    /// it triggers is ignored.
    pub close: Option<u16>,
    /// The first heartbeat in this many seconds (one-time), every later one (recurring).
    pub first_beat: Option<u32>,
    pub beat_every: Option<u32>,
    /// This connection is over: its reconnect timer fires after this many seconds.
    pub reconnect: Option<u32>,
    /// Open the next connection at `url` (only the reconnect timer does); if the dial
    /// fails, its reconnect timer fires after the given seconds.
    pub connect: Option<(String, u32)>,
    /// Send the wanted presence if it is not shown yet.
    pub flush: bool,
}

impl Actions {
    pub fn is_empty(&self) -> bool {
        *self == Actions::default()
    }
}

/// What the machines need besides their state: the time (ms) and entropy for jitter
/// (wasm32-unknown-unknown has no RNG; the driver hashes time and ids).
pub struct Ctx {
    pub now: i64,
    pub rand: u64,
}

/// Reconnect delay in seconds after `failures` consecutive connections without a stable
/// session: exponential from 2 s, capped at 60 s, with jitter in the upper half so
/// clients spread out; 4008/4015 start from 60 s (30–60 s with the jitter) and grow to 600 s.
pub fn backoff_secs(failures: u32, slow: bool, rand: u64) -> u32 {
    let cap = if slow { 600 } else { 60 };
    let base = (1u32 << failures.clamp(1, 9)).max(if slow { 60 } else { 2 }).min(cap);
    base / 2 + (rand % (base as u64 / 2 + 1)) as u32
}

/// Where an update for a link goes (`Link::route`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Route {
    /// The current connection is ready: send on it.
    Send,
    /// Opening (its READY sends), or stopped for good: nothing now.
    Wait,
    /// Resting, or the connection ended: the reconnect timer starts the next one.
    Start,
    /// The connection never said Hello (Navidrome's handshake gives up after 30 s): it is
    /// ended, then the reconnect timer starts the next one.
    Stuck,
}

/// How long a dial may go without Hello before an update ends it.
pub const STUCK_MS: i64 = 60_000;

impl Link {
    /// Where an update goes now, given the current connection's record (`None`: none,
    /// or it has not said Hello yet).
    pub fn route(&self, conn: Option<&Conn>, now: i64) -> Route {
        match conn {
            Some(c) if c.phase == Phase::Ready => Route::Send,
            Some(c) if c.phase == Phase::Closed => Route::Start,
            Some(_) => Route::Wait,
            None if self.idle => Route::Start,
            None if now - self.at_ms > STUCK_MS => Route::Stuck,
            None => Route::Wait,
        }
    }

    #[inline(always)]
    fn resumable(&self) -> bool {
        !self.session_id.is_empty() && !self.resume_url.is_empty() && self.seq.is_some()
    }

    /// Connections in a row, counting `conn`, that ended without a stable session.
    #[inline(always)]
    pub fn failures(&self, conn: Option<&Conn>) -> u32 {
        if conn.is_some_and(Conn::stable) { 0 } else { self.attempts.saturating_add(1) }
    }

    /// The reconnect timer of generation `gen` fired: that connection is over (whoever
    /// scheduled the timer closed it or saw it close). Starts the next connection if
    /// something is to be shown, resuming the session if one is held, else rests idle.
    /// `None`: a stale timer (the link moved on) or a fatal connection: nothing changes.
    #[inline(always)]
    pub fn reconnect(&self, gen: u32, conn: Option<&Conn>, want: bool, ctx: &Ctx) -> Option<(Link, Actions)> {
        let now = ctx.now;
        if gen != self.gen || conn.is_some_and(|c| c.phase == Phase::Fatal) {
            return None;
        }
        let mut next = Link { gen: self.gen, at_ms: now, identify_at: self.identify_at, ..Link::default() };
        let mut out = Actions::default();
        // The session to resume: what the ended connection held (it may have dropped it:
        // op 9, 4009, an idle close); after a failed dial, or at rest, what the link had.
        // A rest keeps it: a track after a short pause resumes instead of identifying.
        let (seq, sid, url) = match conn {
            Some(c) => (c.seq, &c.session_id, &c.resume_url),
            None => (self.seq, &self.session_id, &self.resume_url),
        };
        (next.seq, next.session_id, next.resume_url) = (seq, sid.clone(), url.clone());
        if !next.resumable() {
            (next.seq, next.session_id, next.resume_url) = (None, String::new(), String::new());
        }
        if !want {
            return Some((next, out));
        }
        next.gen = gen.wrapping_add(1);
        next.idle = false;
        next.attempts = if self.waiting { self.attempts } else if self.idle { 0 } else { self.failures(conn) };
        let (url, msg) = if next.resumable() {
            let u = crate::text::join(next.resume_url.strip_suffix("/").unwrap_or(&next.resume_url), QUERY);
            (u, RESUMING)
        } else if self.identify_at - now > IDENTIFY_AHEAD_MS {
            // The budget is spent: wait, without a socket, until it allows one more.
            next.waiting = true;
            next.at_ms = self.identify_at - IDENTIFY_AHEAD_MS;
            if !self.waiting {
                out.log = Some((Level::Warn, "new Discord sessions keep failing and their budget (6 an hour) is spent; waiting up to 20 minutes"));
            }
            out.reconnect = Some(((next.at_ms - now + 999) / 1000) as u32);
            return Some((next, out));
        } else {
            next.identify_at = self.identify_at.max(now) + IDENTIFY_EVERY_MS;
            (GATEWAY_URL.into(), if self.waiting { "trying a new Discord session again" } else { CONNECTING })
        };
        out.log = Some((Level::Info, msg));
        out.connect = Some((url, backoff_secs(next.failures(None), false, ctx.rand)));
        Some((next, out))
    }
}

/// Ends a connection that is still open: beats stop, the socket closes with `code`
/// (`KEEP` keeps the session resumable, §1.5), the reconnect timer fires in `secs`.
fn end(code: u16, secs: u32, out: &mut Actions) {
    (out.cancel_first, out.cancel_beat) = (true, true);
    out.close = Some(code);
    out.reconnect = Some(secs);
}

/// Which heartbeat a timer asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Beat {
    /// The jittered first one; it starts the recurring timer.
    First,
    /// The recurring one.
    Regular,
    /// A beat that found the connection busy, tried again (`true`: the first one).
    Retry(bool),
    /// The answer to Discord's request for a beat (op 1): sent at once, nothing checked.
    Answer,
}

/// A heartbeat timer of this connection fired; `beat_ms`: when the last heartbeat went
/// out on it (0: none yet); `done`: the beat it stands for already went out (handed to
/// another sender). The first beat's own timer arms the recurring one, and so does a
/// lock holder that sends it when handed over (a second arming is refused by the
/// scheduler, so the earlier one sets the rhythm); answers to op 1 never do.
pub fn beat(conn: &Conn, link: &Link, beat_ms: i64, kind: Beat, done: bool, rand: u64) -> Actions {
    let mut out = Actions::default();
    let first = matches!(kind, Beat::First | Beat::Retry(true)) || (kind == Beat::Retry(false) && beat_ms == 0);
    let no_ready = conn.phase != Phase::Ready && kind == Beat::Regular;
    if !matches!(conn.phase, Phase::Identifying | Phase::Resuming | Phase::Ready) {
        // An ended connection: its heartbeat timers stop.
        out.cancel_first = kind == Beat::First;
        out.cancel_beat = kind == Beat::Regular;
    } else if !done && (no_ready || (beat_ms > conn.ack_ms && kind != Beat::Answer)) {
        // A heartbeat interval after Hello and still no READY/RESUMED (lost, or never
        // sent): start over. No ACK since the last beat: a zombied connection (§1.4).
        // Before READY a session is never stable, so only a stable one's zombie comes
        // back at once.
        let msg = if no_ready { "no READY from Discord; reconnecting" } else { "no heartbeat ACK from Discord; reconnecting" };
        out.log = Some((Level::Warn, msg));
        end(KEEP, conn.retry_secs(link, false, rand), &mut out);
    } else {
        if !done {
            out.send = Some(Frame::Heartbeat(conn.seq));
        }
        if first {
            out.beat_every = Some((conn.heartbeat_ms / 1000).max(1));
        }
    }
    out
}

/// Nothing was shown for the configured idle time: end the session (closing with 1000
/// ends it at Discord, so the next connection identifies).
#[inline(never)]
pub fn idle(conn: &Conn) -> Actions {
    let mut out = Actions::default();
    if conn.phase == Phase::Ready {
        out.log = Some((Level::Info, "idle: closing the gateway session"));
        end(END, 0, &mut out);
    }
    out
}

impl Conn {
    fn open(&self) -> bool {
        self.phase < Phase::Closed
    }

    /// READY or RESUMED, then an acknowledged heartbeat: the kind of session whose loss
    /// does not count towards backoff.
    pub fn stable(&self) -> bool {
        self.ready_ms > 0 && self.ack_ms > self.ready_ms
    }

    /// Drops the session so the next connection identifies (§1.6).
    #[inline(never)]
    pub fn forget(&mut self) {
        self.session_id.clear();
        self.resume_url.clear();
        self.seq = None;
    }

    /// A text frame on this connection, as `wire::text` decoded it.
    pub fn on_frame(&mut self, link: &Link, frame: Inbound, ctx: &Ctx) -> Actions {
        let mut out = Actions::default();
        // Only a socket we still consider open speaks: frames after its end change nothing.
        if !self.open() {
            return out;
        }
        if frame.kind == Kind::Invalid {
            out.log = Some((Level::Warn, "ignoring a gateway frame that is not valid JSON"));
            return out;
        }
        if frame.seq.is_some() {
            self.seq = frame.seq;
        }
        // READY (which also holds the new session) and SESSIONS_REPLACE (the user's
        // sessions changed, e.g. status set on another device) list the user's sessions:
        // our status follows theirs.
        let before = self.status;
        if matches!(frame.kind, Kind::Ready | Kind::Sessions) {
            if frame.kind == Kind::Ready {
                (self.session_id, self.resume_url) = (frame.session_id, frame.resume_url);
            }
            self.status = frame.sessions.status(&self.session_id);
        }
        // A heartbeat ACK is timed; Hello starts their clock.
        if matches!(frame.kind, Kind::Hello | Kind::Ack) {
            self.ack_ms = ctx.now;
        }
        match frame.kind {
            // Hello: answer with Identify or Resume, then heartbeat at its interval (§1.3).
            // The answer goes out before the first beat is scheduled: nothing else sends
            // on this connection until then.
            Kind::Hello => {
                self.heartbeat_ms = frame.heartbeat_ms.clamp(1000, 600_000) as u32;
                if link.resumable() {
                    self.phase = Phase::Resuming;
                    (self.seq, self.session_id, self.resume_url) = (link.seq, link.session_id.clone(), link.resume_url.clone());
                    out.send = Some(Frame::Resume { session_id: link.session_id.clone(), seq: link.seq.unwrap_or(0) });
                } else {
                    self.phase = Phase::Identifying;
                    self.forget();
                    out.send = Some(Frame::Identify);
                }
                // Jitter in [0, interval) (§1.3), at least 1 s.
                out.first_beat = Some((self.heartbeat_ms as u64 * (ctx.rand % 1000) / 1_000_000).max(1) as u32);
            }
            // READY (the new session) or RESUMED: either way the presence is sent again.
            Kind::Ready | Kind::Resumed => {
                self.phase = Phase::Ready;
                self.ready_ms = ctx.now;
                let msg = if frame.kind == Kind::Ready { "gateway session ready" } else { "gateway session resumed" };
                out.log = Some((Level::Info, msg));
                out.flush = true;
            }
            // A new status shows at once on a ready session.
            Kind::Sessions => out.flush = self.phase == Phase::Ready && self.status != before,
            Kind::Beat => out.send = Some(Frame::Heartbeat(self.seq)),
            // Reconnect (op 7) or invalid session (op 9): resume, or for an op 9 that says
            // the session cannot be resumed, wait a random 1–5 s, then Identify again
            // (§1.5); longer while no session holds.
            Kind::Reconnect | Kind::Resumable | Kind::Refused => {
                self.phase = Phase::Closed;
                let mut secs = self.retry_secs(link, false, ctx.rand);
                let msg = match frame.kind {
                    Kind::Reconnect => "Discord asked to reconnect (op 7); resuming",
                    Kind::Resumable => "invalid session (op 9, resumable); resuming",
                    _ => {
                        self.forget();
                        secs = secs.max(1 + (ctx.rand % 5) as u32);
                        "invalid session (op 9); identifying again"
                    }
                };
                out.log = Some((Level::Info, msg));
                end(KEEP, secs, &mut out);
            }
            _ => {}
        }
        out
    }

    /// A stable session that ends comes back at once; otherwise backoff.
    #[inline(never)]
    fn retry_secs(&self, link: &Link, slow: bool, rand: u64) -> u32 {
        if self.stable() && !slow { 0 } else { backoff_secs(link.failures(Some(self)), slow, rand) }
    }

    /// The socket ended (server close or network error).
    pub fn on_closed(&mut self, link: &Link, code: u16, ctx: &Ctx) -> Actions {
        let mut out = Actions::default();
        if !self.open() {
            return out;
        }
        (out.cancel_first, out.cancel_beat) = (true, true);
        let rule = OnClose::of(code);
        if matches!(rule, OnClose::Fatal(_) | OnClose::Identify) {
            self.forget();
        }
        if let OnClose::Fatal(why) = rule {
            out.closed = Some((Level::Error, why, code));
            self.phase = Phase::Fatal;
        } else {
            out.closed = Some((Level::Warn, "gateway connection closed", code));
            out.reconnect = Some(self.retry_secs(link, rule == OnClose::SlowDown, ctx.rand).max(1));
            self.phase = Phase::Closed;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::STATUSES;
    use Action::*;

    /// What `Actions` holds, one entry per action in the order the driver does them.
    #[derive(Clone, PartialEq, Eq, Debug)]
    enum Action {
        Connect { url: String, retry: u32 },
        Send(Frame),
        Close(u16),
        Once(Timer, u32),
        Every(Timer, u32),
        Cancel(Timer),
        Reconnect(u32),
        Flush,
        Log(Level, &'static str),
        Closed(Level, &'static str, u16),
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Timer {
        FirstBeat,
        Beat,
    }

    fn list(a: Actions) -> Vec<Action> {
        let mut v = Vec::new();
        v.extend(a.log.map(|(l, m)| Log(l, m)));
        v.extend(a.cancel_first.then_some(Cancel(Timer::FirstBeat)));
        v.extend(a.cancel_beat.then_some(Cancel(Timer::Beat)));
        v.extend(a.closed.map(|(l, m, c)| Closed(l, m, c)));
        v.extend(a.send.map(Send));
        v.extend(a.close.map(Close));
        v.extend(a.first_beat.map(|s| Once(Timer::FirstBeat, s)));
        v.extend(a.beat_every.map(|s| Every(Timer::Beat, s)));
        v.extend(a.reconnect.map(Reconnect));
        v.extend(a.connect.map(|(url, retry)| Connect { url, retry }));
        v.extend(a.flush.then_some(Flush));
        v
    }

    /// `Link::reconnect`, its actions listed.
    fn rc(l: &Link, gen: u32, conn: Option<&Conn>, want: bool, ctx: &Ctx) -> Option<(Link, Vec<Action>)> {
        l.reconnect(gen, conn, want, ctx).map(|(l, a)| (l, list(a)))
    }

    /// The actions of one event, without the informational log lines.
    fn quiet(a: Vec<Action>) -> Vec<Action> {
        a.into_iter().filter(|a| !matches!(a, Log(Level::Info, ..))).collect()
    }

    const CTX: Ctx = Ctx { now: 1_000, rand: 500 };

    /// A frame as Discord sends it, decoded from a payload as Navidrome passes it.
    fn msg(frame: &[u8]) -> Inbound {
        let mut o = crate::json::Out::new();
        o.raw("{").key("connectionId").str("1:a").key("message").str(core::str::from_utf8(frame).unwrap()).raw("}");
        crate::gateway::text(&mut o.buf).unwrap().1
    }

    fn at(now: i64) -> Ctx {
        Ctx { now, rand: 0 }
    }

    /// The URLs dialled among the actions.
    fn dials(a: Vec<Action>) -> Vec<String> {
        a.into_iter().filter_map(|a| if let Connect { url, .. } = a { Some(url) } else { None }).collect()
    }

    fn hello() -> &'static [u8] {
        br#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#
    }

    const READY: &[u8] = br#"{"t":"READY","s":1,"op":0,"d":{"v":9,"session_id":"abc","resume_gateway_url":"wss://r.discord.gg","x":[{"y":"}"}]}}"#;

    /// The first link, a connection that said Hello and READY, and the link its
    /// reconnect timer would make.
    fn ready() -> (Link, Conn) {
        let (link, _) = rc(&Link::default(), 0, None, true, &at(0)).unwrap();
        let mut c = Conn::default();
        c.on_frame(&link, msg(hello()), &CTX);
        c.on_frame(&link, msg(READY), &CTX);
        (link, c)
    }

    #[test]
    fn texts_cut_from_others() {
        assert_eq!((QUERY, CONNECTING), ("/?v=10&encoding=json", "connecting to Discord"));
    }

    #[test]
    fn the_first_want_connects_and_a_stale_timer_does_nothing() {
        let l = Link::default();
        let (next, a) = rc(&l, 0, None, true, &at(5)).unwrap();
        assert_eq!(dials(a), vec![GATEWAY_URL]);
        assert_eq!((next.gen, next.idle, next.attempts, next.at_ms), (1, false, 0, 5));
        assert_eq!(rc(&next, 0, None, true, &at(6)), None, "rc:0 again after the link moved on");
        let (rest, a) = rc(&l, 0, None, false, &at(5)).unwrap();
        assert_eq!((rest.gen, rest.idle, a), (0, true, vec![]), "nothing to show: stay idle");
    }

    #[test]
    fn hello_identifies_then_schedules_a_jittered_first_beat() {
        let (link, _) = rc(&Link::default(), 0, None, true, &at(0)).unwrap();
        let mut c = Conn::default();
        let a = list(c.on_frame(&link, msg(hello()), &CTX));
        assert_eq!(a, vec![Send(Frame::Identify), Once(Timer::FirstBeat, 20)]);
        assert_eq!((c.phase, c.heartbeat_ms, c.ack_ms), (Phase::Identifying, 41250, 1_000));
        assert_eq!(list(beat(&c, &link, 0, Beat::First, false, 0)), vec![Send(Frame::Heartbeat(None)), Every(Timer::Beat, 41)]);
        // Its beat went out with another sender: the first beat's timer still arms the
        // recurring one; a later beat of another kind does not.
        assert_eq!(list(beat(&c, &link, 5, Beat::Retry(true), true, 0)), vec![Every(Timer::Beat, 41)]);
        assert_eq!(list(beat(&c, &link, 5, Beat::Regular, true, 0)), vec![]);
        assert_eq!(list(beat(&c, &link, 7, Beat::Retry(false), false, 0)), vec![Send(Frame::Heartbeat(None))]);
        assert_eq!(list(beat(&c, &link, 0, Beat::Retry(false), false, 0)), vec![Send(Frame::Heartbeat(None)), Every(Timer::Beat, 41)], "a handed-over first beat arms");
        assert_eq!(list(beat(&c, &link, 0, Beat::Answer, false, 0)), vec![Send(Frame::Heartbeat(None))], "an answer to op 1 never arms");
        // A jitter of 0 still waits a second: never at the instant of Hello's answer.
        let mut c = Conn::default();
        assert_eq!(list(c.on_frame(&link, msg(hello()), &Ctx { now: 0, rand: 0 }))[1], Once(Timer::FirstBeat, 1));
    }

    #[test]
    fn ready_stores_the_session_and_flushes() {
        let (_, c) = ready();
        assert_eq!((c.phase, c.seq, c.ready_ms), (Phase::Ready, Some(1), 1_000));
        assert_eq!((c.session_id.as_str(), c.resume_url.as_str()), ("abc", "wss://r.discord.gg"));
        assert!(!c.stable(), "no ACK yet");
    }

    #[test]
    fn dispatches_update_seq_heartbeats_carry_it_acks_are_timed() {
        let (link, mut c) = ready();
        c.on_frame(&link, msg(br#"{"op":0,"t":"SESSIONS_REPLACE","s":7,"d":[]}"#), &CTX);
        assert_eq!(c.seq, Some(7));
        assert_eq!(list(beat(&c, &link, 900, Beat::Regular, false, 0)), vec![Send(Frame::Heartbeat(Some(7)))]);
        assert_eq!(list(c.on_frame(&link, msg(br#"{"op":11}"#), &Ctx { now: 2_000, rand: 0 })), vec![]);
        assert!(c.ack_ms == 2_000 && c.stable());
        assert_eq!(list(c.on_frame(&link, msg(br#"{"op":1,"d":null}"#), &CTX)), vec![Send(Frame::Heartbeat(Some(7)))]);
        // Answering op 1 right after a beat whose ACK is still on its way is no zombie.
        assert_eq!(list(beat(&c, &link, 2_500, Beat::Answer, false, 0)), vec![Send(Frame::Heartbeat(Some(7)))]);
        // A zombie of a stable session comes back at once.
        let a = list(beat(&c, &link, 2_500, Beat::Regular, false, 0));
        assert!(a.contains(&Close(4000)) && a.last() == Some(&Reconnect(0)), "{a:?}");
    }

    #[test]
    fn missed_ack_ends_the_connection_and_the_next_one_resumes() {
        let (link, c) = ready();
        let a = quiet(list(beat(&c, &link, 1_001, Beat::Regular, false, 0)));
        assert_eq!(a[1..], [Cancel(Timer::FirstBeat), Cancel(Timer::Beat), Close(4000), Reconnect(backoff_secs(1, false, 0))]);
        let (next, a) = rc(&link, 1, Some(&c), true, &at(9)).unwrap();
        assert_eq!(dials(a), vec!["wss://r.discord.gg/?v=10&encoding=json"]);
        assert_eq!((next.gen, next.attempts), (2, 1), "a session never acknowledged counts as a failure");
        let mut c2 = Conn::default();
        let a = list(c2.on_frame(&next, msg(hello()), &CTX));
        assert_eq!(a[0], Send(Frame::Resume { session_id: "abc".into(), seq: 1 }));
        assert_eq!(c2.phase, Phase::Resuming);
        let a = list(c2.on_frame(&next, msg(br#"{"op":0,"t":"RESUMED","s":2,"d":{}}"#), &CTX));
        assert_eq!(a.last(), Some(&Flush));
        assert_eq!((c2.phase, c2.seq, c2.session_id.as_str()), (Phase::Ready, Some(2), "abc"));
    }

    #[test]
    fn a_stable_session_comes_back_at_once_an_unstable_one_backs_off() {
        let (link, mut c) = ready();
        c.on_frame(&link, msg(br#"{"op":11}"#), &Ctx { now: 3_000, rand: 0 });
        let a = list(c.on_frame(&link, msg(br#"{"op":7,"d":null}"#), &CTX));
        assert_eq!(a.last(), Some(&Reconnect(0)));
        assert_eq!(c.phase, Phase::Closed);
        let (next, _) = rc(&link, 1, Some(&c), true, &at(9)).unwrap();
        assert_eq!(next.attempts, 0);
        // The next connection is resumed but dropped before any ACK: backoff grows.
        let mut c2 = Conn::default();
        c2.on_frame(&next, msg(hello()), &CTX);
        c2.on_frame(&next, msg(br#"{"op":0,"t":"RESUMED","s":2,"d":{}}"#), &CTX);
        assert_eq!(list(c2.on_closed(&next, 4002, &CTX)).last(), Some(&Reconnect(backoff_secs(1, false, 500))));
        let (third, _) = rc(&next, 2, Some(&c2), true, &at(9)).unwrap();
        assert_eq!(third.attempts, 1);
        let mut c3 = Conn::default();
        c3.on_frame(&third, msg(hello()), &CTX);
        c3.on_frame(&third, msg(br#"{"op":0,"t":"RESUMED","s":3,"d":{}}"#), &CTX);
        assert_eq!(list(c3.on_closed(&third, 4002, &CTX)).last(), Some(&Reconnect(backoff_secs(2, false, 500))));
    }

    #[test]
    fn op9_false_forgets_the_session_and_waits() {
        let (link, mut c) = ready();
        let a = quiet(list(c.on_frame(&link, msg(br#"{"op":9,"d":false}"#), &CTX)));
        assert!(a.contains(&Close(4000)), "{a:?}");
        assert!(matches!(a.last(), Some(Reconnect(s)) if (1..=5).contains(s)), "{a:?}");
        assert_eq!((c.phase, c.session_id.as_str(), c.seq), (Phase::Closed, "", None));
        let (_, a) = rc(&link, 1, Some(&c), true, &at(9)).unwrap();
        assert_eq!(dials(a), vec![GATEWAY_URL]);
        let (link, mut c) = ready();
        assert!(list(c.on_frame(&link, msg(br#"{"op":9,"d":true}"#), &CTX)).contains(&Close(4000)));
        assert_eq!(c.session_id, "abc");
    }

    #[test]
    fn fatal_close_stops_for_good() {
        let (link, mut c) = ready();
        let a = list(c.on_closed(&link, 4004, &CTX));
        assert!(matches!(&a[2], Closed(Level::Error, m, 4004) if m.contains("token")));
        assert!(!a.iter().any(|a| matches!(a, Reconnect(_))));
        assert_eq!(c.phase, Phase::Fatal);
        assert_eq!(rc(&link, 1, Some(&c), true, &at(9)), None);
        assert_eq!(list(c.on_closed(&link, 1006, &CTX)), vec![]);
        // The client's own settings refused: the code logged tells which.
        for code in 4010..=4014 {
            let (link, mut c) = ready();
            let a = list(c.on_closed(&link, code, &CTX));
            assert!(matches!(&a[2], Closed(Level::Error, m, k) if *k == code && m.contains("gateway settings")), "{code}: {a:?}");
            assert_eq!(c.phase, Phase::Fatal);
        }
        for code in [4009, 4015] {
            let (link, mut c) = ready();
            c.on_closed(&link, code, &CTX);
            assert_eq!(c.phase, Phase::Closed, "{code}");
        }
    }

    #[test]
    fn closes_pick_resume_or_identify() {
        let (link, mut c) = ready();
        let a = list(c.on_closed(&link, 1006, &CTX));
        assert_eq!(a.last(), Some(&Reconnect(backoff_secs(1, false, 500))));
        assert_eq!(c.phase, Phase::Closed);
        let (_, a) = rc(&link, 1, Some(&c), true, &at(9)).unwrap();
        assert_eq!(dials(a), vec!["wss://r.discord.gg/?v=10&encoding=json"]);
        // 4009: the session timed out, identify anew.
        let (link, mut c) = ready();
        c.on_closed(&link, 4009, &CTX);
        assert_eq!(dials(rc(&link, 1, Some(&c), true, &at(9)).unwrap().1), vec![GATEWAY_URL]);
        // 4008: slowly.
        let (link, mut c) = ready();
        assert!(matches!(list(c.on_closed(&link, 4008, &CTX)).last(), Some(Reconnect(s)) if *s >= 30));
        // Nothing to show when the timer fires (a skip's stop, say): rest, keeping the
        // session, and resume it when a track comes.
        let (link, mut c) = ready();
        c.on_closed(&link, 1006, &CTX);
        let (rest, a) = rc(&link, 1, Some(&c), false, &at(9)).unwrap();
        assert!(rest.idle && rest.gen == 1 && a.is_empty());
        let (next, a) = rc(&rest, 1, None, true, &at(10)).unwrap();
        assert_eq!((next.gen, next.session_id.as_str(), next.attempts), (2, "abc", 0));
        assert_eq!(dials(a), vec!["wss://r.discord.gg/?v=10&encoding=json"]);
        // An idle close ended the session at Discord: the driver drops it before this.
        let mut ended = c.clone();
        ended.forget();
        let (rest, _) = rc(&link, 1, Some(&ended), false, &at(9)).unwrap();
        assert_eq!(dials(rc(&rest, 1, None, true, &at(10)).unwrap().1), vec![GATEWAY_URL]);
    }

    #[test]
    fn a_failed_dial_keeps_what_the_link_had_and_backs_off() {
        let (link, mut c) = ready();
        c.on_closed(&link, 1006, &CTX);
        let (second, _) = rc(&link, 1, Some(&c), true, &at(9)).unwrap();
        assert_eq!(second.failures(None), second.attempts + 1);
        let (third, a) = rc(&second, 2, None, true, &at(10)).unwrap();
        assert_eq!(dials(a), vec!["wss://r.discord.gg/?v=10&encoding=json"]);
        assert_eq!(third.attempts, second.attempts + 1);
    }

    #[test]
    fn new_sessions_stop_at_the_hourly_budget_and_start_again_after() {
        // Every Identify answered with op 9 (d: false), for three hours.
        let refused = Conn { phase: Phase::Closed, ..Conn::default() };
        let (mut link, mut now, mut tried, mut logs) = (Link::default(), 1_000, Vec::new(), Vec::new());
        while now < 3 * 3_600_000 {
            let conn = (link.gen > 0).then_some(&refused);
            let (next, a) = rc(&link, link.gen, conn, true, &at(now)).unwrap();
            logs.extend(a.iter().filter_map(|x| if let Action::Log(_, m) = x { Some(*m) } else { None }));
            now += match (dials(a.clone()).len(), a.last()) {
                (1, _) => {
                    tried.push(now);
                    5_000
                }
                (_, Some(Action::Reconnect(secs))) => *secs as i64 * 1000,
                _ => panic!("{a:?}"),
            };
            link = next;
        }
        // At most 6 in any hour: 4 at first, then one every 20 minutes.
        for (i, t) in tried.iter().enumerate() {
            assert!(tried[i..].iter().filter(|u| *u - t < 3_600_000).count() <= 6, "{tried:?}");
        }
        assert_eq!(tried.len(), 4 + 8, "{tried:?}");
        let waits = logs.iter().filter(|m| m.contains("budget")).count();
        assert_eq!((waits, logs.iter().filter(|m| m.starts_with("trying")).count()), (9, 8), "{logs:?}");
        // Resumes are not new sessions: a resumable link dials at once.
        let (mut l, c) = ready();
        l.identify_at = tried[3] + 5 * IDENTIFY_EVERY_MS;
        let (_, a) = rc(&l, 1, Some(&c), true, &at(tried[3] + 1)).unwrap();
        assert_eq!(dials(a), vec!["wss://r.discord.gg/?v=10&encoding=json"]);
    }

    #[test]
    fn backoff_grows_caps_and_slows_down() {
        let max = |a, slow| backoff_secs(a, slow, u64::MAX - 1);
        assert!(backoff_secs(1, false, 0) >= 1);
        assert!(max(1, false) <= 2 && max(3, false) <= 8 && max(30, false) <= 60);
        assert!(backoff_secs(30, false, 0) >= 30);
        assert!(backoff_secs(1, true, 0) >= 30);
        // The base is 2 s for none or one failure, then doubles up to 512 s under the caps.
        let low = |slow| [0, 1, 2, 5, 9, 10, 40].map(|a| backoff_secs(a, slow, 0));
        assert_eq!((low(false), low(true)), ([1, 1, 2, 16, 30, 30, 30], [30, 30, 30, 30, 256, 256, 256]));
    }

    #[test]
    fn no_ready_within_a_heartbeat_starts_over() {
        let (link, _) = rc(&Link::default(), 0, None, true, &at(0)).unwrap();
        let mut c = Conn::default();
        c.on_frame(&link, msg(hello()), &CTX);
        assert!(list(beat(&c, &link, 0, Beat::First, false, 0)).contains(&Send(Frame::Heartbeat(None))));
        let a = list(beat(&c, &link, 0, Beat::Regular, false, 0));
        assert!(a.contains(&Close(4000)) && a.contains(&Reconnect(backoff_secs(1, false, 0))), "{a:?}");
    }

    #[test]
    fn beats_of_an_ended_connection_cancel_themselves() {
        let (link, mut c) = ready();
        c.on_closed(&link, 1006, &CTX);
        assert_eq!(list(beat(&c, &link, 0, Beat::Regular, false, 0)), vec![Cancel(Timer::Beat)]);
        assert_eq!(list(beat(&c, &link, 0, Beat::First, false, 0)), vec![Cancel(Timer::FirstBeat)]);
    }

    #[test]
    fn ready_keeps_only_sane_session_fields() {
        let link = Link::default();
        let mut c = Conn::default();
        c.on_frame(&link, msg(hello()), &CTX);
        c.on_frame(&link, msg(br#"{"d":{"session_id":"a b","resume_gateway_url":"http://x"},"t":"READY","s":null,"op":0}"#), &CTX);
        assert_eq!((c.phase, c.session_id.as_str(), c.resume_url.as_str()), (Phase::Ready, "", ""));
    }

    #[test]
    fn status_follows_the_users_other_sessions() {
        let link = Link::default();
        let mut c = Conn::default();
        c.on_frame(&link, msg(hello()), &CTX);
        c.on_frame(&link, msg(br#"{"op":0,"s":1,"t":"READY","d":{"sessions":[{"session_id":"all","status":"online"},{"session_id":"me","status":"online"},{"session_id":"desk","status":"dnd","client_info":{}}],"session_id":"me"}}"#), &CTX);
        assert_eq!(STATUSES[c.status as usize], "dnd");
        let a = list(c.on_frame(&link, msg(br#"{"op":0,"s":2,"t":"SESSIONS_REPLACE","d":[{"session_id":"desk","status":"idle"}]}"#), &CTX));
        assert_eq!((STATUSES[c.status as usize], a), ("idle", vec![Flush]));
        let a = list(c.on_frame(&link, msg(br#"{"op":0,"s":3,"t":"SESSIONS_REPLACE","d":[{"session_id":"me","status":"online"},{"session_id":"desk","status":"idle"}]}"#), &CTX));
        assert_eq!(a, vec![]);
        c.on_frame(&link, msg(br#"{"op":0,"s":4,"t":"SESSIONS_REPLACE","d":[{"session_id":"me","status":"online"}]}"#), &CTX);
        assert_eq!(c.status, 0, "alone again: online");
    }

    #[test]
    fn idle_ends_the_session_and_late_frames_change_nothing() {
        let (link, mut c) = ready();
        let a = quiet(list(idle(&c)));
        assert_eq!(a, vec![Cancel(Timer::FirstBeat), Cancel(Timer::Beat), Close(1000), Reconnect(0)]);
        c.on_closed(&link, 1006, &CTX);
        assert_eq!(list(idle(&c)), vec![]);
        for f in [&br#"{"op":7}"#[..], br#"{"op":1}"#, br#"{"op":9,"d":true}"#, hello()] {
            assert_eq!(list(c.on_frame(&link, msg(f), &CTX)), vec![]);
        }
    }

    #[test]
    fn an_update_goes_to_a_ready_connection_or_starts_one() {
        let now = 100_000;
        let open = Link { gen: 2, idle: false, at_ms: now - STUCK_MS, ..Link::default() };
        let phase = |p| Some(Conn { phase: p, ..Conn::default() });
        assert_eq!(open.route(phase(Phase::Ready).as_ref(), now), Route::Send);
        assert_eq!(open.route(phase(Phase::Closed).as_ref(), now), Route::Start);
        for p in [Phase::Connecting, Phase::Identifying, Phase::Resuming, Phase::Fatal] {
            assert_eq!(open.route(phase(p).as_ref(), now), Route::Wait, "{p:?}: its READY sends, or nothing does");
        }
        // Dialled, no Hello yet: stuck only after STUCK_MS.
        assert_eq!(open.route(None, now), Route::Wait);
        assert_eq!(open.route(None, now + 1), Route::Stuck);
        assert_eq!(Link { idle: true, ..open }.route(None, now + 1), Route::Start, "at rest");
    }
}
