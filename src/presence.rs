//! The Listening activity: what to show for a playback report, when a presence update may
//! go out (Discord allows 5 per 20 s, spec §6), and the presence update itself, rendered
//! plain, fitted to Discord's 4096 bytes, then escaped for its place inside
//! `websocket_sendtext`'s `message`.

use crate::config::{Name, Pause, Settings};
use crate::json::Out;
use crate::text::Fnv;
use alloc::string::String;
use alloc::vec::Vec;

/// Presence updates allowed per window (Discord: 5 per 20 s) and the window with a margin.
pub const WINDOW_SENDS: usize = 5;
pub const WINDOW_MS: i64 = 21_000;
/// Updates are also spaced by at least this, so a burst of skips does not spend the whole
/// budget at once and the final track shows within seconds of the last skip (spec §6.3).
pub const MIN_GAP_MS: i64 = 4_000;
/// A start time that moved less than this is the same presence (periodic reports
/// recompute it with one-second resolution).
const SAME_START_MS: i64 = 2_500;
/// Discord text fields hold 2 to 128 characters, URLs at most 256 bytes (spec §3.1).
const MAX_TEXT: usize = 128;
const MAX_URL: usize = 256;
/// Discord closes the socket on a frame over 4096 bytes (spec §1.2).
const MAX_FRAME: usize = 4096;

/// The presence a user should show, from their latest playback report.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Want {
    /// Report time (ms): the plugin's notion of "now" for this presence.
    pub at_ms: i64,
    pub paused: bool,
    pub start_ms: i64,
    /// 0: no end (paused, or unknown duration).
    pub end_ms: i64,
    pub title: String,
    pub artist: String,
    pub album: String,
    pub album_artist: String,
    pub track_id: String,
    /// First of the track's artists (the Spotify lookup uses it, spec §3.8).
    pub artist0: String,
    pub album_mbid: String,
    pub group_mbid: String,
    pub recording_mbid: String,
    /// The player that reported it: a stop from another player leaves it shown.
    pub player: String,
    /// Old hosts (now-playing only) give no time: no timestamps; this numbers the
    /// presence so the clear at the track's end can tell it is still current.
    pub legacy: i64,
}

impl Want {
    /// Timestamps as the official plugin computes them (spec §3.3): elapsed and duration
    /// scaled by the playback rate so Discord's bar runs at wall speed; paused shows the
    /// time since the pause.
    pub fn timing(&mut self, now_ms: i64, position_ms: i64, rate_milli: i64, duration_s: i64) {
        let rate = if rate_milli > 0 { rate_milli } else { 1000 };
        self.at_ms = now_ms;
        if self.paused {
            self.start_ms = now_ms;
            self.end_ms = 0;
        } else {
            self.start_ms = now_ms - crate::text::mul_sat(position_ms, 1000) / rate;
            self.end_ms = self.start_ms + crate::text::mul_sat(duration_s, 1_000_000) / rate;
        }
    }

    fn fingerprint(&self, salt: &str) -> u64 {
        let mut h = Fnv::new();
        for s in &[self.title.as_str(), &self.artist, &self.album, &self.track_id, salt] {
            h.eat(s.as_bytes());
            h.eat(&[0]);
        }
        h.eat(&[self.paused as u8, (self.end_ms - self.start_ms) as u8, ((self.end_ms - self.start_ms) >> 8) as u8]);
        h.0 | 1
    }

    /// Clears the ids of the lookups that are off (spec §3.6, §3.8): every report writes
    /// the want and the next one reads it, so what no lookup reads is not stored.
    pub fn keep_lookups(&mut self, s: &Settings) {
        if !s.caa {
            self.album_mbid.clear();
            self.group_mbid.clear();
        }
        if !s.spotify {
            self.recording_mbid.clear();
            self.artist0.clear();
        }
    }

    /// The text fields, in the order of the cache record's keys (`store.rs`).
    #[inline(never)]
    pub fn texts(&self) -> [&String; 10] {
        let w = self;
        [&w.title, &w.artist, &w.album, &w.album_artist, &w.track_id, &w.artist0, &w.album_mbid, &w.group_mbid, &w.recording_mbid, &w.player]
    }

