//! The driver: one function per export. Each loads the user's records from the cache,
//! feeds one event to the gateway machine, saves the result *before* acting on it (a
//! Hello can arrive on another instance as soon as the socket opens), then performs the
//! actions through the host.

use crate::config::{self, Pause, Settings, User};
use crate::enrich;
use crate::gateway::{Action, Ctx, Event, Frame, Fresh, Level, Phase, Session, Timer, STATUSES};
use crate::host::{self, Host};
use crate::input::{self, Report};
use crate::presence::{self, Fnv, Plan, Want};
use crate::state::{self, Sent};
use alloc::string::String;
use alloc::vec::Vec;

/// Our own closes carry this reason so the `on_close` they trigger is ignored (Navidrome
/// calls it synchronously inside `websocket_closeconnection`, ABI §4.4).
const OWN_CLOSE: &str = "nd:reconnect";
/// Navidrome's web UI sends `stopped` before every track change (spec §4.2): the clear
/// waits this long for the next track.
const STOP_GRACE_MS: i64 = 5_000;
const DAY: i64 = 86_400;

pub type Result = core::result::Result<Option<Vec<u8>>, String>;

/// Marks a host that sends playback reports (Navidrome ≥ 0.62): its now-playing calls
/// are then redundant.
const REPORTS_SEEN: &str = "host.reports";
const LEGACY_WAIT_S: u32 = 2;
/// The time of the user's last `stopped` (ms): the clear waits `STOP_GRACE_MS` after it.
const STOPPED: &str = "stopped";

pub fn reports_seen(h: &mut impl Host) -> bool {
    host::cache_get(h, REPORTS_SEEN).is_some()
}

fn user(h: &mut impl Host, name: &str) -> core::result::Result<Option<User>, String> {
    Ok(User::load(|k| h.config(k), name)?)
}

fn settings<'u>(h: &mut impl Host, u: &'u User) -> core::result::Result<&'u Settings, String> {
    Ok(u.settings(|k| h.config(k))?)
}

fn log(h: &mut impl Host, level: Level, u: &str, msg: &str) {
    let mut line = String::from(u);
    line.push_str(": ");
    line.push_str(msg);
    h.log(level, &line);
}

fn bad_input(what: &str) -> String {
    let mut e = String::from("malformed ");
    e.push_str(what);
    e.push_str(" payload");
    e
}

pub fn is_authorized(h: &mut impl Host, input: &[u8]) -> Result {
    let (v, _) = input::fields(input, &["username"]).ok_or_else(|| bad_input("is_authorized"))?;
    // A user whose token Discord refused (close 4004) is not authorized until the config
    // changes (which reloads the plugin and empties the cache).
    let users = h.config("users").unwrap_or_default();
    let ok = match config::token_for(&users, &v[0]) {
        Ok(Some(_)) => !matches!(load_session(h, &v[0]), Ok(s) if s.phase == Phase::Fatal),
        Ok(None) => false,
        Err(e) => {
            h.log(Level::Error, &e);
            false
        }
    };
    Ok(Some(if ok { b"true".to_vec() } else { b"false".to_vec() }))
}

/// The configured user a scrobbler event is for, with a usable application id.
fn reporting_user(h: &mut impl Host, input: &[u8], what: &str) -> core::result::Result<(Report, User), String> {
    let rep = input::report(input).ok_or_else(|| bad_input(what))?;
    let Some(u) = user(h, &rep.username)? else {
        return Err(["scrobbler(not_authorized): user '", &rep.username, "' has no Discord token configured"].concat());
    };
    if !config::valid_client_id(&u.client_id) {
        return Err("config `clientid` must be the Discord application id (17-20 digits)".into());
    }
    Ok((rep, u))
}

fn want_of(rep: Report) -> Want {
    let t = rep.track;
    Want {
        paused: rep.state == "paused",
        title: t.title,
        artist: t.artist,
        album: t.album,
        album_artist: t.album_artist,
        track_id: t.id,
        artist0: t.artist0,
        album_mbid: t.album_mbid,
        group_mbid: t.group_mbid,
        recording_mbid: t.recording_mbid,
        player: rep.player_id,
        ..Want::default()
    }
}

