//! The driver: one function per export. Each loads the records its event needs, feeds
//! the event to a gateway machine (`gateway/`) or the presence decision
//! (`presence::decide`), saves the records its caller owns *before* acting (a Hello can
//! arrive on another instance as soon as a socket opens), then performs the actions
//! through the host. A step (a flush, a heartbeat, a lock's release) returns the step it
//! leaves (`Next`, or the heartbeat a release hands over) instead of calling it, and `run`
//! goes on in one loop. Which call may
//! write which record, and why that holds while Navidrome runs calls concurrently, is in
//! `store.rs`.
//!
//! Sends on a connection hold its send lock (`sl:<gen>:<user>`, a one-time schedule:
//! Navidrome refuses a duplicate id), because two instances writing to one socket at
//! once make gorilla panic and the host fail the whole call. The one exception is the
//! answer to Hello, sent by the read loop before anything else can send on that
//! connection. A send that finds the lock taken is retried by a timer a second later.

use crate::config::{self, Pause, Settings, User};
use crate::enrich;
use crate::gateway::{self, Actions, Beat, Conn, Ctx, Frame, Link, Route, STATUSES};
use crate::host::{self, log, Host, Level};
use crate::ids::{self, Kind};
use crate::input::{self, Report};
use crate::players;
use crate::presence::{self, Facts, Plan, Sent, Want, LOOKUP_WAIT_MS, STOP_GRACE_MS};
use crate::store::{self, Record};
use crate::text::{self, Fnv};
use alloc::string::String;
use alloc::vec::Vec;

/// Our own closes carry this reason so the `on_close` they trigger is ignored (Navidrome
/// calls it synchronously inside `websocket_closeconnection`, ABI §4.4).
const OWN_CLOSE: &str = "nd:reconnect";
/// The send lock's lease: if its holder dies, the lock frees itself after this long and
/// its timer sends what is still wanted.
const LEASE_S: u32 = 10;
/// Heartbeat retries (`r1`–`r3`, `f1`–`f3` for the first beat), a second apart, when the
/// send lock is taken.
const RETRIES: u8 = 3;
/// After a want finds the reconnect timer already there, a flush this much later checks
/// that it did not just decide to rest without seeing the want.
const RECHECK_MS: i64 = 2_000;

pub type Result = core::result::Result<Option<Vec<u8>>, String>;
type Done = core::result::Result<(), String>;

const LEGACY_WAIT_S: u32 = 2;

/// A host that sends playback reports (Navidrome ≥ 0.62) makes now-playing calls
/// redundant.
pub fn reports_seen(h: &mut impl Host) -> bool {
    store::reports_seen().get(h).is_some()
}

fn user(h: &mut impl Host, name: &str) -> core::result::Result<Option<User>, &'static str> {
    User::load(|k| h.config(k), name)
}

/// The settings, read on first use.
fn settings<'u>(h: &mut impl Host, u: &'u User) -> core::result::Result<&'u Settings, String> {
    let mut keys = None;
    Ok(u.settings(|k| setting(h, &mut keys, k))?)
}

/// One setting. The keys that are set come first, in one call (`keys`): a setting not
/// among them is not read (each read is several kernel calls; most servers set few).
/// Without the list, every key is read.
#[inline(never)]
fn setting(h: &mut impl Host, keys: &mut Option<Option<String>>, k: &str) -> Option<String> {
    // An empty answer (the host could not write it) lists nothing. A failure is logged as
    // `config_keys: <error>`.
    let set = keys.get_or_insert_with(|| host::config_keys(h).map_err(|e| log(h, Level::Warn, "config_keys", &e)).ok().filter(|s| !s.is_empty()));
    // Keys are plain words: a quoted one is in the list exactly when it is set.
    match set {
        Some(set) if text::find(set, &text::join3("\"", k, "\"")).is_none() => None,
        _ => h.config(k),
    }
}

fn bad_input(what: &str) -> String {
    text::join3("malformed ", what, " payload")
}

/// `input::fields`, or the error for a malformed `what` payload.
fn fields(input: &[u8], keys: &[&str], what: &str) -> core::result::Result<([String; 2], i64), String> {
    let mut out = Default::default();
    input::fields(input, keys, &mut out).ok_or_else(|| bad_input(what))?;
    Ok(out)
}

pub fn is_authorized(h: &mut impl Host, input: &[u8]) -> Result {
    let (v, _) = fields(input, &["username"], "is_authorized")?;
    // Navidrome asks before every event it dispatches: a configured user is authorized,
    // nothing more is read (one Discord refused for good is answered by the connection,
    // which does nothing until the config changes). A config that cannot be read is
    // logged and authorizes no one.
    let ok = user(h, &v[0]).map_err(|e| h.log(Level::Error, e)).is_ok_and(|u| u.is_some());
    Ok(Some([&b"false"[..], b"true"][ok as usize].to_vec()))
}

/// The configured user a scrobbler event is for, with a usable application id.
fn reporting_user(h: &mut impl Host, input: &[u8], what: &str) -> core::result::Result<(Report, User), String> {
    let mut rep = Report::default();
    input::report(input, &mut rep).ok_or_else(|| bad_input(what))?;
    let Some(u) = user(h, &rep.username)? else {
        return Err(text::join3("scrobbler(not_authorized): user '", &rep.username, "' has no Discord token configured"));
    };
    if !config::valid_client_id(&settings(h, &u)?.client_id) {
        return Err("config `clientid` must be the Discord application id (17-20 digits)".into());
    }
    Ok((rep, u))
}

fn want_of(rep: Report) -> Want {
    let mut w = rep.track;
    w.paused = rep.state == "paused";
    w.player = rep.player_id;
    w
}

pub fn playback_report(h: &mut impl Host, input: &[u8]) -> Result {
    let (rep, u) = reporting_user(h, input, "playback_report")?;
    let want = store::want(&u.name);
    let shown = want.get(h);
    // Every new track comes with a now-playing call, whose read of the mark keeps it.
    if shown.as_ref().is_none_or(|s| s.track_id != rep.track.track_id) {
        let _ = store::reports_seen().put(h, &1);
    }
    let set = settings(h, &u)?;
    if set.ignores(&rep.player_name, &rep.player_id) {
        log(h, Level::Debug, &u.name, "ignoring a player on the ignore list");
        return Ok(None);
    }
    // The report's time (whole seconds, at most 10^11: `input::report`) places the track
    // (v2's math); the clock, which is never earlier, times what is sent.
    let at = rep.timestamp * 1000;
    let now = at.max(h.now_ms());
    // 0 playing, 1 starting, 2 paused, 3 stopped, 4 expired.
    let Some(mut st) = crate::json::key_index(rep.state.as_bytes(), &["playing", "starting", "paused", "stopped", "expired"]) else {
        log(h, Level::Debug, &u.name, "ignoring an unknown playback state");
        return Ok(None);
    };
    // A pause at the track's end is its end (the web UI pauses before `ended`).
    if st == 2 && players::ended(rep.position_ms, rep.duration_s) {
        st = 3;
    }
    let hide = st == 2 && set.pause == Pause::Hide;
    // The report's want, which names its player even when it plays nothing (stopped,
    // expired, or paused with pauses hidden).
    let (pos, rate, dur) = (rep.position_ms, rep.rate_milli, rep.duration_s);
    let mut w = want_of(rep);
    w.timing(at, pos, rate, dur);
    let other = store::other(&u.name);
    let mut p = players::Players { shown, other: other.get(h) };
    let had_other = p.other.is_some();
    let change = p.report(w, st <= 2 && !hide, st == 1, now);
    match &p.other {
        Some(o) => other.put(h, o)?,
        None if had_other => other.remove(h)?,
        None => {}
    }
    // The want stored or removed, then shown by the report worker (see `flush`).
    let (mut mine, mut later) = (None, None);
    match (change, &mut p.shown) {
        (players::Change::Show, Some(w)) => {
            w.keep_lookups(set);
            want.put(h, w)?;
            if let (true, Pause::HideAfter(ms)) = (w.paused, set.pause) {
                later = Some(ms);
            }
            mine = Some(Some(&*w));
        }
        (players::Change::Stopped, _) => {
            want.remove(h)?;
            let stopped = store::stopped(&u.name);
            if st == 3 {
                stopped.put(h, &now)?;
                later = Some(STOP_GRACE_MS);
            } else {
                stopped.remove(h)?;
                mine = Some(None);
            }
        }
        // Another player's report that changes nothing shown.
        _ => {}
    }
    if let Some(m) = mine {
        run(h, &u, Some(Next::Flush(now, None, Some(m), 0)), now);
    }
    // Then the clear after a stop's grace, or of a pause shown long enough.
    if let Some(ms) = later {
        schedule_flush(h, &u, now, now + ms);
    }
    Ok(None)
}