    /// The template with `{track}`, `{artist}`, `{album}`, `{albumartist}` replaced in one
    /// pass (a placeholder inside a substituted value stays literal; unknown ones stay).
    pub fn fill(&self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some((text, after)) = crate::text::cut(rest, b'{') {
            out.push_str(text);
            // The first four of `texts`, named up to the next `}`.
            static NAMES: [&str; 4] = ["track", "artist", "album", "albumartist"];
            let (next, value) = match crate::text::cut(after, b'}').and_then(|(name, next)| Some((next, crate::json::key_index(name.as_bytes(), &NAMES)?))) {
                Some((next, i)) => (next, self.texts()[i].as_str()),
                None => (after, "{"),
            };
            out.push_str(value);
            rest = next;
        }
        out.push_str(rest);
        out
    }

    /// Whether a paused presence has been shown long enough (pause option "hide after").
    #[inline(never)]
    pub fn pause_over(&self, pause: Pause, now: i64) -> bool {
        matches!(pause, Pause::HideAfter(ms) if self.paused && now >= self.at_ms + ms)
    }
}

/// What one Listening activity shows, resolved when it is sent.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Activity {
    pub name: String,
    /// `status_display_type`: 2 shows the details (track) in the member list, 0 the name.
    pub display: u8,
    pub details: String,
    pub state: String,
    pub large_text: String,
    /// The details' link, which the large image links to as well.
    pub details_url: String,
    pub state_url: String,
    pub large_image: String,
    pub small_image: String,
    pub start: i64,
    pub end: i64,
}

/// Texts and timestamps of the activity for `w` (spec §3.2); images and links are added
/// by `enrich`. An empty name falls back to "Navidrome" (v2 could send an empty one, W16).
#[inline(never)]
pub fn activity(w: &Want, s: &Settings) -> Activity {
    // A field is its placeholder filled in.
    static NAMES: [&str; 4] = ["", "{track}", "{album}", "{artist}"];
    let mut name = w.fill(match s.name {
        Name::Custom => &s.name_template,
        n => NAMES[n as usize],
    });
    let mut display = 0;
    if crate::text::trim(&name).is_empty() {
        name = "Navidrome".into();
        display = 2;
    }
    Activity {
        name,
        display,
        details: w.fill(&s.details),
        state: w.fill(&s.state),
        large_text: w.fill(&s.large_text),
        start: w.start_ms,
        end: w.end_ms,
        ..Activity::default()
    }
}

/// What went out on one connection: a fingerprint of the presence shown (0: nothing or
/// unknown), its start time, the times of the last 5 presence updates (rate budget), and
/// when the last heartbeat was sent.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Sent {
    pub fingerprint: u64,
    pub start_ms: i64,
    pub beat_ms: i64,
    pub times: Vec<i64>,
}

impl Sent {
    /// The time of the last presence update (ms), 0 for none.
    #[inline(never)]
    pub fn last(&self) -> i64 {
        self.times.last().copied().unwrap_or(0)
    }
}

/// What to do with the wanted presence now.
#[derive(PartialEq, Eq, Debug)]
pub enum Plan {
    /// Already shown.
    Nothing,
    /// Send the wanted update (or the clear) and record this.
    Send(Sent),
    /// Over the rate budget: try again at this time (ms).
    Later(i64),
}

/// Decides whether the wanted presence (or a clear) goes out at `now`: identical presences
/// are not resent (`salt` holds whatever else the frame carries), updates are 4 s apart and
/// at most 5 per 20 s; the rest wait for one deferred send of whatever is wanted then, so
/// fast skips coalesce (spec §6.3).
pub fn plan(want: Option<&Want>, sent: &Sent, now: i64, salt: &str) -> Plan {
    let fingerprint = want.map_or(0, |w| w.fingerprint(salt));
    let start = want.map_or(0, |w| w.start_ms);
    if fingerprint == sent.fingerprint && start.abs_diff(sent.start_ms) < SAME_START_MS as u64 {
        return Plan::Nothing;
    }
    // The window keeps the last `WINDOW_SENDS` times, this one included.
    let mut times = Vec::new();
    let mut earliest = i64::MIN;
    let n = sent.times.len();
    for (i, &t) in sent.times.iter().enumerate() {
        // `back`: 1 for the last send; the gap follows it, the window the one
        // `WINDOW_SENDS` sends ago.
        let back = n - i;
        if back == 1 || back == WINDOW_SENDS {
            earliest = earliest.max(t + if back == 1 { MIN_GAP_MS } else { WINDOW_MS });
        }
        if back < WINDOW_SENDS {
            times.push(t);
        }
    }
    if now < earliest {
        return Plan::Later(earliest);
    }
    times.push(now);
    Plan::Send(Sent { fingerprint, start_ms: start, beat_ms: sent.beat_ms, times })
}