fn set_want(h: &mut impl Host, u: &User, w: &Want, now: i64) -> core::result::Result<(), String> {
    host::cache_set(h, &state::key("want", &u.name), DAY, &|o| w.save(o))?;
    drive(h, u, Event::Want, now)
}

pub fn playback_report(h: &mut impl Host, input: &[u8]) -> Result {
    let (rep, u) = reporting_user(h, input, "playback_report")?;
    let _ = host::cache_put(h, REPORTS_SEEN, DAY, "1");
    let set = settings(h, &u)?;
    if set.ignores(&rep.player_name, &rep.player_id) {
        log(h, Level::Debug, &u.name, "ignoring a player on the ignore list");
        return Ok(None);
    }
    // The report's time (whole seconds) places the track (v2's math); the clock, which is
    // never earlier, times what is sent.
    let at = rep.timestamp.saturating_mul(1000);
    let now = at.max(h.now_ms());
    let hide = rep.state == "paused" && set.pause == Pause::Hide;
    match rep.state.as_str() {
        "playing" | "starting" | "paused" if !hide => {
            let (pos, rate, dur) = (rep.position_ms, rep.rate_milli, rep.track.duration_s);
            let mut w = want_of(rep);
            w.timing(at, pos, rate, dur);
            set_want(h, &u, &w, now)?;
            if let (true, Pause::HideAfter(ms)) = (w.paused, set.pause) {
                schedule_flush(h, &u, now, now + ms);
            }
        }
        // Another player's presence is showing: this player's stop is not about it (spec
        // §6.3, v2 weakness W12).
        "stopped" | "expired" if load_want(h, &u.name).is_some_and(|w| w.player != rep.player_id) => {}
        "stopped" | "expired" | "paused" => {
            host::cache_remove(h, &state::key("want", &u.name))?;
            let stop_key = state::key(STOPPED, &u.name);
            if rep.state == "stopped" {
                host::cache_put(h, &stop_key, DAY, &state::num(now))?;
                schedule_flush(h, &u, now, now + STOP_GRACE_MS);
            } else {
                host::cache_remove(h, &stop_key)?;
                flush(h, &u, now, Fresh::No, None)?;
            }
        }
        _ => log(h, Level::Debug, &u.name, "ignoring an unknown playback state"),
    }
    Ok(None)
}

/// Navidrome 0.60–0.61 send only now-playing (no state, no time): show the track without
/// timestamps and clear it 5 s after its end unless another one replaced it. Newer hosts
/// call now-playing *and*, at the same moment from another worker, playback-report; so a
/// now-playing only takes effect after `LEGACY_WAIT_S`, if no report was seen meanwhile
/// (acting at once raced the report into two connections on one id).
pub fn now_playing(h: &mut impl Host, input: &[u8]) -> Result {
    if reports_seen(h) {
        return Ok(None);
    }
    let (rep, u) = reporting_user(h, input, "now_playing")?;
    let remaining = (rep.track.duration_s - rep.position_ms / 1000).clamp(0, 86_400) + 5;
    let mut w = want_of(rep);
    let key = state::key("legacy", &u.name);
    w.legacy = host::cache_get(h, &key).and_then(|t| Want::load(&t)).map_or(0, |old| old.legacy) + 1;
    host::cache_set(h, &key, DAY, &|o| w.save(o))?;
    schedule(h, &u.name, LEGACY_WAIT_S as i64, &timer_id("np", w.legacy, &u.name));
    schedule(h, &u.name, remaining, &timer_id("ne", w.legacy, &u.name));
    Ok(None)
}

pub fn on_text(h: &mut impl Host, input: Vec<u8>) -> Result {
    let (id, frame) = input::text_message(input).ok_or_else(|| bad_input("websocket text"))?;
    on_connection(h, &id, Event::Frame(&frame)).map(|_| None)
}

pub fn on_error(h: &mut impl Host, input: &[u8]) -> Result {
    let (v, _) = input::fields(input, &["connectionId", "error"]).ok_or_else(|| bad_input("websocket error"))?;
    on_connection(h, &v[0], Event::Closed(input::close_code(&v[1]))).map(|_| None)
}