/// Navidrome 0.60–0.61 send only now-playing (no state, no time): show the track without
/// timestamps and clear it 5 s after its end unless another one replaced it. Newer hosts
/// call now-playing *and*, at the same moment from another worker, playback-report; so a
/// now-playing only takes effect after `LEGACY_WAIT_S`, if no report was seen meanwhile.
pub fn now_playing(h: &mut impl Host, input: &[u8]) -> Result {
    if reports_seen(h) {
        return Ok(None);
    }
    let (rep, u) = reporting_user(h, input, "now_playing")?;
    // At most a day (`schedule`); the report's numbers are bounded, so this cannot overflow.
    let remaining = (rep.duration_s - rep.position_ms / 1000).max(0) + 5;
    let mut w = want_of(rep);
    let legacy = store::legacy(&u.name);
    w.legacy = legacy.get(h).map_or(0, |old| old.legacy) + 1;
    legacy.put(h, &w)?;
    schedule(h, &u.name, LEGACY_WAIT_S as i64, Kind::LegacyShow, w.legacy);
    schedule(h, &u.name, remaining, Kind::LegacyEnd, w.legacy);
    Ok(None)
}

pub fn on_text(h: &mut impl Host, mut input: impl gateway::Source) -> Result {
    let (id, frame) = gateway::text(&mut input).ok_or_else(|| bad_input("websocket text"))?;
    on_connection(h, &id, Ok(frame))
}

/// A connection ended: an error (`error`, whose text holds the close code) or a close
/// (with its code; ours, known by its reason, changes nothing).
pub fn on_end(h: &mut impl Host, input: &[u8], error: bool) -> Result {
    let (what, key) = if error { ("websocket error", "error") } else { ("websocket close", "reason") };
    let (v, mut code) = fields(input, &["connectionId", key], what)?;
    if error {
        code = input::close_code(&v[1]) as i64;
    } else if v[1] == OWN_CLOSE {
        return Ok(None);
    }
    on_connection(h, &v[0], Err(code as u16))
}

/// The read loop of connection `<gen>:<user>` delivers a frame (`Ok`) or its end (`Err`
/// with the close code). Only this loop writes the connection's record, and Navidrome
/// calls it one event at a time; callbacks of a connection that is no longer current
/// change nothing.
fn on_connection(h: &mut impl Host, id: &str, ev: core::result::Result<gateway::Inbound, u16>) -> Result {
    let Some((gen, name)) = ids::parse_conn(id) else {
        h.log(Level::Warn, "callback for an unknown connection");
        return Ok(None);
    };
    let (link, c) = current(h, name, Some(gen))?;
    if link.idle || link.gen != gen {
        log(h, Level::Debug, name, "ignoring a callback from an old connection");
        return Ok(None);
    }
    let slot = store::conn(gen, name);
    let mut c = c.unwrap_or_default();
    let before = store::conn_text(&c);
    let now = h.now_ms();
    let ctx = Ctx { now, rand: seed(name, now, gen) };
    let actions = match ev {
        Ok(frame) => c.on_frame(&link, frame, &ctx),
        Err(code) => c.on_closed(&link, code, &ctx),
    };
    if store::conn_text(&c) != before {
        slot.put(h, &c)?;
    }
    // The config (token, settings) is read only when there is something to do: most frames
    // (ACKs, the dispatches a user account gets) only move the connection's record.
    if actions.is_empty() {
        return Ok(None);
    }
    let Ok(Some(u)) = user(h, name) else {
        log(h, Level::Warn, name, "callback for a user no longer configured");
        return Ok(None);
    };
    let next = perform(h, &u, gen, actions, now, false);
    run(h, &u, next, now);
    Ok(None)
}

/// One of our timers (`ids::Kind`) fired.
pub fn on_timer(h: &mut impl Host, input: &[u8]) -> Result {
    let (v, _) = fields(input, &["scheduleId"], "scheduler callback")?;
    let id = &v[0];
    // Not one of ours (as the official plugin, an unknown timer is only a warning).
    let Some((kind, num, name)) = ids::timer(id) else {
        h.log(Level::Warn, "ignoring an unknown timer");
        return Ok(None);
    };
    let u = match user(h, name)? {
        Some(u) => u,
        None => return Ok(None),
    };
    let now = h.now_ms();
    let gen = u32::try_from(num).unwrap_or(u32::MAX);
    // The flush the timer asks for: when, the send lock it holds, how long it may spend on
    // lookups.
    let mut later = None;
    match kind {
        // A flush runs at its due time at the earliest.
        Kind::Flush => later = Some((num.max(now), None, 0)),
        // The images and links of the want stored at `num` (a newer want has its own):
        // what is found within `LOOKUP_WAIT_MS` goes out, then the rest of the budget.
        Kind::Lookups => {
            if wanted(h, name).is_some_and(|w| w.at_ms == num) {
                run(h, &u, Some(Next::Flush(now, None, None, LOOKUP_WAIT_MS)), now);
                later = Some((h.now_ms(), None, enrich::LOOKUP_BUDGET_MS - LOOKUP_WAIT_MS));
            }
        }
        Kind::IdleClose => idle(h, &u, num)?,
        Kind::LegacyShow => {
            let w = store::legacy(name).get(h);
            match w {
                // Stored now: a new want, whose first update waits for its lookups.
                Some(mut w) if w.legacy == num && !reports_seen(h) => {
                    w.at_ms = now;
                    store::want(name).put(h, &w)?;
                    later = Some((now, None, 0));
                }
                _ => {}
            }
        }
        Kind::LegacyEnd => {
            let want = store::want(name);
            if want.get(h).is_some_and(|w| w.legacy == num) {
                want.remove(h)?;
                later = Some((now, None, 0));
            }
        }
        Kind::Reconnect => reconnect(h, &u, gen, now)?,
        // The send lock's lease ran out: its holder died. Still holding it (its id stays
        // registered until this returns), send what is wanted.
        Kind::SendLock => {
            if current(h, name, Some(gen))?.0.gen == gen {
                log(h, Level::Warn, name, "a Discord send did not finish; sending again");
                later = Some((now, Some(gen), 0));
            }
        }
        k => {
            let (beat, tries) = match k.retried() {
                Some((first, tries)) => (Beat::Retry(first), tries),
                None if k == Kind::FirstBeat => (Beat::First, 0),
                None => (Beat::Regular, 0),
            };
            run(h, &u, Some(Next::Beat(gen, beat, tries, None)), now);
        }
    }
    if let Some((at, held, lookups)) = later {
        run(h, &u, Some(Next::Flush(at, held, None, lookups)), now);
        // Then the release of the lock, and the handover of a heartbeat left for it since
        // the last one sent.
        if held.is_some() {
            let beat_ms = load_sent(h, gen, name, false).beat_ms;
            if let Some((gen, held)) = release(h, &u, gen, None, Some(beat_ms)) {
                run(h, &u, Some(Next::Beat(gen, Beat::Retry(false), RETRIES + 1, held)), now);
            }
        }
    }
    Ok(None)
}

/// The link (a record that does not parse counts as none), and its current connection if
/// it said Hello (and is generation `gen`, if given). A cache that cannot be read is an
/// error: nothing is done on state that could not be read.
fn current(h: &mut impl Host, name: &str, gen: Option<u32>) -> core::result::Result<(Link, Option<Conn>), String> {
    let link = store::link(name).read(h)?.unwrap_or_default();
    let conn = if link.idle || gen.is_some_and(|g| g != link.gen) { None } else { store::conn(link.gen, name).read(h)? };
    Ok((link, conn))
}

/// What was sent on connection `gen`. `resumed`: the connection resumed the session of an
/// earlier one; until it has sent something, it goes on with the rate window of the last
/// connection that did (up to 3 generations back; failed dials send nothing), since the
/// budget is the session's. A new session starts with its own.
fn load_sent(h: &mut impl Host, gen: u32, name: &str, resumed: bool) -> Sent {
    let mut g = gen;
    loop {
        if let Some(s) = store::sent(g, name).get(h) {
            return if g == gen { s } else { Sent { times: s.times, ..Sent::default() } };
        }
        if !resumed || g == 0 || gen - g == 3 {
            return Sent::default();
        }
        g -= 1;
    }
}

/// The user's want, as another writer left it.
fn wanted(h: &mut impl Host, name: &str) -> Option<Want> {
    store::want(name).get(h)
}

/// Entropy for jitter: wasm32-unknown-unknown has no RNG, so hash what differs per call.
fn seed(name: &str, now: i64, gen: u32) -> u64 {
    let mut f = Fnv::new();
    f.eat(name.as_bytes());
    f.eat(&now.to_le_bytes());
    f.eat(&gen.to_le_bytes());
    f.0 ^ (f.0 >> 29)
}