/// Navidrome's web UI sends `stopped` before every track change (spec §4.2): the clear
/// waits this long for the next track.
pub const STOP_GRACE_MS: i64 = 5_000;
/// How long a new want's first update waits for its images and links to be looked up.
pub const LOOKUP_WAIT_MS: i64 = 2_000;

/// What an update is decided on, read by the driver beforehand.
pub struct Facts<'a> {
    /// What is to be shown (none: the clear).
    pub want: Option<&'a Want>,
    /// What went out on the connection.
    pub sent: &'a Sent,
    /// When the last stop was reported, if the clear is for one.
    pub stopped: Option<i64>,
    /// A timer is looking up the want's images and links, and sends what it finds.
    pub lookups: bool,
    /// Nothing shown this long closes the connection (0: never).
    pub idle_ms: i64,
    pub now: i64,
    /// Whatever else the frame carries (status, images, links).
    pub salt: &'a str,
}

/// What to do: the plan for the update, and when to close the connection if nothing is
/// shown by then.
#[derive(PartialEq, Eq, Debug)]
pub struct Decision {
    pub plan: Plan,
    pub idle_close_at: Option<i64>,
}

/// Decides an update (no host calls): a clear waits for the grace after the *last* stop
/// (an earlier stop's timer, a skip just before, must not clear early); a new want leaves
/// its first update to its lookups' timer for `LOOKUP_WAIT_MS`, so it carries its cover,
/// not the logo; otherwise `plan`. With nothing shown, the idle close is set.
pub fn decide(f: &Facts) -> Decision {
    let now = f.now;
    let wait = match f.want {
        None => f.stopped.is_some_and(|t| now < t + STOP_GRACE_MS),
        Some(w) => f.lookups && now < w.at_ms + LOOKUP_WAIT_MS,
    };
    if wait {
        return Decision { plan: Plan::Nothing, idle_close_at: None };
    }
    Decision { plan: plan(f.want, f.sent, now, f.salt), idle_close_at: (f.want.is_none() && f.idle_ms > 0).then_some(now + f.idle_ms) }
}

/// A text field within Discord's 2–128 characters, or `max` when fewer (Unicode scalar
/// values, never splitting one): cut with "…" as the official plugin does (spec §3.5), or
/// padded with a zero width space when a single character; a blank text is left out.
fn text_field(o: &mut Out, key: &str, s: &str, max: usize) {
    let max = max.min(MAX_TEXT);
    // ASCII control characters show as nothing and cost 6 bytes each once escaped: they
    // are dropped (no byte of a multi-byte character is one). `cut` is where the text's
    // character number `max` starts, `n` how many characters it has, `blank` whether all
    // are spaces.
    let (mut v, mut n, mut cut, mut blank) = (Vec::new(), 0, 0, true);
    for b in s.bytes().filter(|b| !b.is_ascii_control()) {
        if (b as i8) >= -0x40 {
            n += 1;
            if n == max {
                cut = v.len();
            }
        }
        blank &= b == b' ';
        v.push(b);
    }
    if blank {
        return;
    }
    if n > max {
        v.truncate(cut);
        v.extend_from_slice("…".as_bytes());
    } else if n == 1 {
        v.extend_from_slice("\u{200B}".as_bytes());
    }
    // `s` less some ASCII bytes, cut where a character starts, and whole characters
    // added: UTF-8.
    o.key(key).open().utf8(&v).close();
}

/// A URL field, left out when empty, longer than Discord's 256 bytes (never cut), or when
/// `max` says links are shed.
fn url_field(o: &mut Out, key: &str, url: &str, max: usize) {
    if max > MAX_TEXT && !url.is_empty() && url.len() <= MAX_URL {
        o.key(key).str(url);
    }
}