pub fn on_close(h: &mut impl Host, input: &[u8]) -> Result {
    let (v, code) = input::fields(input, &["connectionId", "reason"]).ok_or_else(|| bad_input("websocket close"))?;
    if v[1] == OWN_CLOSE {
        return Ok(None);
    }
    on_connection(h, &v[0], Event::Closed(code as u16)).map(|_| None)
}

/// Feeds an event of connection `<gen>:<user>` to the user's session if it is their
/// current connection: callbacks of an older socket are stale.
fn on_connection(h: &mut impl Host, id: &str, ev: Event) -> core::result::Result<(), String> {
    let Some((gen, name)) = split_id(id) else {
        h.log(Level::Warn, "callback for an unknown connection");
        return Ok(());
    };
    let Ok(Some(u)) = user(h, name) else {
        log(h, Level::Warn, name, "callback for a user no longer configured");
        return Ok(());
    };
    let s = load_session(h, name)?;
    if s.gen as i64 != gen {
        log(h, Level::Debug, name, "ignoring a callback from an old connection");
        return Ok(());
    }
    let now = h.now_ms();
    drive_with(h, &u, s, ev, now)
}

/// `<number>:<rest>`.
fn split_id(id: &str) -> Option<(i64, &str)> {
    let (n, rest) = id.split_once(':')?;
    Some((state::int(n)?, rest))
}

/// Timer ids: `<kind>:<gen or due time>:<user>`, kinds `b1` first heartbeat, `hb`
/// heartbeat, `rc` reconnect (with the generation); `fl` presence flush, `ic` idle close
/// (with the due time in ms, which is also the time when they run).
pub fn on_timer(h: &mut impl Host, input: &[u8]) -> Result {
    let (v, _) = input::fields(input, &["scheduleId"]).ok_or_else(|| bad_input("scheduler callback"))?;
    let id = &v[0];
    // Not one of ours (as the official plugin, an unknown timer is only a warning).
    let Some((kind, (num, name))) = id.split_once(':').and_then(|(k, rest)| Some((k, split_id(rest)?))) else {
        h.log(Level::Warn, "ignoring an unknown timer");
        return Ok(None);
    };
    let u = match user(h, name)? {
        Some(u) => u,
        None => return Ok(None),
    };
    let now = h.now_ms();
    match kind {
        // A flush runs at its due time at the earliest.
        "fl" => return flush(h, &u, num.max(now), Fresh::No, None).map(|_| None),
        "ic" => return idle(h, &u, num).map(|_| None),
        "np" => {
            let w = host::cache_get(h, &state::key("legacy", name)).and_then(|t| Want::load(&t));
            match w {
                Some(w) if w.legacy == num && !reports_seen(h) => set_want(h, &u, &w, now)?,
                _ => {}
            }
            return Ok(None);
        }
        "ne" => {
            if load_want(h, name).is_some_and(|w| w.legacy == num) {
                host::cache_remove(h, &state::key("want", name))?;
                flush(h, &u, now, Fresh::No, None)?;
            }
            return Ok(None);
        }
        _ => {}
    }
    let s = load_session(h, name)?;
    let ev = match kind {
        "b1" | "hb" if s.gen as i64 == num => {
            let pending = host::cache_get(h, &state::key("ack", name)).is_some_and(|v| v == "1");
            Event::Beat { first: kind == "b1", ack_pending: pending }
        }
        "rc" if s.gen as i64 == num => Event::Reconnect,
        "hb" => {
            // A recurring beat of an old connection: stop it.
            let _ = host::cancel(h, id);
            return Ok(None);
        }
        _ => return Ok(None),
    };
    drive_with(h, &u, s, ev, now).map(|_| None)
}

/// The user's session; a record that does not parse counts as none, but a cache that
/// cannot be read is an error: nothing is done on state that could not be read.
fn load_session(h: &mut impl Host, name: &str) -> core::result::Result<Session, String> {
    Ok(host::cache_read(h, &state::key("gw", name))?.and_then(|t| state::load_session(&t)).unwrap_or_default())
}

fn load_want(h: &mut impl Host, name: &str) -> Option<Want> {
    host::cache_get(h, &state::key("want", name)).and_then(|t| Want::load(&t))
}