/// Takes the send lock of connection `gen`: `Ok(Some(id))` to release after the send,
/// `Ok(None)` when the caller already holds it (`held`), `Err(())` when another call
/// holds it.
#[inline(always)]
fn lock(h: &mut impl Host, name: &str, gen: u32, held: Option<u32>) -> core::result::Result<Option<String>, ()> {
    if held == Some(gen) {
        return Ok(None);
    }
    let id = Kind::SendLock.id(gen as i64, name);
    // Navidrome's scheduler fails only on a duplicate id; anything else: send unlocked.
    if once(h, name, LEASE_S, &id) == Some(true) {
        return Err(());
    }
    Ok(Some(id))
}

/// Releases the send lock of connection `gen` (`id`; `None`: the caller's caller holds
/// it), then leaves a heartbeat that was left for the holder (`hw.<gen>.<user>`, the time
/// it fell due) to be sent if none went out since (`beat_ms`). That beat's own release
/// looks no further (`beat_ms` None): one handover per release.
fn release(h: &mut impl Host, u: &User, gen: u32, id: Option<String>, beat_ms: Option<i64>) -> Option<Handover> {
    let name = u.name.as_str();
    let held = id.is_none().then_some(gen);
    if let Some(id) = id {
        let r = cancel(h, &id);
        warn(h, name, r);
    }
    let beat_ms = beat_ms?;
    store::beat_wanted(gen, name).get(h).is_some_and(|t| t > beat_ms).then_some((gen, held))
}

/// A heartbeat a release hands over: of connection `gen`, and the send lock held for it.
type Handover = (u32, Option<u32>);

/// A step of the driver. A heartbeat or a flush returns the heartbeat its lock's release
/// hands over (`Handover`) to be done after it, so that no step calls another: `run` goes
/// on in one loop.
enum Next<'w> {
    /// A heartbeat of connection `gen` (`on_beat`: kind, tries, the send lock held for it).
    Beat(u32, Beat, u8, Option<u32>),
    /// A flush (`flush`: at, the send lock held, `mine`, the lookups' time).
    Flush(i64, Option<u32>, Option<Option<&'w Want>>, i64),
}

/// Runs `first` and the heartbeat each step hands over, in one loop. Failures are logged.
fn run(h: &mut impl Host, u: &User, first: Option<Next>, now: i64) {
    let mut next = first;
    while let Some(n) = next.take() {
        let step = match n {
            Next::Beat(gen, kind, tries, held) => on_beat(h, u, gen, kind, tries, now, held),
            Next::Flush(at, held, mine, lookups) => flush(h, u, at, held, mine, lookups),
        };
        next = match step {
            Ok(b) => b.map(|(gen, held)| Next::Beat(gen, Beat::Retry(false), RETRIES + 1, held)),
            Err(e) => {
                log(h, Level::Warn, &u.name, &e);
                None
            }
        };
    }
}

/// Performs a machine's actions for connection `gen`. `locked`: the caller holds its
/// send lock. Failures are logged; the actions after one still run. A heartbeat to send
/// without the lock, or a flush (a machine asks for one of them at most), is left
/// to the caller's loop (`run`).
fn perform(h: &mut impl Host, u: &User, gen: u32, a: Actions, now: i64, locked: bool) -> Option<Next<'static>> {
    let name = u.name.as_str();
    let conn = ids::conn(gen, name);
    let mut next = None;
    if let Some((level, msg)) = a.log {
        log(h, level, name, msg);
    }
    if a.cancel_first {
        let r = cancel(h, &Kind::FirstBeat.id(gen as i64, name));
        warn(h, name, r);
    }
    if a.cancel_beat {
        let r = cancel(h, &Kind::Beat.id(gen as i64, name));
        warn(h, name, r);
    }
    if let Some((level, msg, code)) = a.closed {
        let mut m = text::join(msg, " (code ").into_bytes();
        text::push_int(&mut m, code as i64);
        m.push(b')');
        log(h, level, name, &text::utf8(m));
    }
    match a.send {
        Some(Frame::Heartbeat(_)) if !locked => next = Some(Next::Beat(gen, Beat::Answer, 0, None)),
        Some(f) => {
            let r = host::ws_send(h, &conn, &|o| gateway::frame(o, &f, &u.token));
            warn(h, name, r);
        }
        None => {}
    }
    if let Some(code) = a.close {
        let r = close(h, &conn, code);
        warn(h, name, r);
    }
    if let Some(secs) = a.first_beat {
        let r = host::schedule_once(h, secs, &Kind::FirstBeat.id(gen as i64, name));
        warn(h, name, r);
    }
    // The first beat's sender arms the recurring one; if two did (a beat handed to a lock
    // holder, and its own timer), the scheduler keeps the first.
    if let Some(secs) = a.beat_every {
        let r = fine(host::schedule_every(h, secs, &Kind::Beat.id(gen as i64, name)), "already exists");
        warn(h, name, r);
    }
    // One reconnect timer per connection: a second request is the same one.
    if let Some(secs) = a.reconnect {
        once(h, name, secs, &Kind::Reconnect.id(gen as i64, name));
    }
    if let Some((url, retry)) = a.connect {
        if let Err(e) = host::ws_connect(h, &url, &conn) {
            once(h, name, retry, &Kind::Reconnect.id(gen as i64, name));
            log(h, Level::Warn, name, &text::join("cannot reach the Discord gateway: ", &e));
        }
    }
    if a.flush {
        debug_assert!(next.is_none(), "one follow-up per list of actions");
        next = Some(Next::Flush(now, if locked { Some(gen) } else { None }, None, 0));
    }
    next
}

/// Logs the failure of a step whose failure stops nothing else.
#[inline(never)]
fn warn(h: &mut impl Host, name: &str, r: Done) {
    if let Err(e) = r {
        log(h, Level::Warn, name, &e);
    }
}

/// Closes connection `id` as our own close; one already gone is closed.
fn close(h: &mut impl Host, id: &str, code: u16) -> Done {
    fine(host::ws_close(h, id, code, OWN_CLOSE), "not found")
}

/// Cancels timer `id`: one that already fired or never existed is fine.
fn cancel(h: &mut impl Host, id: &str) -> Done {
    fine(host::cancel(h, id), "not found")
}

/// `r`, with the host's error saying `what` (`not found`, `already exists`) as success.
fn fine(r: Done, what: &str) -> Done {
    match r {
        Err(e) if !host::says(&e, what) => Err(e),
        _ => Ok(()),
    }
}

/// A heartbeat of connection `gen` is due (`tries`: retries so far; `held`: the caller
/// holds the send lock). Under the send lock it is sent and its time recorded, or the
/// connection is ended as a zombie. A taken lock means another send is under way: the
/// beat is left for its holder, which looks for one when it releases the lock (`release`),
/// and tried once more in case it already has; a timer tries again a second later, at
/// most three times, in case the holder died.
fn on_beat(h: &mut impl Host, u: &User, gen: u32, kind: Beat, tries: u8, now: i64, held: Option<u32>) -> core::result::Result<Option<Handover>, String> {
    let name = u.name.as_str();
    let (link, conn) = current(h, name, Some(gen))?;
    let Some(conn) = conn else {
        // A recurring beat of an old connection: stop it.
        if kind == Beat::Regular {
            let _ = cancel(h, &Kind::Beat.id(gen as i64, name));
        }
        return Ok(None);
    };
    // A taken lock: the beat is left for its holder (`hw`), and the lock tried once more.
    let mut asked = false;
    let wanted = store::beat_wanted(gen, name);
    let id = loop {
        match lock(h, name, gen, held) {
            Err(()) if !asked => {
                asked = true;
                wanted.put(h, &now)?;
            }
            id => break id,
        }
    };
    let Ok(id) = id else {
        if tries < RETRIES {
            let first = kind == Beat::First || kind == Beat::Retry(true);
            schedule(h, name, 1, Kind::retry(first, tries), gen as i64);
        } else if tries == RETRIES {
            log(h, Level::Warn, name, "heartbeat skipped: the connection stayed busy");
        }
        return Ok(None);
    };
    // The time of this send, not of the caller's start (a flush handing a beat over may
    // have spent seconds on cover lookups).
    let now = now.max(h.now_ms());
    let mut sent = load_sent(h, gen, name, false);
    // The beat this call stands for may have gone out meanwhile, handed to a lock holder.
    let done = (asked || matches!(kind, Beat::Retry(_))) && wanted.get(h).is_some_and(|t| sent.beat_ms >= t);
    let actions = gateway::beat(&conn, &link, sent.beat_ms, kind, done, seed(name, now, gen));
    let saved = if actions.send.is_some() {
        sent.beat_ms = now;
        store::sent(gen, name).put(h, &sent)
    } else {
        Ok(())
    };
    // Under the lock a beat's actions leave nothing (they hold no flush).
    match saved {
        Ok(()) => drop(perform(h, u, gen, actions, now, true)),
        e => warn(h, name, e),
    }
    // A handed-over beat hands nothing on.
    Ok(release(h, u, gen, id, (tries <= RETRIES).then_some(sent.beat_ms)))
}