/// Presence Update (op 3) with the Listening activity, or with none to clear it, written at
/// `o`'s depth. Rendered plain and measured first: over Discord's 4096 bytes (spec §1.2),
/// the links go, then the texts are cut to half as many characters at each try; images
/// that leave no room for an activity leave none (a clear always fits).
pub fn presence(o: &mut Out, act: Option<&Activity>, client_id: &str, status: &str) {
    // Characters a text may keep; above 128, links are kept too.
    let mut max = 2 * MAX_TEXT;
    let mut f = Out::new();
    loop {
        f.buf.clear();
        presence_plain(&mut f, act.filter(|_| max > 0), client_id, status, max);
        if f.buf.len() <= MAX_FRAME || max == 0 {
            // Written from `str`s and numbers: UTF-8.
            o.utf8(&f.buf);
            return;
        }
        max /= 2;
    }
}

/// The op 3 frame at depth 0, texts cut to `max` characters, links only above 128. `since`
/// null and `afk` false: this session is not idle (Discord gateway-events, Update Presence).
/// `status` is one of `gateway::STATUSES`.
fn presence_plain(o: &mut Out, act: Option<&Activity>, client_id: &str, status: &str, max: usize) {
    o.raw(r#"{"op":3,"d":{"since":null,"activities":["#);
    if let Some(a) = act {
        o.raw(r#"{"type":2"#);
        text_field(o, "name", &a.name, max);
        o.raw(r#","status_display_type":"#).int(a.display as i64);
        text_field(o, "details", &a.details, max);
        url_field(o, "details_url", &a.details_url, max);
        text_field(o, "state", &a.state, max);
        url_field(o, "state_url", &a.state_url, max);
        o.raw(r#","application_id":"#).str(client_id);
        if a.start > 0 {
            o.raw(r#","timestamps":{"start":"#).int(a.start);
            if a.end > 0 {
                o.raw(r#","end":"#).int(a.end);
            }
            o.raw("}");
        }
        if !a.large_image.is_empty() {
            o.raw(r#","assets":{"large_image":"#).str(&a.large_image);
            text_field(o, "large_text", &a.large_text, max);
            url_field(o, "large_url", &a.details_url, max);
            if !a.small_image.is_empty() {
                o.raw(r#","small_image":"#).str(&a.small_image).raw(r#","small_text":"Paused""#);
            }
            o.raw("}");
        }
        o.raw("}");
    }
    o.raw(r#"],"status":"#).str(status).raw(r#","afk":false}}"#);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Reader;
    use alloc::vec::Vec;

    fn defaults() -> Settings {
        Settings::load(|_| None).unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> Settings {
        Settings::load(crate::fake::config(pairs)).unwrap()
    }

    #[test]
    fn activity_names_follow_the_official_options() {
        let w = want();
        let name = |pairs: &[(&str, &str)]| {
            let a = activity(&w, &set(pairs));
            (a.name, a.display)
        };
        assert_eq!(name(&[]), ("Navidrome".into(), 2));
        assert_eq!(name(&[("activityname", "Default")]), ("Navidrome".into(), 2));
        assert_eq!(name(&[("activityname", "Track")]), ("Test Song".into(), 0));
        assert_eq!(name(&[("activityname", "Album")]), ("Test Album".into(), 0));
        assert_eq!(name(&[("activityname", "Artist")]), ("Test Artist".into(), 0));
        let custom = |t| name(&[("activityname", "Custom"), ("activitynametemplate", t)]);
        assert_eq!(custom("{artist} - {track} ({album})"), ("Test Artist - Test Song (Test Album)".into(), 0));
        assert_eq!(custom("{track}"), ("Test Song".into(), 0));
        assert_eq!(custom("{artist}"), ("Test Artist".into(), 0));
        assert_eq!(custom("{album}"), ("Test Album".into(), 0));
        assert_eq!(custom("Now Playing"), ("Now Playing".into(), 0));
        assert_eq!(name(&[("activityname", "Custom")]), ("Navidrome".into(), 2));
        let mut empty = w.clone();
        empty.album.clear();
        assert_eq!(activity(&empty, &set(&[("activityname", "Album")])).name, "Navidrome", "never an empty name");
    }

    #[test]
    fn templates_replace_in_one_pass() {
        let mut w = want();
        w.title = "{artist}".into();
        w.album_artist = "VA".into();
        assert_eq!(w.fill("{track}|{albumartist}|{unknown}|{"), "{artist}|VA|{unknown}|{");
        assert_eq!(w.fill("{{track}}{ album}{album"), "{{artist}}{ album}{album");
        let a = activity(&w, &set(&[("detailstemplate", "{track} ♪"), ("statetemplate", "by {artist}"), ("largetexttemplate", "{album} · {albumartist}")]));
        assert_eq!((a.details.as_str(), a.state.as_str(), a.large_text.as_str()), ("{artist} ♪", "by Test Artist", "Test Album · VA"));
    }

    /// What `text_field` writes for `s`, as an object's only field (`None`: left out).
    fn field(s: &str, max: usize) -> Option<String> {
        let mut o = Out::new();
        o.raw("{");
        text_field(&mut o, "k", s, max);
        o.raw("}");
        let mut got = None;
        Reader::new(&o.buf).object(|k, r| {
            assert_eq!(k, b"k");
            got = r.string();
            Some(())
        })?;
        got
    }

    #[test]
    fn short_texts_are_padded_and_pauses_expire() {
        assert_eq!(field("X", MAX_TEXT).as_deref(), Some("X\u{200B}"));
        assert_eq!(field(" \t\u{7f}", MAX_TEXT), None, "blank texts are left out");
        let mut p = want();
        p.paused = true;
        assert!(!p.pause_over(Pause::Show, i64::MAX));
        assert!(!p.pause_over(Pause::HideAfter(60_000), p.at_ms + 59_999));
        assert!(p.pause_over(Pause::HideAfter(60_000), p.at_ms + 60_000));
    }

    fn want() -> Want {
        let mut w = Want { title: "Test Song".into(), artist: "Test Artist".into(), album: "Test Album".into(), track_id: "t1".into(), ..Default::default() };
        w.timing(1_714_600_000_000, 10_000, 1000, 180);
        w
    }

    #[test]
    fn timestamps_follow_position_and_rate() {
        let w = want();
        assert_eq!((w.start_ms, w.end_ms), (1_714_599_990_000, 1_714_600_170_000));
        // Official test: rate 2.0 → start 1714599995000, end 1714600085000.
        let mut w2 = want();
        w2.timing(1_714_600_000_000, 10_000, 2000, 180);
        assert_eq!((w2.start_ms, w2.end_ms), (1_714_599_995_000, 1_714_600_085_000));
        // Spec §3.3 worked example at rate 1.5.
        w2.timing(1_767_225_600_000, 61_234, 1500, 562);
        assert_eq!((w2.start_ms, w2.end_ms), (1_767_225_559_178, 1_767_225_933_844));
        let mut p = want();
        p.paused = true;
        p.timing(1_714_600_000_000, 10_000, 1000, 180);
        assert_eq!((p.start_ms, p.end_ms), (1_714_600_000_000, 0));
    }

    #[test]
    fn presence_frame_is_exact() {
        let s = crate::json::at_depth1(|o| presence(o, Some(&activity(&want(), &defaults())), "123456789012345678", "online"));
        assert_eq!(
            s,
            r#"{"op":3,"d":{"since":null,"activities":[{"type":2,"name":"Navidrome","status_display_type":2,"details":"Test Song","state":"Test Artist","application_id":"123456789012345678","timestamps":{"start":1714599990000,"end":1714600170000}}],"status":"online","afk":false}}"#
        );
        let mut a = activity(&want(), &defaults());
        a.large_image = "mp:external/x".into();
        a.small_image = "mp:external/p".into();
        a.details_url = "https://open.spotify.com/track/1".into();
        a.state_url = ["https://x/", &"a".repeat(250)].concat();
        a.end = 0;
        let s = crate::json::at_depth1(|o| presence(o, Some(&a), "1", "idle"));
        assert!(s.contains(r#""details":"Test Song","details_url":"https://open.spotify.com/track/1","state":"Test Artist","application_id":"1","timestamps":{"start":1714599990000},"assets":{"large_image":"mp:external/x","large_text":"Test Album","large_url":"https://open.spotify.com/track/1","small_image":"mp:external/p","small_text":"Paused"}}"#), "{s}");
        assert!(!s.contains("state_url"), "URLs over 256 bytes are left out");
        let s = crate::json::at_depth1(|o| presence(o, None, "1", "dnd"));
        assert_eq!(s, r#"{"op":3,"d":{"since":null,"activities":[],"status":"dnd","afk":false}}"#);
    }

    /// The largest activities the plugin can be handed: every text past 128 characters of
    /// 4-byte UTF-8, every link at Discord's 256 bytes, `mp:` paths as long as
    /// external-assets may answer for a 256-byte cover URL, a pause icon, a 20-digit
    /// application id; then links and images of characters that escape to 2 or 6 bytes, and
    /// images that leave no room for an activity. Every frame must fit in 4096 bytes.
    #[test]
    fn maximal_presences_fit_in_a_gateway_frame() {
        let t = "🎵".repeat(130);
        let link = ["https://open.spotify.com/search/", &"%F0%9F%8E%B5".repeat(19)].concat();
        let img = ["mp:external/", &"A".repeat(43), "/https/", &"%2525".repeat(110)].concat();
        let cases = [
            (&link[..256], &img[..600], true),
            (&"\"".repeat(256), &"\u{1}".repeat(250), true),
            (&"\u{1f}".repeat(256), &["mp:", &"\\".repeat(310)].concat(), true),
            (&link[..256], &"\u{1}".repeat(400), false),
        ];
        for (link, img, shown) in cases {
            let a = Activity {
                name: t.clone(), display: 0, details: t.clone(), state: t.clone(), large_text: t.clone(),
                details_url: link.into(), state_url: link.into(),
                large_image: img.into(), small_image: img.into(), start: i64::MAX, end: i64::MAX,
            };
            let s = crate::json::at_depth1(|o| presence(o, Some(&a), "12345678901234567890", "invisible"));
            assert!(s.len() <= 4096, "{} bytes: {s}", s.len());
            assert!(Reader::new(s.as_bytes()).skip().is_some() && s.contains("application_id") == shown, "{s}");
        }
    }

    #[test]
    fn any_title_survives_the_double_escape() {
        let mut w = want();
        w.title = "\"quoted\" \\ back\u{1}\n🎵 عربى e\u{301}".into();
        let s = crate::json::at_depth1(|o| presence(o, Some(&activity(&w, &defaults())), "1", "online"));
        w.title = "\"quoted\" \\ back🎵 عربى e\u{301}".into();
        let mut got = None;
        Reader::new(s.as_bytes()).object(|k, r| {
            if k == b"d" {
                r.object(|k, r| {
                    if k == b"activities" {
                        r.array(|r| r.object(|k, r| {
                            if k == b"details" { got = r.string() } else { r.skip()? }
                            Some(())
                        }))
                    } else {
                        r.skip()
                    }
                })
            } else {
                r.skip()
            }
        });
        assert_eq!(got.as_deref(), Some(w.title.as_str()));
    }

    #[test]
    fn truncation_counts_characters() {
        let field = |s: &str, max| field(s, max).unwrap();
        assert_eq!(field("hello", MAX_TEXT), "hello");
        let a128 = "a".repeat(128);
        assert_eq!(field(&a128, MAX_TEXT), a128);
        assert_eq!(field(&a128, 500), a128);
        assert_eq!(field(&"a".repeat(200), MAX_TEXT), ["a".repeat(127), "…".into()].concat());
        let s = field(&"あ".repeat(130), MAX_TEXT);
        assert_eq!(s.chars().count(), 128);
        assert!(s.ends_with('…'));
        assert_eq!((field("あいう", 2), field("あいう", 3), field("あ\u{1}いう", 1)), ("あ…".into(), "あいう".into(), "…".into()));
    }

    #[test]
    fn decide_waits_for_a_stop_s_grace_and_a_new_want_s_lookups() {
        let w = want();
        let now = w.at_ms;
        let sent = Sent::default();
        let f = |want, stopped, lookups, now| Facts { want, sent: &sent, stopped, lookups, idle_ms: 0, now, salt: "c" };
        let sends = |d: Decision| matches!(d.plan, Plan::Send(_));
        // A new want whose lookups a timer does: that timer sends it, for LOOKUP_WAIT_MS.
        assert!(sends(decide(&f(Some(&w), None, false, now))));
        assert_eq!(decide(&f(Some(&w), None, true, now)).plan, Plan::Nothing);
        assert_eq!(decide(&f(Some(&w), None, true, now + LOOKUP_WAIT_MS - 1)).plan, Plan::Nothing);
        assert!(sends(decide(&f(Some(&w), None, true, now + LOOKUP_WAIT_MS))), "an older want goes out with what is known");
        // A clear waits for the grace after the last stop; a want has no grace.
        let shown = Sent { fingerprint: 1, times: [now - 60_000].into(), ..Sent::default() };
        let g = |stopped, now| Facts { want: None, sent: &shown, stopped, lookups: false, idle_ms: 0, now, salt: "c" };
        assert_eq!(decide(&g(Some(now), now + STOP_GRACE_MS - 1)).plan, Plan::Nothing);
        assert!(sends(decide(&g(Some(now), now + STOP_GRACE_MS))));
        assert!(sends(decide(&g(None, now))));
        assert!(sends(decide(&f(Some(&w), Some(now), false, now))));
    }

    #[test]
    fn decide_closes_when_nothing_is_shown_for_the_idle_time() {
        let w = want();
        let now = w.at_ms;
        let shown = Sent { fingerprint: 1, times: [now - 60_000].into(), ..Sent::default() };
        let f = |want, stopped, idle_ms| decide(&Facts { want, sent: &shown, stopped, lookups: false, idle_ms, now, salt: "c" });
        assert_eq!(f(None, None, 600_000).idle_close_at, Some(now + 600_000));
        assert_eq!(f(None, None, 0).idle_close_at, None, "0 never closes");
        assert_eq!(f(Some(&w), None, 600_000).idle_close_at, None, "something is shown");
        assert_eq!(f(None, Some(now - 1), 600_000), Decision { plan: Plan::Nothing, idle_close_at: None }, "the stop's grace decides later");
        // Over the rate budget, the clear waits, and the close is counted from now.
        let busy = Sent { fingerprint: 1, times: [now - 1].into(), ..Sent::default() };
        let d = decide(&Facts { want: None, sent: &busy, stopped: None, lookups: false, idle_ms: 600_000, now, salt: "c" });
        assert_eq!(d, Decision { plan: Plan::Later(now - 1 + MIN_GAP_MS), idle_close_at: Some(now + 600_000) });
    }

    #[test]
    fn plan_dedupes_and_keeps_the_rate_budget() {
        let w = want();
        let now = w.at_ms;
        let Plan::Send(sent) = plan(Some(&w), &Sent::default(), now, "c") else { panic!() };
        assert_eq!(plan(Some(&w), &sent, now + 60_000, "c"), Plan::Nothing);
        // A corrupt record's start time far from any real one is another presence, never
        // an overflow.
        let far = Sent { start_ms: i64::MIN, ..sent.clone() };
        assert!(matches!(plan(Some(&w), &far, now + 60_000, "c"), Plan::Send(_)));
        // A periodic report one second later is the same presence.
        let mut w2 = w.clone();
        w2.timing(now + 1000, 11_000, 1000, 180);
        assert_eq!(plan(Some(&w2), &sent, now + 1000, "c"), Plan::Nothing);
        // Clearing differs from showing.
        assert!(matches!(plan(None, &sent, now + MIN_GAP_MS, "c"), Plan::Send(s) if s.fingerprint == 0));
        assert_eq!(plan(None, &sent, now + 1, "c"), Plan::Later(now + MIN_GAP_MS));
        assert_eq!(plan(None, &Sent::default(), now, "c"), Plan::Nothing);
        // A change every second: one update per 4 s, never more than 5 per 21 s.
        let mut sent = Sent::default();
        let mut out = Vec::new();
        for i in 0..40 {
            let mut t = w.clone();
            t.title = num_title(i);
            match plan(Some(&t), &sent, now + i * 1000, "c") {
                Plan::Send(s) => {
                    sent = s;
                    out.push(i)
                }
                Plan::Later(at) => assert!(at > now + i * 1000),
                Plan::Nothing => panic!(),
            }
        }
        assert_eq!(out, [0, 4, 8, 12, 16, 21, 25, 29, 33, 37]);
        // A changed status is a different presence.
        assert!(matches!(plan(Some(&w), &Sent { fingerprint: w.fingerprint("c"), ..Sent::default() }, now, "cdnd"), Plan::Send(..)));
    }

    fn num_title(i: i64) -> String {
        crate::text::num(i)
    }

    #[test]
    fn fnv_matches_official_vectors() {
        let h = |s: &str| {
            let mut f = Fnv::new();
            f.eat(s.as_bytes());
            f.0
        };
        assert_eq!(h(""), 0xcbf29ce484222325);
        assert_eq!(h("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(h("https://example.com/art.jpg"), 0x911d7a8ed5f599b0);
    }
}