/// Entropy for jitter: wasm32-unknown-unknown has no RNG, so hash what differs per call.
fn seed(name: &str, now: i64, gen: u32) -> u64 {
    let mut f = Fnv::new();
    f.eat(name.as_bytes());
    f.eat(&now.to_le_bytes());
    f.eat(&gen.to_le_bytes());
    f.0 ^ (f.0 >> 29)
}

/// Connection ids: `<gen>:<user>`.
fn conn_id(gen: u32, name: &str) -> String {
    [&state::num(gen as i64), ":", name].concat()
}

fn timer_id(kind: &str, num: i64, name: &str) -> String {
    [kind, ":", &state::num(num), ":", name].concat()
}

fn timer_kind(t: Timer) -> &'static str {
    match t {
        Timer::FirstBeat => "b1",
        Timer::Beat => "hb",
        Timer::Reconnect => "rc",
    }
}

fn drive(h: &mut impl Host, u: &User, ev: Event, now: i64) -> core::result::Result<(), String> {
    let s = load_session(h, &u.name)?;
    drive_with(h, u, s, ev, now)
}

/// Feeds one event to the user's session `s`, saves it if it changed, performs the
/// actions; a failed dial is fed back as a close (code 0). Nothing is done when the new
/// state could not be saved (later callbacks would not recognise the connection).
fn drive_with(h: &mut impl Host, u: &User, mut s: Session, ev: Event, now: i64) -> core::result::Result<(), String> {
    let mut ev = Some(ev);
    while let Some(e) = ev.take() {
        // Whether there is something to show matters only to these events; `Want` is
        // sent right after storing it.
        let want = match e {
            Event::Want => true,
            Event::Closed(_) | Event::Reconnect => load_want(h, &u.name).is_some(),
            _ => false,
        };
        let before = s.clone();
        let ctx = Ctx { want, rand: seed(&u.name, now, s.gen) };
        let actions = s.handle(e, &ctx);
        if s != before {
            host::cache_put(h, &state::key("gw", &u.name), DAY, &state::save_session(&s))?;
        }
        if before.phase != s.phase && s.phase == Phase::Fatal {
            let _ = host::cache_remove(h, &state::key("sent", &u.name));
        }
        for a in actions {
            if let Some(next) = act(h, u, &s, a, now) {
                ev = Some(next);
            }
        }
    }
    Ok(())
}

fn act(h: &mut impl Host, u: &User, s: &Session, a: Action, now: i64) -> Option<Event<'static>> {
    let conn = conn_id(s.gen, &u.name);
    let result = match a {
        Action::Connect(url) => {
            if let Err(e) = host::ws_connect(h, &url, &conn) {
                log(h, Level::Warn, &u.name, &["cannot reach the Discord gateway: ", &e].concat());
                return Some(Event::Closed(0));
            }
            Ok(())
        }
        Action::Send(f) => send_frame(h, &conn, &f, &u.token),
        Action::Close { code, gen } => host::ws_close(h, &conn_id(gen, &u.name), code, OWN_CLOSE),
        Action::Once(t, secs) => host::schedule_once(h, secs, &timer_id(timer_kind(t), s.gen as i64, &u.name)),
        Action::Every(t, secs) => host::schedule_every(h, secs, &timer_id(timer_kind(t), s.gen as i64, &u.name)),
        // Cancelling a timer that already fired or never existed is fine.
        Action::Cancel(t, gen) => host::cancel(h, &timer_id(timer_kind(t), gen as i64, &u.name)).or_else(|e| if host::says(&e, "not found") { Ok(()) } else { Err(e) }),
        Action::Ack(pending) => host::cache_put(h, &state::key("ack", &u.name), DAY, if pending { "1" } else { "0" }),
        // The session as just saved: no need to read it back.
        Action::Flush(fresh) => flush(h, u, now, fresh, Some(s.clone())),
        Action::Log(level, msg, 0) => {
            log(h, level, &u.name, msg);
            Ok(())
        }
        Action::Log(level, msg, code) => {
            log(h, level, &u.name, &[msg, " (code ", &state::num(code as i64), ")"].concat());
            Ok(())
        }
    };
    if let Err(e) = result {
        log(h, Level::Warn, &u.name, &e);
    }
    None
}