/// The reconnect timer of generation `gen`: the only writer of the link. It starts the
/// next connection (or rests), saving the link before dialling.
fn reconnect(h: &mut impl Host, u: &User, gen: u32, now: i64) -> Done {
    let name = u.name.as_str();
    let (link, mut conn) = current(h, name, Some(gen))?;
    if let Some(c) = conn.as_mut() {
        // An idle close ended the session at Discord: it cannot be resumed.
        if store::ended(gen, name).get(h).is_some() {
            c.forget();
        }
    }
    let want = wanted(h, name).is_some();
    let Some((next, actions)) = link.reconnect(gen, conn.as_ref(), want, &Ctx { now, rand: seed(name, now, gen) }) else {
        return Ok(());
    };
    store::link(name).put(h, &next)?;
    let left = perform(h, u, next.gen, actions, now, false);
    debug_assert!(left.is_none(), "a dial leaves nothing to run (no flush, no heartbeat)");
    Ok(())
}

/// Asks the reconnect timer of generation `gen` to run now. If it is already there it may
/// be running and have decided without this want (`recheck`): a flush checks again soon.
fn start(h: &mut impl Host, u: &User, gen: u32, now: i64, recheck: bool) {
    if schedule(h, &u.name, 0, Kind::Reconnect, gen as i64) == Some(true) && recheck {
        schedule_flush(h, u, now, now + RECHECK_MS);
    }
}

/// A one-time timer in `secs`: `Some(true)` when one with that id is already pending,
/// `Some(false)` when scheduled now; any other failure is logged (`None`).
fn once(h: &mut impl Host, name: &str, secs: u32, id: &str) -> Option<bool> {
    match host::schedule_once(h, secs, id) {
        Err(e) if host::says(&e, "already exists") => Some(true),
        Ok(()) => Some(false),
        r => {
            warn(h, name, r);
            None
        }
    }
}

/// `once` for timer `kind` numbered `n`, in `secs` (never negative at any caller; at most
/// a day). Most callers take one already pending as done: its callback does the same.
fn schedule(h: &mut impl Host, name: &str, secs: i64, kind: Kind, n: i64) -> Option<bool> {
    debug_assert!(secs >= 0, "a timer in the past");
    once(h, name, secs.min(86_400) as u32, &kind.id(n, name))
}

/// Schedules a flush at `at` (ms): a flush sends whatever is wanted when it runs.
fn schedule_flush(h: &mut impl Host, u: &User, now: i64, at: i64) {
    schedule(h, &u.name, ((at - now).clamp(0, 3_600_000) + 999) / 1000, Kind::Flush, at);
}

/// Reads what an update is decided on, then performs the decision: where it goes
/// (`Link::route`: the ready connection, else the reconnect timer) and what goes
/// (`presence::decide`: the presence or the clear, a deferred flush, the idle close).
/// `now`: the wall clock, never taken as earlier than the last known time (a
/// host without a WASI clock reads 0). `held`: the caller holds that connection's send
/// lock. `mine`: the caller is the report worker, the want's only writer (store.rs), with
/// the want it just stored or removed: it is not read again, no newer one can be stored
/// during this call, and the caller may race the reconnect timer (see `start`).
/// `lookups_ms`: the HTTP time this call may spend on images and links; what it cannot
/// look up is left to the `en` timer.
fn flush(h: &mut impl Host, u: &User, now: i64, held: Option<u32>, mine: Option<Option<&Want>>, lookups_ms: i64) -> core::result::Result<Option<Handover>, String> {
    let name = u.name.as_str();
    let (link, conn) = current(h, name, None)?;
    // Another writer's record: its text is kept to tell, under the send lock, whether it
    // changed.
    let slot = store::want(name);
    let recheck = mine.is_some();
    let stored = if recheck { String::new() } else { host::cache_get(h, &slot.key) };
    let loaded = Want::load(&stored);
    let want = mine.unwrap_or(loaded.as_ref());
    let gen = link.gen;
    let socket = ids::conn(gen, name);
    let route = link.route(conn.as_ref(), now);
    let Some(conn) = conn.filter(|_| route == Route::Send) else {
        // The reconnect timer starts the next connection (a pending one keeps its backoff).
        if want.is_some() && route != Route::Wait {
            if route == Route::Stuck {
                log(h, Level::Warn, name, "the Discord connection never opened; reconnecting");
                close(h, &socket, 4000)?;
            }
            start(h, u, gen, now, recheck);
        }
        return Ok(None);
    };
    let resumed = !link.session_id.is_empty() && conn.session_id == link.session_id;
    let sent = load_sent(h, gen, name, resumed);
    // Never earlier than the last update, nor than the want.
    let now = now.max(sent.last());
    let now = want.map_or(now, |w| now.max(w.at_ms));
    let stopped = if want.is_none() { store::stopped(name).get(h) } else { None };
    let set = settings(h, u)?;
    let status = STATUSES[set.status.unwrap_or(conn.status) as usize];
    let want = want.filter(|w| !w.pause_over(set.pause, now));
    // Rendered and enriched (which may take HTTP round trips) before taking the lock; the
    // images and links count as what is shown, so found ones go out once more.
    let mut net = enrich::Net { until_ms: if lookups_ms > 0 { h.now_ms() + lookups_ms } else { 0 }, skipped: false };
    let act = want.map(|w| {
        let mut a = presence::activity(w, set);
        enrich::enrich(h, u, set, w, &mut a, now, &mut net);
        a
    });
    let mut salt = text::join(&set.client_id, status);
    if let Some(a) = &act {
        for s in [&a.large_image, &a.small_image, &a.details_url, &a.state_url] {
            salt.push_str("\n");
            salt.push_str(s);
        }
    }
    // Lookups left: the `en` timer does them, and sends what it finds.
    let lookups = match want {
        Some(w) if net.skipped && lookups_ms == 0 => schedule(h, name, 0, Kind::Lookups, w.at_ms).is_some(),
        _ => false,
    };
    let idle_ms = set.idle_ms;
    let d = presence::decide(&Facts { want, sent: &sent, stopped, lookups, idle_ms, now, salt: &salt });
    let mut after = None;
    let mut plan = d.plan;
    if let Plan::Send(_) = plan {
        let Ok(id) = lock(h, name, gen, held) else {
            schedule_flush(h, u, now, now + 1_000);
            return Ok(None);
        };
        // Decided again under the lock: another send may have gone out meanwhile, and a
        // newer want (stored while this one was enriched) is its storer's to send.
        let cur = load_sent(h, gen, name, resumed);
        let newer = !recheck && host::cache_get(h, &slot.key) != stored;
        plan = if newer { Plan::Nothing } else { presence::plan(want, &cur, now, &salt) };
        let sent = match &plan {
            // Recorded before the send: the rate budget counts it even if the call dies
            // during the write.
            Plan::Send(next) => store::sent(gen, name).put(h, next)
                .and_then(|_| host::ws_send(h, &socket, &|o| presence::presence(o, act.as_ref(), &set.client_id, status))),
            _ => Ok(()),
        };
        after = release(h, u, gen, id, Some(cur.beat_ms));
        // The socket is gone or broken: its read loop's last callback reconnects, and the
        // next session shows the presence.
        warn(h, name, sent);
    }
    if let Plan::Later(at) = plan {
        schedule_flush(h, u, now, at);
    }
    if let Some(at) = d.idle_close_at {
        schedule(h, name, idle_ms / 1000, Kind::IdleClose, at);
    }
    Ok(after)
}