fn send_frame(h: &mut impl Host, conn: &str, f: &Frame, token: &str) -> core::result::Result<(), String> {
    host::ws_send(h, conn, &|o| presence::frame(o, f, token))
}

/// A one-time timer in `secs`; one already pending with that id is fine (its callback
/// does the same), any other failure is logged.
fn schedule(h: &mut impl Host, name: &str, secs: i64, id: &str) {
    if let Err(e) = host::schedule_once(h, secs.clamp(0, 86_400) as u32, id) {
        if !host::says(&e, "already exists") {
            log(h, Level::Warn, name, &e);
        }
    }
}

/// Schedules a flush at `at` (ms): a flush sends whatever is wanted when it runs.
fn schedule_flush(h: &mut impl Host, u: &User, now: i64, at: i64) {
    schedule(h, &u.name, ((at - now).clamp(0, 3_600_000) + 999) / 1000, &timer_id("fl", at, &u.name));
}

fn load_sent(h: &mut impl Host, name: &str) -> Sent {
    host::cache_get(h, &state::key("sent", name)).and_then(|t| state::load_sent(&t)).unwrap_or_default()
}

/// Sends the wanted presence (or the clear) if the session is ready, it differs from what
/// is shown, and the rate budget allows; otherwise schedules one deferred flush. `now`: the
/// wall clock, never taken as earlier than the last known time (a host without a WASI
/// clock reads 0).
/// With nothing to show, the session's idle close is scheduled. `s`: the session when the
/// caller already holds it.
fn flush(h: &mut impl Host, u: &User, now: i64, fresh: Fresh, s: Option<Session>) -> core::result::Result<(), String> {
    let s = match s {
        Some(s) => s,
        None => load_session(h, &u.name)?,
    };
    let want = load_want(h, &u.name);
    if s.phase != Phase::Ready {
        if want.is_some() && matches!(s.phase, Phase::Idle | Phase::Waiting) {
            drive_with(h, u, s, Event::Want, now)?;
        }
        return Ok(());
    }
    let mut sent = load_sent(h, &u.name);
    let before = sent.clone();
    match fresh {
        Fresh::Session => sent = Sent::default(),
        Fresh::Resumed => sent.fingerprint = 0,
        Fresh::No => {}
    }
    if sent != before {
        // Stored at once, in case the send below is deferred.
        host::cache_put(h, &state::key("sent", &u.name), DAY, &state::save_sent(&sent))?;
    }
    let known = want.as_ref().map_or(0, |w| w.at_ms).max(sent.times.last().copied().unwrap_or(0));
    let now = now.max(known);
    if want.is_none() {
        // A clear waits for the grace after the *last* stop: an earlier stop's timer (a
        // skip just before) must not clear early.
        let stopped = host::cache_get(h, &state::key(STOPPED, &u.name)).and_then(|t| state::int(&t));
        if stopped.is_some_and(|t| now < t + STOP_GRACE_MS) {
            return Ok(());
        }
    }
    let set = settings(h, u)?;
    let status = STATUSES[set.status.unwrap_or(s.status) as usize];
    let want = want.filter(|w| !w.pause_over(set.pause, now));
    let showing = want.is_some();
    match presence::plan(want, &sent, now, &[&u.client_id, status].concat()) {
        Plan::Nothing => {}
        Plan::Later(at) => schedule_flush(h, u, now, at),
        Plan::Send(w, next) => {
            let act = w.map(|w| {
                let mut a = presence::activity(&w, set);
                enrich::enrich(h, u, set, &w, &mut a, now);
                a
            });
            let conn = conn_id(s.gen, &u.name);
            if let Err(e) = host::ws_send(h, &conn, &|o| presence::presence(o, act.as_ref(), &u.client_id, status)) {
                // The socket is gone without a callback having said so: reconnect.
                log(h, Level::Warn, &u.name, &e);
                return if host::says(&e, "not found") { drive_with(h, u, s, Event::Closed(1006), now) } else { Err(e) };
            }
            host::cache_put(h, &state::key("sent", &u.name), DAY, &state::save_sent(&next))?;
        }
    }
    let idle_ms = set.idle_ms;
    if !showing && idle_ms > 0 {
        schedule(h, &u.name, idle_ms / 1000, &timer_id("ic", now + idle_ms, &u.name));
    }
    Ok(())
}