/// Idle-close timer due at `due`: ends the session if nothing has been shown since the
/// last update for the whole idle time; a newer clear has its own timer.
fn idle(h: &mut impl Host, u: &User, due: i64) -> Done {
    let name = u.name.as_str();
    let (link, conn) = current(h, name, None)?;
    let Some(conn) = conn else { return Ok(()) };
    let last = load_sent(h, link.gen, name, false).last();
    let idle_ms = settings(h, u)?.idle_ms;
    if wanted(h, name).is_none() && last + idle_ms <= due {
        // The close ends the session at Discord: the reconnect timer must not resume it.
        store::ended(link.gen, name).put(h, &1000)?;
        let left = perform(h, u, link.gen, gateway::idle(&conn), due, false);
        debug_assert!(left.is_none(), "a close leaves nothing to run (no flush, no heartbeat)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use crate::gateway::Phase;
    use crate::json::Out;

    const TOKEN: &str = "tok-SECRET";
    const T0: i64 = 1_714_600_000;

    fn on_error(h: &mut Fake, input: &[u8]) -> Result {
        on_end(h, input, true)
    }

    fn on_close(h: &mut Fake, input: &[u8]) -> Result {
        on_end(h, input, false)
    }

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.config.insert("clientid".into(), "123456789012345678".into());
        f.config.insert("users".into(), format!(r#"[{{"token":"{TOKEN}","username":"alice"}}]"#));
        f
    }

    /// A playback report made at `ts` (s), which is then the time on the host's clock.
    fn report(h: &mut Fake, state: &str, title: &str, ts: i64) -> Result {
        report_from(h, "p1", state, title, ts, 10_000)
    }

    /// A report from player `player` at position `pos_ms` (track of 180 s).
    fn report_from(h: &mut Fake, player: &str, state: &str, title: &str, ts: i64, pos_ms: i64) -> Result {
        h.clock = ts * 1000;
        let input = format!(
            r#"{{"username":"alice","track":{{"id":"t-{title}","title":"{title}","album":"Album","artist":"Artist","artists":[],"albumArtists":[],"duration":180}},"state":"{state}","positionMs":{pos_ms},"playbackRate":1,"playerId":"{player}","playerName":"NavidromeUI","timestamp":{ts}}}"#
        );
        let r = playback_report(h, input.as_bytes());
        settle(h);
        r
    }

    /// Runs every pending flush timer, each at its due time.
    fn flush_all(h: &mut Fake) {
        while let Some(id) = h.timers.keys().find(|k| k.starts_with("fl:")).cloned() {
            fire(h, &id);
        }
    }

    /// Runs the reconnect timers due now, as Navidrome does at once for a 0 s delay.
    fn settle(h: &mut Fake) {
        while let Some(id) = h.timers.keys().find(|k| (k.starts_with("rc:") || k.starts_with("en:")) && h.due[*k] <= h.clock).cloned() {
            fire(h, &id);
        }
    }

    fn phase(h: &mut Fake) -> Option<Phase> {
        current(h, "alice", None).unwrap().1.map(|c| c.phase)
    }

    fn text(h: &mut Fake, frame: &str) {
        let conn = h.connects.last().unwrap().1.clone();
        let mut o = Out::new();
        o.raw("{").key("connectionId").str(&conn).key("message").str(frame).raw("}");
        on_text(h, o.buf).unwrap();
        settle(h);
    }

    /// Runs the first pending timer whose id starts with `prefix`, at its due time.
    fn fire(h: &mut Fake, prefix: &str) {
        let id = h.timers.keys().find(|k| k.starts_with(prefix)).cloned().unwrap_or_else(|| panic!("no {prefix} timer in {:?}", h.timers));
        h.clock = h.clock.max(h.due[&id]);
        match h.timers[&id] {
            (every, true) => drop(h.due.insert(id.clone(), h.clock + every * 1000)),
            _ => drop(h.remove_timer(&id)),
        }
        on_timer(h, format!(r#"{{"scheduleId":"{id}","payload":"","isRecurring":false}}"#).as_bytes()).unwrap();
        settle(h);
    }

    fn last_frame(h: &Fake) -> &str {
        &h.frames.last().unwrap().1
    }

    /// A user connected and READY, showing "Song" since T0.
    fn ready() -> Fake {
        let mut h = fake();
        report(&mut h, "playing", "Song", T0).unwrap();
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#);
        text(&mut h, r#"{"op":0,"t":"READY","s":1,"d":{"session_id":"s1","resume_gateway_url":"wss://r.discord.gg"}}"#);
        h
    }

    #[test]
    fn a_config_that_cannot_be_read_authorizes_no_one() {
        let mut h = fake();
        h.config.insert("users".into(), "{broken".into());
        assert_eq!(is_authorized(&mut h, br#"{"username":"alice"}"#), Ok(Some(b"false".to_vec())));
        assert!(h.logs.iter().any(|(l, m)| *l == Level::Error && m.contains("users") && !m.contains(TOKEN)), "{:?}", h.logs);
    }

    #[test]
    fn vertical_slice() {
        let mut h = fake();
        assert_eq!(is_authorized(&mut h, br#"{"username":"alice"}"#), Ok(Some(b"true".to_vec())));
        assert_eq!(is_authorized(&mut h, br#"{"username":"bob"}"#), Ok(Some(b"false".to_vec())));
        report(&mut h, "playing", "Song", T0).unwrap();
        assert_eq!(h.connects, [(crate::gateway::GATEWAY_URL.into(), "1:alice".into())]);
        assert!(h.frames.is_empty(), "nothing before Hello");
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#);
        assert!(last_frame(&h).starts_with(r#"{"op":2,"d":{"token":"tok-SECRET""#));
        let first = h.timers.iter().find(|(k, _)| k.starts_with("b1:1:")).map(|(_, v)| v.0).unwrap();
        assert!((0..=41).contains(&first));
        text(&mut h, r#"{"op":0,"t":"READY","s":1,"d":{"session_id":"s1","resume_gateway_url":"wss://r.discord.gg"}}"#);
        assert!(last_frame(&h).contains(r#""details":"Song","state":"Artist","application_id":"123456789012345678","timestamps":{"start":1714599990000,"end":1714600170000}"#), "{}", last_frame(&h));
        fire(&mut h, "b1:");
        assert_eq!(last_frame(&h), r#"{"op":1,"d":1}"#);
        assert_eq!(h.timers.get("hb:1:alice"), Some(&(41, true)));
        text(&mut h, r#"{"op":11}"#);
        fire(&mut h, "hb:");
        assert_eq!(last_frame(&h), r#"{"op":1,"d":1}"#);
        // Stop: nothing at once, the clear after the grace.
        let n = h.frames.len();
        report(&mut h, "stopped", "Song", T0 + 60).unwrap();
        assert_eq!(h.frames.len(), n);
        fire(&mut h, "fl:");
        assert!(last_frame(&h).contains(r#""activities":[]"#));
        assert!(h.closes.is_empty(), "the socket stays open");
        assert!(h.logs.iter().all(|(_, l)| !l.contains(TOKEN)));
    }

    #[test]
    fn heartbeats_and_authorization_checks_read_only_the_users_setting() {
        // The most frequent calls need no application id or other setting.
        let mut h = ready();
        fire(&mut h, "b1:");
        text(&mut h, r#"{"op":11}"#);
        h.config_reads.clear();
        fire(&mut h, "hb:");
        assert_eq!(last_frame(&h), r#"{"op":1,"d":1}"#);
        assert_eq!(h.config_reads, ["users"]);
        (h.config_reads, h.cache_reads) = Default::default();
        assert_eq!(is_authorized(&mut h, br#"{"username":"alice"}"#), Ok(Some(b"true".to_vec())));
        assert_eq!(h.config_reads, ["users"]);
        assert_eq!(h.cache_reads, [""; 0], "Navidrome asks before every event: no record is read");
    }

    #[test]
    fn track_change_does_not_flicker() {
        let mut h = ready();
        report(&mut h, "stopped", "Song", T0 + 100).unwrap();
        report(&mut h, "starting", "Next", T0 + 101).unwrap();
        report(&mut h, "playing", "Next", T0 + 101).unwrap();
        fire(&mut h, "fl:");
        let shown: Vec<_> = h.frames.iter().filter(|(_, f)| f.starts_with(r#"{"op":3"#)).map(|(_, f)| f.contains("Next")).collect();
        assert_eq!(shown, [false, true], "one update for the new track, no clear");
    }

    #[test]
    fn fast_skips_coalesce_within_the_rate_limit() {
        let mut h = ready();
        for i in 0..20 {
            report(&mut h, "playing", &format!("T{i}"), T0 + 1 + i / 4).unwrap();
        }
        let ops3 = h.frames.iter().filter(|(_, f)| f.starts_with(r#"{"op":3"#)).count();
        assert_eq!(ops3, 2, "Song, then one update 4 s later");
        let due: Vec<_> = h.timers.keys().filter_map(|k| k.strip_prefix("fl:")).collect();
        assert_eq!(due, ["1714600004000:alice", "1714600008000:alice"], "the last one 3 s after the last skip");
        fire(&mut h, "fl:1714600004000");
        assert_eq!(h.frames.iter().filter(|(_, f)| f.starts_with(r#"{"op":3"#)).count(), 2, "still too early");
        fire(&mut h, "fl:");
        assert!(last_frame(&h).contains(r#""details":"T19""#), "the final track shows once the window frees");
    }

    #[test]
    fn idle_session_closes_after_the_idle_time() {
        let mut h = ready();
        report(&mut h, "stopped", "Song", T0 + 30).unwrap();
        fire(&mut h, "fl:");
        fire(&mut h, "ic:1714600635000:");
        assert_eq!(h.closes, [("1:alice".into(), 1000, OWN_CLOSE.into())]);
        assert!(!h.timers.keys().any(|k| k.starts_with("hb:") || k.starts_with("b1:")), "{:?}", h.timers);
        report(&mut h, "playing", "Again", T0 + 1000).unwrap();
        assert_eq!(h.connects[1], (crate::gateway::GATEWAY_URL.into(), "2:alice".into()));
        // Playback resumed before the idle time: the socket stays.
        let mut h = ready();
        report(&mut h, "stopped", "Song", T0 + 30).unwrap();
        fire(&mut h, "fl:");
        report(&mut h, "playing", "Next", T0 + 60).unwrap();
        fire(&mut h, "ic:");
        assert!(h.closes.is_empty());
    }

    #[test]
    fn configured_status_and_idle_time() {
        let mut h = fake();
        h.config.insert("status".into(), "idle".into());
        h.config.insert("idleminutes".into(), "0".into());
        report(&mut h, "playing", "Song", T0).unwrap();
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        text(&mut h, r#"{"op":0,"t":"READY","s":1,"d":{"session_id":"s1","sessions":[{"session_id":"x","status":"dnd"}]}}"#);
        assert!(last_frame(&h).ends_with(r#""status":"idle","afk":false}}"#), "{}", last_frame(&h));
        report(&mut h, "stopped", "Song", T0 + 30).unwrap();
        fire(&mut h, "fl:");
        assert!(!h.timers.keys().any(|k| k.starts_with("ic:")), "idleminutes 0 keeps the session");
        h.config.insert("idleminutes".into(), "soon".into());
        assert!(report(&mut h, "playing", "x", T0).unwrap_err().contains("idleminutes"));
    }

    #[test]
    fn ignored_players_and_pause_modes() {
        let mut h = ready();
        h.config.insert("ignoreplayers".into(), "NavidromeUI".into());
        let n = h.frames.len();
        report(&mut h, "playing", "Other", T0 + 10).unwrap();
        report(&mut h, "stopped", "Other", T0 + 11).unwrap();
        assert_eq!((h.frames.len(), h.timers.keys().filter(|k| k.starts_with("fl:")).count()), (n, 0), "an ignored player changes nothing");
        // Pause shown, hidden at once, or hidden after a while.
        let mut h = ready();
        report(&mut h, "paused", "Song", T0 + 10).unwrap();
        assert!(last_frame(&h).contains(r#""timestamps":{"start":1714600010000}"#), "{}", last_frame(&h));
        let mut h = ready();
        h.config.insert("pausemode".into(), "hide".into());
        report(&mut h, "paused", "Song", T0 + 10).unwrap();
        assert!(last_frame(&h).contains(r#""activities":[]"#));
        let mut h = ready();
        h.config.insert("pausemode".into(), "hideafter".into());
        h.config.insert("pauseminutes".into(), "2".into());
        report(&mut h, "paused", "Song", T0 + 10).unwrap();
        assert!(last_frame(&h).contains("Song"));
        fire(&mut h, "fl:1714600130000:");
        assert!(last_frame(&h).contains(r#""activities":[]"#), "hidden after 2 minutes");
    }

    #[test]
    fn a_stop_from_another_player_leaves_the_presence() {
        let mut h = ready();
        let other = br#"{"username":"alice","track":{"id":"t-Song","title":"Song"},"state":"stopped","playerId":"p2","timestamp":1714600010}"#;
        playback_report(&mut h, other).unwrap();
        assert!(store::want("alice").get(&mut h).is_some() && !h.timers.keys().any(|k| k.starts_with("fl:")));
        report(&mut h, "stopped", "Song", T0 + 11).unwrap();
        assert!(store::want("alice").get(&mut h).is_none(), "its own player's stop clears");
    }

    #[test]
    fn a_pause_at_the_tracks_end_is_its_end_not_a_paused_presence() {
        let mut h = ready();
        let n = presences(&h).len();
        // The web UI at a track's end: paused and stopped at the duration, then the next.
        report_from(&mut h, "p1", "paused", "Song", T0 + 180, 179_600).unwrap();
        report_from(&mut h, "p1", "stopped", "Song", T0 + 180, 179_600).unwrap();
        report_from(&mut h, "p1", "starting", "Next", T0 + 180, 0).unwrap();
        h.clock += 5_000;
        flush_all(&mut h);
        let sent = presences(&h)[n..].to_vec();
        // No clear, and no paused presence (a paused one has no end time).
        assert!(sent.iter().all(|f| f.contains(r#""end":"#)), "{sent:?}");
        assert!(last_frame(&h).contains(r#""details":"Next""#), "{}", last_frame(&h));
    }

    #[test]
    fn with_two_players_the_newest_track_is_shown_and_comes_back_after_a_stop() {
        let mut h = ready();
        report_from(&mut h, "p2", "starting", "Other", T0 + 20, 0).unwrap();
        assert!(last_frame(&h).contains(r#""details":"Other""#));
        // The first player's periodic progress: nothing changes.
        let n = presences(&h).len();
        report_from(&mut h, "p1", "playing", "Song", T0 + 60, 70_000).unwrap();
        assert_eq!(store::want("alice").get(&mut h).unwrap().player, "p2");
        // The shown player stops: the first player's track is shown again, no clear.
        report_from(&mut h, "p2", "stopped", "Other", T0 + 70, 50_000).unwrap();
        let w = store::want("alice").get(&mut h).unwrap();
        assert_eq!((w.player.as_str(), w.title.as_str()), ("p1", "Song"));
        h.clock += 10_000;
        flush_all(&mut h);
        assert!(presences(&h)[n..].iter().all(|f| !f.contains(r#""activities":[]"#)), "{:?}", &presences(&h)[n..]);
        assert!(last_frame(&h).contains(r#""details":"Song""#), "{}", last_frame(&h));
    }

    #[test]
    fn a_now_playing_clear_is_due_within_a_day() {
        for (duration, pos, secs) in [("99999999999", 0, 86_400), ("180", 200, 5), ("86400", 0, 86_400), ("86394", 0, 86_399)] {
            let mut h = fake();
            now_playing(&mut h, format!(r#"{{"username":"alice","track":{{"id":"t","title":"T","duration":{duration}}},"position":{pos}}}"#).as_bytes()).unwrap();
            assert_eq!(h.timers["ne:1:alice"].0, secs, "{duration} {pos}");
        }
    }

    #[test]
    fn old_hosts_use_now_playing_without_timestamps() {
        let mut h = fake();
        let np = |h: &mut Fake, title: &str, pos: i64| now_playing(h, format!(r#"{{"username":"alice","track":{{"id":"{title}","title":"{title}","artist":"A","album":"B","duration":180}},"position":{pos}}}"#).as_bytes());
        np(&mut h, "Old", 30).unwrap();
        assert!(h.connects.is_empty(), "waits for a playback report that may follow");
        fire(&mut h, "np:1:");
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        text(&mut h, r#"{"op":0,"t":"READY","s":1,"d":{"session_id":"s1"}}"#);
        assert!(last_frame(&h).contains(r#""details":"Old""#) && !last_frame(&h).contains("timestamps"), "{}", last_frame(&h));
        assert!(h.timers.contains_key("ne:1:alice"), "{:?}", h.timers);
        assert_eq!(h.timers["ne:1:alice"].0, 155, "150 s left + 5 s");
        // Replaced by the next track: the old clear does nothing.
        np(&mut h, "Next", 0).unwrap();
        fire(&mut h, "np:2:");
        fire(&mut h, "ne:1:");
        assert!(store::want("alice").get(&mut h).is_some_and(|w| w.title == "Next"));
        fire(&mut h, "ne:2:");
        assert!(store::want("alice").get(&mut h).is_none());
        // A host that sends playback reports: now-playing is redundant.
        let mut h = ready();
        let n = h.frames.len();
        np(&mut h, "Dup", 0).unwrap();
        assert_eq!(h.frames.len(), n);
        assert!(store::want("alice").get(&mut h).is_some_and(|w| w.title == "Song"));
        // Both at once on a newer host's first event: only the report acts.
        let mut h = fake();
        np(&mut h, "Song", 0).unwrap();
        report(&mut h, "playing", "Song", T0).unwrap();
        fire(&mut h, "np:1:");
        assert_eq!(h.connects.len(), 1);
        assert_eq!(store::want("alice").get(&mut h).map(|w| w.legacy), Some(0));
    }

    #[test]
    fn a_skip_then_a_stop_clears_only_after_the_last_stop() {
        let mut h = ready();
        report(&mut h, "stopped", "Song", T0 + 100).unwrap();
        report(&mut h, "playing", "Next", T0 + 100).unwrap();
        report(&mut h, "stopped", "Next", T0 + 102).unwrap();
        let n = h.frames.len();
        fire(&mut h, "fl:1714600105000:");
        assert_eq!(h.frames.len(), n, "the skip's timer does not clear 3 s after the stop");
        fire(&mut h, "fl:1714600107000:");
        assert!(last_frame(&h).contains(r#""activities":[]"#));
    }

    #[test]
    fn presence_carries_registered_art() {
        let mut h = fake();
        h.route("https://discord.com/api/v9/applications/", 200, "", r#"[{"url":"https://nd.example.org/share/img/t-Song?size=300","external_asset_path":"external/art"}]"#);
        report(&mut h, "playing", "Song", T0).unwrap();
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        text(&mut h, r#"{"op":0,"t":"READY","s":1,"d":{"session_id":"s1"}}"#);
        // The art is registered by a timer of its own (not READY's call), which sends the
        // new track's first update: one update, with the art.
        assert!(last_frame(&h).contains(r#""assets":{"large_image":"mp:external/art","large_text":"Album"}"#), "{}", last_frame(&h));
        assert_eq!(presences(&h).len(), 1);
        let auth = h.requests.iter().filter(|r| r.1.contains("external-assets")).count();
        assert_eq!(auth, 1);
        assert!(h.logs.iter().all(|(_, l)| !l.contains(TOKEN)));
    }

    #[test]
    fn a_new_session_shows_the_presence_again_even_when_deferred() {
        let mut h = ready();
        text(&mut h, r#"{"op":9,"d":false}"#);
        fire(&mut h, "rc:");
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        text(&mut h, r#"{"op":0,"t":"READY","s":1,"d":{"session_id":"s2"}}"#);
        assert!(last_frame(&h).contains(r#""details":"Song""#), "{}", last_frame(&h));
        // Had it been deferred, the deferred send still knows the session is new.
        let mut h = ready();
        report(&mut h, "playing", "Next", T0 + 1).unwrap();
        text(&mut h, r#"{"op":9,"d":false}"#);
        fire(&mut h, "rc:");
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        text(&mut h, r#"{"op":0,"t":"READY","s":1,"d":{"session_id":"s2"}}"#);
        assert!(last_frame(&h).contains(r#""details":"Next""#), "{}", last_frame(&h));
        fire(&mut h, "fl:");
        assert_eq!(h.frames.iter().filter(|(c, f)| c == "2:alice" && f.starts_with(r#"{"op":3"#)).count(), 1);
    }

    #[test]
    fn a_new_session_keeps_the_rate_limit_in_real_time() {
        // The first update on a new session goes out from a gateway callback, a minute
        // after the last report: it counts at the clock's time, not at the report's.
        let mut h = ready();
        h.clock = (T0 + 60) * 1000;
        text(&mut h, r#"{"op":9,"d":false}"#);
        fire(&mut h, "rc:");
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        text(&mut h, r#"{"op":0,"t":"READY","s":1,"d":{"session_id":"s2"}}"#);
        let mut sent = vec![h.clock];
        for t in (T0 + 62..T0 + 100).step_by(2) {
            report(&mut h, "playing", &format!("T{t}"), t).unwrap();
            while let Some(id) = h.due.iter().filter(|(id, &at)| id.starts_with("fl:") && at <= (t + 2) * 1000).map(|(id, _)| id.clone()).next() {
                fire(&mut h, &id);
            }
            let n = h.frames.iter().filter(|(c, f)| c == "2:alice" && f.starts_with(r#"{"op":3"#)).count();
            sent.resize(n, h.clock);
        }
        assert!(sent.len() >= 8, "{sent:?}");
        for w in sent.windows(6) {
            assert!(w[5] - w[0] >= 20_000, "6 updates within 20 s: {sent:?}");
        }
    }

    fn presences(h: &Fake) -> Vec<&str> {
        h.frames.iter().filter(|(_, f)| f.starts_with(r#"{"op":3"#)).map(|(_, f)| f.as_str()).collect()
    }

    /// Another instance holds connection 1's send lock (as its schedule id).
    fn hold_lock(h: &mut Fake) {
        h.timers.insert("sl:1:alice".into(), (10, false));
        h.due.insert("sl:1:alice".into(), h.clock + 10_000);
    }

    #[test]
    fn a_send_that_finds_the_lock_taken_waits_for_it() {
        let mut h = ready();
        assert!(!h.timers.contains_key("sl:1:alice"), "the lock is released after a send");
        let before = presences(&h).len();
        hold_lock(&mut h);
        report(&mut h, "playing", "Next", T0 + 30).unwrap();
        assert_eq!(presences(&h).len(), before, "nothing sent while another instance sends");
        let retry = format!("fl:{}:alice", (T0 + 31) * 1000);
        assert!(h.timers.contains_key(&retry), "{:?}", h.timers);
        h.remove_timer("sl:1:alice");
        fire(&mut h, "fl:");
        assert!(presences(&h).last().unwrap().contains("Next"));
    }

    fn beats(h: &Fake) -> usize {
        h.frames.iter().filter(|(_, f)| f.starts_with(r#"{"op":1,"#)).count()
    }

    /// A session past its first (acknowledged) beat whose next beat fell due while
    /// another instance held the send lock.
    fn beat_while_locked() -> Fake {
        let mut h = ready();
        fire(&mut h, "b1:");
        text(&mut h, r#"{"op":11}"#);
        hold_lock(&mut h);
        fire(&mut h, "hb:");
        assert_eq!(beats(&h), 1, "no beat while the lock is held");
        h
    }

    #[test]
    fn a_heartbeat_that_finds_the_lock_taken_is_retried_not_lost() {
        let mut h = beat_while_locked();
        fire(&mut h, "r1:1:");
        fire(&mut h, "r2:1:");
        h.remove_timer("sl:1:alice");
        fire(&mut h, "r3:1:");
        assert_eq!(beats(&h), 2, "the third retry sends");
        assert!(h.timers.contains_key("hb:1:alice"));
        // A lock that stays taken: three retries, then one warning.
        text(&mut h, r#"{"op":11}"#);
        hold_lock(&mut h);
        fire(&mut h, "hb:");
        for k in ["r1:1:", "r2:1:", "r3:1:"] {
            fire(&mut h, k);
        }
        assert!(h.logs.iter().any(|(l, m)| *l == Level::Warn && m.contains("heartbeat skipped")), "bounded: three retries");
    }

    #[test]
    fn a_heartbeat_left_for_the_lock_holder_goes_out_when_it_releases() {
        let mut h = beat_while_locked();
        // The holder (here: the next presence update, once the lock is free) sends it.
        h.remove_timer("sl:1:alice");
        let t = h.clock / 1000 + 1;
        report(&mut h, "playing", "Next", t).unwrap();
        assert_eq!(beats(&h), 2, "the beat went out as the presence update released the lock");
        assert!(h.frames.last().unwrap().1.starts_with(r#"{"op":1,"#));
        // Once sent, nothing more is left for the next holder.
        text(&mut h, r#"{"op":11}"#);
        let before = beats(&h);
        report(&mut h, "playing", "Third", t + 10).unwrap();
        assert_eq!(beats(&h), before, "no second beat for the same request");
    }

    #[test]
    fn a_lock_whose_holder_died_repairs_the_presence() {
        let mut h = ready();
        // The holder stored the want and died before sending.
        hold_lock(&mut h);
        report(&mut h, "playing", "Next", T0 + 30).unwrap();
        h.remove_timer(&format!("fl:{}:alice", (T0 + 31) * 1000));
        fire(&mut h, "sl:1:");
        assert!(presences(&h).last().unwrap().contains("Next"));
        assert!(h.logs.iter().any(|(_, m)| m.contains("did not finish")));
    }

    #[test]
    fn only_the_reconnect_timer_dials_and_only_once_per_generation() {
        let mut h = fake();
        // A report and a legacy now-playing both want a connection: one timer, one dial.
        let input = format!(r#"{{"username":"alice","track":{{"id":"t","title":"Song","duration":180}},"state":"playing","positionMs":0,"playbackRate":1,"playerId":"p1","timestamp":{T0}}}"#);
        h.clock = T0 * 1000;
        playback_report(&mut h, input.as_bytes()).unwrap();
        playback_report(&mut h, input.as_bytes()).unwrap();
        assert_eq!(h.timers.keys().filter(|k| k.starts_with("rc:0:")).count(), 1);
        assert!(h.connects.is_empty());
        settle(&mut h);
        assert_eq!(h.connects.len(), 1);
        // A stale reconnect timer of generation 0 finds the link moved on.
        on_timer(&mut h, br#"{"scheduleId":"rc:0:alice","payload":"","isRecurring":false}"#).unwrap();
        assert_eq!(h.connects.len(), 1);
    }

    #[test]
    fn callbacks_of_an_old_connection_leave_the_new_one_alone() {
        let mut h = ready();
        text(&mut h, r#"{"op":7}"#);
        fire(&mut h, "rc:1:");
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        let record = h.cache.get("cn.2.alice").cloned();
        let old = |f: &str| format!(r#"{{"connectionId":"1:alice","message":"{}"}}"#, f.replace('"', "\\\""));
        on_text(&mut h, old(r#"{"op":0,"t":"X","s":99,"d":{}}"#).into_bytes()).unwrap();
        on_error(&mut h, br#"{"connectionId":"1:alice","error":"websocket: close 1006"}"#).unwrap();
        assert_eq!(h.cache.get("cn.2.alice").cloned(), record);
        assert_eq!(h.cache.get("cn.1.alice").map(|c| c.split(' ').nth(1) == Some("99")), Some(false));
        assert!(!h.timers.contains_key("rc:1:alice") && !h.timers.contains_key("rc:2:alice"));
    }

    #[test]
    fn the_rate_window_carries_over_to_the_next_connection() {
        let mut h = ready();
        for i in 1..=4 {
            report(&mut h, "playing", &format!("T{i}"), T0 + 4 * i).unwrap();
        }
        assert_eq!(presences(&h).len(), 5);
        // Discord moves the session: the resumed connection shows the track again, but not
        // before the window of the first connection allows a sixth update.
        text(&mut h, r#"{"op":7}"#);
        fire(&mut h, "rc:1:");
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        text(&mut h, r#"{"op":0,"t":"RESUMED","s":2,"d":{}}"#);
        assert_eq!(presences(&h).len(), 5, "a sixth update within 20 s");
        fire(&mut h, "fl:");
        assert_eq!(presences(&h).len(), 6);
        assert!(h.clock >= T0 * 1000 + 21_000, "{}", h.clock);
        assert!(h.frames.last().unwrap().0 == "2:alice" && presences(&h)[5].contains("T4"));
    }

    #[test]
    fn a_drop_during_a_skip_resumes_the_session() {
        // The web UI's skip: `stopped`, then the next track's `starting`. The socket drops
        // in between and the reconnect timer finds nothing to show: it rests, and the next
        // track resumes the session instead of identifying.
        let mut h = ready();
        report(&mut h, "stopped", "Song", T0 + 10).unwrap();
        on_error(&mut h, br#"{"connectionId":"1:alice","error":"websocket: close 1006 (abnormal closure): unexpected EOF"}"#).unwrap();
        h.open.remove("1:alice");
        fire(&mut h, "rc:1:");
        assert_eq!(h.connects.len(), 1, "nothing to show: no new socket");
        report(&mut h, "starting", "Next", T0 + 12).unwrap();
        assert_eq!(h.connects[1], ("wss://r.discord.gg/?v=10&encoding=json".into(), "2:alice".into()));
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        assert_eq!(last_frame(&h), r#"{"op":6,"d":{"token":"tok-SECRET","session_id":"s1","seq":1}}"#);
    }

    #[test]
    fn unknown_states_and_timers_are_ignored() {
        let mut h = ready();
        let (frames, timers) = (h.frames.len(), h.timers.clone());
        report(&mut h, "rewinding", "Song", T0 + 10).unwrap();
        assert_eq!(on_timer(&mut h, br#"{"scheduleId":"someone-else","payload":"heartbeat","isRecurring":true}"#), Ok(None));
        assert_eq!((h.frames.len(), &h.timers), (frames, &timers));
        assert!(h.logs.iter().any(|(l, m)| *l == Level::Warn && m.contains("unknown timer")));
    }

    #[test]
    fn bad_token_stops_the_user() {
        let mut h = ready();
        let conn = h.connects[0].1.clone();
        on_error(&mut h, format!(r#"{{"connectionId":"{conn}","error":"websocket: close 4004: Authentication failed."}}"#).as_bytes()).unwrap();
        assert!(h.logs.iter().any(|(l, m)| *l == Level::Error && m.starts_with("alice: Discord rejected the token") && m.ends_with("settings (code 4004)")), "{:?}", h.logs);
        // Still configured, so still authorized (spec: `users` decides); its events do nothing.
        assert_eq!(is_authorized(&mut h, br#"{"username":"alice"}"#), Ok(Some(b"true".to_vec())));
        let frames = h.frames.len();
        report(&mut h, "playing", "Other", T0 + 5).unwrap();
        assert_eq!(h.frames.len(), frames);
        assert_eq!(h.connects.len(), 1, "no reconnect after 4004");
        assert!(!h.timers.keys().any(|k| k.starts_with("rc:") || k.starts_with("hb:")));
    }

    #[test]
    fn dropped_connection_resumes_after_backoff() {
        let mut h = ready();
        on_error(&mut h, br#"{"connectionId":"1:alice","error":"websocket: close 1006 (abnormal closure): unexpected EOF"}"#).unwrap();
        h.open.remove("1:alice");
        fire(&mut h, "rc:1:");
        assert_eq!(h.connects[1], ("wss://r.discord.gg/?v=10&encoding=json".into(), "2:alice".into()));
        text(&mut h, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
        assert_eq!(last_frame(&h), r#"{"op":6,"d":{"token":"tok-SECRET","session_id":"s1","seq":1}}"#);
        // Callbacks of the dead socket are stale now.
        on_error(&mut h, br#"{"connectionId":"1:alice","error":"websocket: close 1006"}"#).unwrap();
        assert_eq!(phase(&mut h), Some(Phase::Resuming));
    }

    #[test]
    fn own_close_is_ignored_and_dial_failure_backs_off() {
        let mut h = ready();
        on_close(&mut h, br#"{"connectionId":"1:alice","code":4000,"reason":"nd:reconnect"}"#).unwrap();
        assert_eq!(phase(&mut h), Some(Phase::Ready));
        let mut h = fake();
        h.refuse_dial = true;
        report(&mut h, "playing", "Song", T0).unwrap();
        assert_eq!(phase(&mut h), None);
        assert!(h.timers.keys().any(|k| k.starts_with("rc:1:")), "{:?}", h.timers);
    }

    #[test]
    fn bad_input_is_an_error_and_changes_nothing() {
        let mut h = ready();
        let before = h.cache.clone();
        for f in [is_authorized, playback_report, on_error, on_close, on_timer] {
            assert!(f(&mut h, b"{not json").is_err());
        }
        assert!(on_text(&mut h, b"[]".to_vec()).is_err());
        text(&mut h, "not a frame");
        assert_eq!(h.cache, before);
        let e = report(&mut h, "playing", "x", T0).map(|_| ());
        assert_eq!(e, Ok(()));
        h.config.insert("users".into(), "{broken".into());
        let e = report(&mut h, "playing", "x", T0).unwrap_err();
        assert!(e.contains("users") && !e.contains(TOKEN), "{e}");
        h.config.insert("users".into(), "[]".into());
        assert!(report(&mut h, "playing", "x", T0).unwrap_err().contains("scrobbler(not_authorized)"));
    }

    /// The ids only a lookup uses are stored with the want only while that lookup is on:
    /// every report writes the want and reads the previous one (off by default).
    #[test]
    fn want_keeps_lookup_ids_only_for_lookups_that_are_on() {
        let input = br#"{"username":"alice","track":{"id":"t1","title":"Song","album":"Album","artist":"Artist","artists":[{"name":"First"}],"duration":180,"mbzAlbumId":"alb-mbid","mbzReleaseGroupId":"grp-mbid","mbzRecordingId":"rec-mbid"},"state":"playing","positionMs":0,"playbackRate":1,"playerId":"p1","playerName":"NavidromeUI","timestamp":1714600000}"#;
        let stored = |settings: &[(&str, &str)]| {
            let mut h = fake();
            for (k, v) in settings {
                h.config.insert((*k).into(), (*v).into());
            }
            h.clock = T0 * 1000;
            playback_report(&mut h, input).unwrap();
            let w = store::want("alice").get(&mut h).unwrap();
            (w.album_mbid, w.group_mbid, w.recording_mbid, w.artist0, w.title)
        };
        let none = (String::new(), String::new(), String::new(), String::new(), "Song".into());
        assert_eq!(stored(&[]), none);
        assert_eq!(stored(&[("caaenabled", "true")]), ("alb-mbid".into(), "grp-mbid".into(), String::new(), String::new(), "Song".into()));
        assert_eq!(stored(&[("spotifylinks", "true")]), (String::new(), String::new(), "rec-mbid".into(), "First".into(), "Song".into()));
    }
}