/// Idle-close timer due at `due`: ends the session if nothing has been shown since the
/// last update for the whole idle time; a newer clear has its own timer.
fn idle(h: &mut impl Host, u: &User, due: i64) -> core::result::Result<(), String> {
    let last = load_sent(h, &u.name).times.last().copied().unwrap_or(0);
    let idle_ms = settings(h, u)?.idle_ms;
    if load_want(h, &u.name).is_none() && last + idle_ms <= due {
        drive(h, u, Event::Idle, due)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use crate::json::Out;

    const TOKEN: &str = "tok-SECRET";
    const T0: i64 = 1_714_600_000;

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.config.insert("clientid".into(), "123456789012345678".into());
        f.config.insert("users".into(), format!(r#"[{{"token":"{TOKEN}","username":"alice"}}]"#));
        f
    }

    /// A playback report made at `ts` (s), which is then the time on the host's clock.
    fn report(h: &mut Fake, state: &str, title: &str, ts: i64) -> Result {
        h.clock = ts * 1000;
        let input = format!(
            r#"{{"username":"alice","track":{{"id":"t-{title}","title":"{title}","album":"Album","artist":"Artist","artists":[],"albumArtists":[],"duration":180}},"state":"{state}","positionMs":10000,"playbackRate":1,"playerId":"p1","playerName":"NavidromeUI","timestamp":{ts}}}"#
        );
        playback_report(h, input.as_bytes())
    }

    fn text(h: &mut Fake, frame: &str) {
        let conn = h.connects.last().unwrap().1.clone();
        let mut o = Out::new();
        o.raw("{").key("connectionId").str(&conn).key("message").str(frame).raw("}");
        on_text(h, o.buf).unwrap();
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
        assert!(load_want(&mut h, "alice").is_some() && !h.timers.keys().any(|k| k.starts_with("fl:")));
        report(&mut h, "stopped", "Song", T0 + 11).unwrap();
        assert!(load_want(&mut h, "alice").is_none(), "its own player's stop clears");
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
        assert!(load_want(&mut h, "alice").is_some_and(|w| w.title == "Next"));
        fire(&mut h, "ne:2:");
        assert!(load_want(&mut h, "alice").is_none());
        // A host that sends playback reports: now-playing is redundant.
        let mut h = ready();
        let n = h.frames.len();
        np(&mut h, "Dup", 0).unwrap();
        assert_eq!(h.frames.len(), n);
        assert!(load_want(&mut h, "alice").is_some_and(|w| w.title == "Song"));
        // Both at once on a newer host's first event: only the report acts.
        let mut h = fake();
        np(&mut h, "Song", 0).unwrap();
        report(&mut h, "playing", "Song", T0).unwrap();
        fire(&mut h, "np:1:");
        assert_eq!(h.connects.len(), 1);
        assert_eq!(load_want(&mut h, "alice").map(|w| w.legacy), Some(0));
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
        assert!(last_frame(&h).contains(r#""assets":{"large_image":"mp:external/art","large_text":"Album"}"#), "{}", last_frame(&h));
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
        assert!(h.logs.iter().any(|(l, m)| *l == Level::Error && m.contains("4004")));
        assert_eq!(is_authorized(&mut h, br#"{"username":"alice"}"#), Ok(Some(b"false".to_vec())));
        report(&mut h, "playing", "Other", T0 + 5).unwrap();
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
        assert_eq!(load_session(&mut h, "alice").unwrap().phase, Phase::Resuming);
    }

    #[test]
    fn own_close_is_ignored_and_dial_failure_backs_off() {
        let mut h = ready();
        on_close(&mut h, br#"{"connectionId":"1:alice","code":4000,"reason":"nd:reconnect"}"#).unwrap();
        assert_eq!(load_session(&mut h, "alice").unwrap().phase, Phase::Ready);
        let mut h = fake();
        h.refuse_dial = true;
        report(&mut h, "playing", "Song", T0).unwrap();
        assert_eq!(load_session(&mut h, "alice").unwrap().phase, Phase::Waiting);
        assert!(h.timers.keys().any(|k| k.starts_with("rc:1:")));
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
}
