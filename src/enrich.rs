//! Images and links for the activity, resolved only for a presence actually being sent
//! (spec §6.3): cover art (Cover Art Archive → optional uguu upload → Navidrome's own URL
//! → Navidrome logo), registered as `mp:` paths through Discord's external-assets
//! endpoint, and Spotify links through ListenBrainz Labs (spec §3.4–§3.8).
//!
//! Every lookup is cached with its expiry stored inside the value: the host cache extends
//! an entry's life on every read (ABI §4.6), so its own TTL cannot be trusted.

use crate::config::{Settings, User};
use crate::host::{self, Host, Level, Response};
use crate::json::{Out, Reader};
use crate::presence::{Activity, Want};
use crate::text;
use crate::store;
use crate::url::public_https;
use alloc::string::String;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const LOGO: &str = "https://raw.githubusercontent.com/navidrome/website/refs/heads/master/assets/icons/logo.webp";
const SPOTIFY: &str = "https://open.spotify.com/";
const PAUSE_ICON: &str = "https://raw.githubusercontent.com/navidrome/discord-rich-presence-plugin/800bfacfb8e85c33692373b10ddbd27388f262d2/assets/pause.png";

/// Until when (wall clock, ms) one call may wait on lookups; every request's timeout ends
/// by then. A lookup that does not fit is left for later (`skipped`).
pub struct Net {
    pub until_ms: i64,
    pub skipped: bool,
}

/// How long a call that does the lookups may wait on them (a report's own call waits on
/// none: Navidrome runs reports through one worker for the whole server).
pub const LOOKUP_BUDGET_MS: i64 = 10_000;

/// Adds images and links to `a` for `w`, from the caches and as far as `net` allows.
#[inline(never)]
pub fn enrich(h: &mut impl Host, u: &User, set: &Settings, w: &Want, a: &mut Activity, now: i64, net: &mut Net) {
    // No public cover (Navidrome's default setup has no public URL): the logo.
    let found = cover_url(h, u, set, w, now, net);
    let cover = if found.is_empty() { LOGO } else { &found };
    let small = if w.paused { PAUSE_ICON } else { "" };
    // The activity comes without images.
    register(h, u, set, [cover, small], [&mut a.large_image, &mut a.small_image], now, net);
    if a.large_image.is_empty() && cover != LOGO {
        register(h, u, set, [LOGO, ""], [&mut a.large_image, &mut String::new()], now, net);
    }
    if set.spotify {
        a.details_url = spotify(h, w, now, net);
        a.state_url = search_url(&w.artist, "");
    }
}

/// The time left in `net` for one more request (at least a second), else `None` and the
/// lookup is left for later.
#[inline(always)]
fn afford(h: &mut impl Host, net: &mut Net) -> Option<i64> {
    let left = net.until_ms - h.now_ms();
    net.skipped |= left < 1000;
    (!net.skipped).then_some(left)
}

/// An HTTP request to `https://<service><path>` within `net`'s budget, whose failure is
/// logged (one line naming the service, never the token: only the host's error text,
/// which carries the URL); `None` when it failed (no answer, or 5xx) or did not fit. A
/// service that failed is not asked again for two minutes.
fn fetch(h: &mut impl Host, net: &mut Net, now: i64, service: &str, path: &str, auth: &str, body: Option<(&str, &[u8])>) -> Option<Response> {
    let down = store::found("down", service);
    if down.fresh(h, now, &mut String::new()) {
        return None;
    }
    let left = afford(h, net)?;
    let mut r = Response::default();
    let failed = match host::http(h, service, path, auth, body, left.min(if body.is_some() { 5000 } else { 4000 }), &mut r) {
        Ok(()) if r.status < 500 => return Some(r),
        Ok(()) => text::join3(service, " failed: HTTP ", &text::num(r.status)),
        Err(e) => text::join3(service, " failed: ", &e),
    };
    h.log(Level::Warn, &failed);
    down.keep(h, "", now, 2 * MIN);
    None
}

/// A warning of `what` and its detail.
#[inline(never)]
fn warn(h: &mut impl Host, what: &str, detail: &str) {
    h.log(Level::Warn, &text::join(what, detail));
}

/// The large image's source URL (spec §3.6), or "" when there is none.
#[inline(always)]
fn cover_url(h: &mut impl Host, u: &User, set: &Settings, w: &Want, now: i64, net: &mut Net) -> String {
    if set.caa {
        let url = cover_art_archive(h, w, now, net);
        if !url.is_empty() {
            return url;
        }
    }
    if set.uguu {
        return uguu(h, u, w, now, net);
    }
    match host::track_art_url(h, &w.track_id, 300) {
        Ok(url) if public_https(&url) => url,
        Ok(_) => String::new(),
        Err(e) => {
            warn(h, "cannot get the cover URL from Navidrome: ", &e);
            String::new()
        }
    }
}

/// Cover Art Archive: the release's front image, else the release group's, found by a
/// HEAD whose 307 `Location` is the image (not followed). A hit is kept a day, a
/// definitive miss (404) four hours, a transient failure not at all; "" for none.
fn cover_art_archive(h: &mut impl Host, w: &Want, now: i64, net: &mut Net) -> String {
    // MusicBrainz ids are UUIDs; anything else in a tag never reaches the URL.
    // Hex digits and `-`: a bit each from `-` up.
    let uuid = |s: &str| s.len() == 36 && s.bytes().all(|b| b.wrapping_sub(b'-') < 58 && 0x3f0_0000_03f0_1ff9u64 >> (b - b'-') & 1 != 0);
    // Cached under the first valid id: a junk album id shared by two albums must not
    // make them share a cover.
    let key = match (w.album_mbid.as_str(), w.group_mbid.as_str()) {
        (a, _) if uuid(a) => store::found("caa", a),
        (_, g) if uuid(g) => store::found("caa.rg", g),
        _ => return String::new(),
    };
    let mut v = String::new();
    if key.fresh(h, now, &mut v) {
        return v;
    }
    let mut definitive = false;
    for &(kind, id) in &[("/release/", &w.album_mbid), ("/release-group/", &w.group_mbid)] {
        if !uuid(id) {
            continue;
        }
        let path = text::join3(kind, id, "/front-500");
        match fetch(h, net, now, "coverartarchive.org", &path, "", None) {
            // A redirect anywhere but a public https URL (after the upgrade) is no image.
            Some(Response { status: 301..=308, location, .. }) => {
                let loc = match location.strip_prefix("http://") {
                    Some(r) => text::join("https://", r),
                    None => location,
                };
                if public_https(&loc) {
                    key.keep(h, &loc, now, 24 * HOUR);
                    return loc;
                }
                definitive = true;
            }
            Some(Response { status: 404, .. }) => definitive = true,
            _ => definitive = false,
        }
    }
    if definitive {
        key.keep(h, "", now, 4 * HOUR);
    }
    String::new()
}

/// Opt-in: uploads the cover to uguu.se (files live 3 h) for servers whose own URL is not
/// public. The link is reused for 2.5 h.
#[inline(always)]
fn uguu(h: &mut impl Host, u: &User, w: &Want, now: i64, net: &mut Net) -> String {
    let key = store::found("uguu", &w.track_id);
    // The upload's link, "" until there is one.
    let mut url = String::new();
    if key.fresh(h, now, &mut url) {
        return url;
    }
    // The cover is read from Navidrome only when there is time to upload it.
    if afford(h, net).is_none() {
        return url;
    }
    let mut uri = text::join3("getCoverArt?u=", &query_escape(&u.name), "&id=");
    uri.push_str(&query_escape(&w.track_id));
    uri.push_str("&size=300");
    let (ctype, data) = match host::subsonic_raw(h, &uri) {
        Ok(v) => v,
        Err(e) => {
            warn(h, "cannot read the cover from Navidrome: ", &e);
            return url;
        }
    };
    // Only the images Discord shows; anything else (a Subsonic error document, an SVG)
    // is never uploaded.
    if crate::json::key_index(ctype.as_bytes(), &["image/jpeg", "image/png", "image/gif", "image/webp"]).is_none() {
        h.log(Level::Warn, "cover not uploaded: Navidrome served no JPEG, PNG, GIF or WebP image");
        key.keep(h, "", now, 10 * MIN);
        return url;
    }
    // A multipart form of one file: `head` opens with `--` and the boundary, which the
    // tail repeats and the content type names.
    let head = "------NavidromeCoverArt\r\nContent-Disposition: form-data; name=\"files[]\"; filename=\"cover.jpg\"\r\nContent-Type: ";
    let boundary = &head[2..23];
    let mut body = text::join3(head, &ctype, "\r\n\r\n").into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(b"\r\n--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    let ct = text::join("multipart/form-data; boundary=", boundary);
    if let Some(r) = fetch(h, net, now, "uguu.se", "/upload", "", Some((&ct, &body))) {
        if r.status < 400 {
            Reader::new(&r.body).object(|k, r| {
                if k != b"files" {
                    return r.skip();
                }
                // The first file's URL; the files after it are skipped.
                r.array(|r| if url.is_empty() { r.texts(&["url"], &mut [&mut url]) } else { r.skip() })
            });
        }
    }
    if public_https(&url) {
        key.keep(h, &url, now, 150 * MIN);
        url
    } else {
        String::new()
    }
}

/// Registers up to two image URLs with Discord's external-assets endpoint in one call and
/// writes their `mp:` paths into `out`, which start empty (and stay so where there is
/// none). Results are cached (a day; a failure ten minutes, so a broken URL is not retried
/// on every update); a 429 pauses registration for its `Retry-After`, a 401 (bad token)
/// for an hour.
fn register(h: &mut impl Host, u: &User, set: &Settings, urls: [&str; 2], out: [&mut String; 2], now: i64, net: &mut Net) {
    // Which URLs are asked for, written into the request as found.
    let mut asked = [false; 2];
    let mut body = Out::new();
    body.raw(r#"{"urls":["#);
    for i in 0..2 {
        // The URLs are public https ones or the logo and pause icon, never `mp:` paths.
        let url = urls[i];
        if !url.is_empty() {
            if !asset(url).fresh(h, now, out[i]) {
                if asked[0] {
                    body.raw(",");
                }
                body.str(url);
                asked[i] = true;
            }
        }
    }
    body.raw("]}");
    if asked == [false; 2] {
        return;
    }
    let blocked = store::found("assets.blocked", &u.name);
    if blocked.fresh(h, now, &mut String::new()) {
        return;
    }
    let path = text::join3("/api/v9/applications/", &set.client_id, "/external-assets");
    let Some(r) = fetch(h, net, now, "discord.com", &path, &u.token, Some(("application/json", &body.buf))) else { return };
    if r.status < 300 {
        let mut n = 0;
        Reader::new(&r.body).array(|r| {
            let (mut url, mut path) = (String::new(), String::new());
            r.texts(&["url", "external_asset_path"], &mut [&mut url, &mut path])?;
            // Matched by URL; in order (the `n`th asked) if Discord rewrote it.
            let i = if asked[0] && urls[0] == url {
                0
            } else if asked[1] && urls[1] == url {
                1
            } else {
                n + !asked[0] as usize
            };
            if i < 2 && asked[i] && !path.is_empty() {
                // Written in place (an earlier entry for the same image is replaced).
                let o = &mut *out[i];
                o.clear();
                o.push_str("mp:");
                o.push_str(&path);
            }
            n += 1;
            Some(())
        });
        for i in 0..2 {
            if asked[i] {
                let ttl = if out[i].is_empty() {
                    warn(h, "Discord registered no image for ", urls[i]);
                    10 * MIN
                } else {
                    24 * HOUR
                };
                asset(urls[i]).keep(h, out[i], now, ttl);
            }
        }
    } else {
        // A 429 pauses registration for its `Retry-After`, a 401 (bad token) for an hour;
        // other statuses are not cached, tried again next time.
        host::log(h, Level::Warn, &u.name, &text::join("Discord refused image registration: HTTP ", &text::num(r.status)));
        let secs = match r.status {
            401 => 3600,
            429 => text::int(&r.retry_after).unwrap_or(60).clamp(1, 3600),
            _ => 0,
        };
        if secs > 0 {
            blocked.keep(h, "", now, secs * 1000);
        }
    }
}

/// Where a registered image's `mp:` path is kept, by its URL.
#[inline(always)]
fn asset(url: &str) -> store::Slot<store::Found> {
    store::found_hashed("asset.", url)
}

/// A Spotify link for the track (spec §3.8): by MusicBrainz recording id, else by
/// artist/title/album, through ListenBrainz Labs; else a Spotify search. Track links are
/// kept 30 days, searches 4 hours.
fn spotify(h: &mut impl Host, w: &Want, now: i64, net: &mut Net) -> String {
    // Keyed by artist, title and album, lowercased, NUL-separated.
    let mut parts = text::join3(&w.artist0, "\0", &w.title);
    parts.push_str("\0");
    parts.push_str(&w.album);
    parts.make_ascii_lowercase();
    let key = store::found_hashed("spotify.", &parts);
    // The link kept, else the id found ("" for none); `answered`: Labs answered (or was
    // not asked).
    let mut id = String::new();
    if key.fresh(h, now, &mut id) {
        return id;
    }
    let mut answered = true;
    if !w.recording_mbid.is_empty() {
        let mut b = Out::new();
        b.raw(r#"[{"recording_mbid":"#).str(&w.recording_mbid).raw("}]");
        answered = labs(h, net, now, "/spotify-id-from-mbid/json", &b.buf, &mut id);
    }
    if answered && id.is_empty() && !w.artist0.is_empty() && !w.title.is_empty() {
        let mut b = Out::new();
        b.raw(r#"[{"artist_name":"#).str(&w.artist0).key("track_name").str(&w.title).key("release_name").str(&w.album).raw("}]");
        answered = labs(h, net, now, "/spotify-id-from-metadata/json", &b.buf, &mut id);
    }
    let (url, ttl) = if id.is_empty() { (search_url(&w.artist, &w.title), 4 * HOUR) } else { (text::join3(SPOTIFY, "track/", &id), 720 * HOUR) };
    // Only an answer is remembered; a failure is asked again later.
    if answered {
        key.keep(h, &url, now, ttl);
    }
    url
}

/// Asks Labs: the first well-formed Spotify track id of its answer goes to `id` (none
/// for an error status); false when Labs did not answer.
fn labs(h: &mut impl Host, net: &mut Net, now: i64, path: &str, body: &[u8], id: &mut String) -> bool {
    let Some(r) = fetch(h, net, now, "labs.api.listenbrainz.org", path, "", Some(("application/json", body))) else { return false };
    if (200..300).contains(&r.status) {
        spotify_id(&r.body, id);
    }
    true
}

/// The first well-formed Spotify track id in a Labs answer, into `found` (empty: none
/// yet; left empty for none).
fn spotify_id(body: &[u8], found: &mut String) {
    Reader::new(body).array(|r| {
        r.object(|k, r| {
            if k != b"spotify_track_ids" {
                return r.skip();
            }
            r.array(|r| {
                let mut id = String::new();
                r.string_to(&mut id)?;
                // Letters and digits only: what percent-encoding leaves as it is (an empty
                // id leaves `found` empty).
                if found.is_empty() && text::percent(&id, b"") == id {
                    *found = id;
                }
                Some(())
            })
        })
    });
}

/// `https://open.spotify.com/search/<artist> <title>` (the title may be ""), path-escaped
/// as Go's `url.PathEscape` does; "" when both are empty.
pub fn search_url(artist: &str, title: &str) -> String {
    let q = text::join3(artist, " ", title);
    let q = text::trim(&q);
    if q.is_empty() {
        return String::new();
    }
    text::join3(SPOTIFY, "search/", &text::percent(q, b"-._~$&+:=@"))
}

#[inline(always)]
fn query_escape(s: &str) -> String {
    text::percent(s, b"-._~")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::fake::Fake;

    fn hashed(prefix: &str, parts: &[&str]) -> String {
        store::found_hashed(prefix, &parts.join("\0")).key
    }

    const NOW: i64 = 1_714_600_000_000;
    const ASSETS: &str = "https://discord.com/api/v9/applications/123456789012345678/external-assets";

    fn user() -> User {
        let cfg = |k: &str| match k {
            "users" => Some(r#"[{"token":"tok-SECRET","username":"alice"}]"#.into()),
            _ => None,
        };
        User::load(cfg, "alice").unwrap().unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> Settings {
        let mut all = std::vec![("clientid", "123456789012345678")];
        all.extend_from_slice(pairs);
        Settings::load(crate::fake::config(&all)).unwrap()
    }

    /// `register`'s paths for `urls`.
    fn registered(h: &mut Fake, u: &User, urls: [&str; 2], now: i64, net: &mut Net) -> [String; 2] {
        let mut out = [String::new(), String::new()];
        let [a, b] = &mut out;
        register(h, u, &set(&[]), urls, [a, b], now, net);
        out
    }

    fn full() -> Net {
        Net { until_ms: i64::MAX, skipped: false }
    }

    fn want() -> Want {
        Want { title: "Karma Police".into(), artist: "Radiohead".into(), artist0: "Radiohead".into(), album: "OK Computer".into(), track_id: "track1".into(), album_mbid: "9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6b".into(), ..Want::default() }
    }

    fn expiry(h: &Fake, key: &str) -> i64 {
        h.cache[key].split(' ').next().unwrap().parse::<i64>().unwrap() - NOW
    }

    #[test]
    fn caa_release_hit_is_kept_a_day_and_wins() {
        let (mut h, u, s) = (Fake::default(), user(), set(&[("caaenabled", "true")]));
        h.route("https://coverartarchive.org/release/9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6b/front-500", 307, "http://archive.org/download/x.jpg", "");
        assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW, &mut full()), "https://archive.org/download/x.jpg");
        assert_eq!(expiry(&h, "caa.9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6b"), 24 * HOUR);
        assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW + 1000, &mut full()), "https://archive.org/download/x.jpg");
        assert_eq!(h.requests.len(), 1, "cached; no artwork or other lookups");
        assert_eq!(h.requests[0].0, "HEAD");
    }

    #[test]
    fn caa_misses_fall_back_and_only_definitive_ones_are_cached() {
        let (mut h, u, s) = (Fake::default(), user(), set(&[("caaenabled", "true")]));
        let mut w = want();
        w.group_mbid = "0f3c5a2e-7d41-4b6e-9a1c-2b8d4e6f7a90".into();
        h.route("https://coverartarchive.org/", 404, "", "");
        assert_eq!(cover_url(&mut h, &u, &s, &w, NOW, &mut full()), "https://nd.example.org/share/img/track1?size=300");
        assert_eq!(h.urls(), ["https://coverartarchive.org/release/9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6b/front-500", "https://coverartarchive.org/release-group/0f3c5a2e-7d41-4b6e-9a1c-2b8d4e6f7a90/front-500"]);
        assert_eq!((expiry(&h, "caa.9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6b"), h.cache["caa.9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6b"].ends_with(' ')), (4 * HOUR, true));
        // Redirects to what Discord must not get (a private host, a credential): misses too.
        let mut h = Fake::default();
        h.route("https://coverartarchive.org/release/", 307, "http://127.0.0.1/x.jpg", "");
        h.route("https://coverartarchive.org/release-group/", 302, "https://archive.org/x.jpg?%75=admin", "");
        assert_eq!(cover_url(&mut h, &u, &s, &w, NOW, &mut full()), "https://nd.example.org/share/img/track1?size=300");
        assert!(h.cache["caa.9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6b"].ends_with(' '));
        // Release 404 then release group 307: cached under the album key.
        let mut h = Fake::default();
        h.route("https://coverartarchive.org/release/", 404, "", "");
        h.route("https://coverartarchive.org/release-group/", 307, "https://archive.org/rg.jpg", "");
        assert_eq!(cover_art_archive(&mut h, &w, NOW, &mut full()), "https://archive.org/rg.jpg");
        assert!(h.cache["caa.9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6b"].ends_with(" https://archive.org/rg.jpg"));
        // Only a release group id: its own key. A transport error: no cover cached, the
        // service rests two minutes.
        let mut h = Fake::default();
        w.album_mbid.clear();
        assert_eq!(cover_art_archive(&mut h, &w, NOW, &mut full()), "");
        assert!(h.cache.keys().eq(["down.coverartarchive.org"]) && h.urls() == ["https://coverartarchive.org/release-group/0f3c5a2e-7d41-4b6e-9a1c-2b8d4e6f7a90/front-500"]);
        h.cache.clear();
        h.route("https://coverartarchive.org/", 404, "", "");
        cover_art_archive(&mut h, &w, NOW, &mut full());
        assert!(h.cache.contains_key("caa.rg.0f3c5a2e-7d41-4b6e-9a1c-2b8d4e6f7a90"));
        // No ids, or tags that are not MusicBrainz ids: no HTTP at all.
        let mut h = Fake::default();
        assert_eq!(cover_art_archive(&mut h, &Want::default(), NOW, &mut full()), "");
        let bad = Want { album_mbid: "%0X00/../../x?y=1#z-aaaaaaaaaaaaaaaaaaaaaaaaa".into(), ..Want::default() };
        assert_eq!(cover_art_archive(&mut h, &bad, NOW, &mut full()), "");
        for id in ["9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6g", "9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6G", "9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6:", "9e1f2a3b-4c5d-4e6f-8a7b-1c2d3e4f5a6,"] {
            assert_eq!(cover_art_archive(&mut h, &Want { album_mbid: id.into(), ..Want::default() }, NOW, &mut full()), "", "{id}");
        }
        assert!(h.requests.is_empty());
        // Upper-case hex digits are hex digits.
        cover_art_archive(&mut h, &Want { album_mbid: "9E1F2A3B-4C5D-4E6F-8A7B-1C2D3E4F5A6B".into(), ..Want::default() }, NOW, &mut full());
        assert_eq!(h.requests.len(), 1);
    }

    #[test]
    fn navidrome_urls_must_be_public() {
        let (mut h, u, s) = (Fake::default(), user(), set(&[]));
        h.art_url = "http://localhost:4533/share/img/x".into();
        assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW, &mut full()), "");
        h.art_url = "https://music.example.com/share/img/x?size=300".into();
        assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW, &mut full()), "https://music.example.com/share/img/x?size=300");
    }

    #[test]
    fn uguu_upload_is_reused_for_its_lifetime() {
        let (mut h, u, s) = (Fake::default(), user(), set(&[("uguuenabled", "true")]));
        h.route("https://uguu.se/upload", 200, "", r#"{"success":true,"files":[{"hash":"h","url":"https://a.uguu.se/up.png"}]}"#);
        assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW, &mut full()), "https://a.uguu.se/up.png");
        let (method, _, body) = &h.requests[0];
        assert_eq!(method, "POST");
        assert!(body.contains("name=\"files[]\"") && body.contains("Content-Type: image/png\r\n\r\nPNG\r\n------NavidromeCoverArt--"), "{body}");
        assert_eq!(expiry(&h, "uguu.track1"), 150 * MIN);
        cover_url(&mut h, &u, &s, &want(), NOW + 149 * MIN, &mut full());
        assert_eq!(h.requests.len(), 1);
        cover_url(&mut h, &u, &s, &want(), NOW + 151 * MIN, &mut full());
        assert_eq!(h.requests.len(), 2, "the file is gone after 3 h: upload again");
        let mut h = Fake::default();
        h.route("https://uguu.se/upload", 500, "", "");
        assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW, &mut full()), "");
        // Several files: the first with a URL.
        for (files, url) in [(r#"[{"url":"https://a.uguu.se/1.png"},{"url":"https://a.uguu.se/2.png"}]"#, "https://a.uguu.se/1.png"), (r#"[{"hash":"h"},{"url":"https://a.uguu.se/2.png"},7]"#, "https://a.uguu.se/2.png"), (r#"[7,{"url":"https://a.uguu.se/2.png"}]"#, "")] {
            let mut h = Fake::default();
            h.route("https://uguu.se/upload", 200, "", &[r#"{"files":"#, files, "}"].concat());
            assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW, &mut full()), url, "{files}");
        }
    }

    #[test]
    fn uguu_uploads_only_images_discord_shows() {
        let (u, s) = (user(), set(&[("uguuenabled", "true")]));
        // A Subsonic error document served as the cover, an SVG, a content type with a
        // header injection: nothing is uploaded.
        for ct in ["text/xml", "application/json", "image/svg+xml", "image/png\r\nX-A: b", ""] {
            let mut h = Fake::default();
            h.raw = ["{\"contentType\":\"", ct, "\",\"data\":\"PHN1YnNvbmljLXJlc3BvbnNlLz4=\"}"].concat();
            h.route("https://uguu.se/upload", 200, "", r#"{"success":true,"files":[{"url":"https://a.uguu.se/up.png"}]}"#);
            assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW, &mut full()), "", "{ct}");
            assert!(h.requests.is_empty(), "{ct}: {:?}", h.requests);
        }
        for ct in ["image/jpeg", "image/png", "image/gif", "image/webp"] {
            let mut h = Fake::default();
            h.raw = ["{\"contentType\":\"", ct, "\",\"data\":\"UE5H\"}"].concat();
            h.route("https://uguu.se/upload", 200, "", r#"{"success":true,"files":[{"url":"https://a.uguu.se/up.png"}]}"#);
            assert_eq!(cover_url(&mut h, &u, &s, &want(), NOW, &mut full()), "https://a.uguu.se/up.png", "{ct}");
            assert!(h.requests[0].2.contains(&["Content-Type: ", ct, "\r\n"].concat()), "{ct}");
        }
    }

    #[test]
    fn caa_covers_are_cached_under_a_valid_mbid_only() {
        // Two albums whose album-id tag is the same junk, with different release groups:
        // each gets its own group's cover.
        let (g1, g2) = ("0f3c5a2e-7d41-4b6e-9a1c-2b8d4e6f7a90", "1f3c5a2e-7d41-4b6e-9a1c-2b8d4e6f7a91");
        let mut h = Fake::default();
        h.route(&["https://coverartarchive.org/release-group/", g1].concat(), 307, "https://archive.org/one.jpg", "");
        h.route(&["https://coverartarchive.org/release-group/", g2].concat(), 307, "https://archive.org/two.jpg", "");
        let w1 = Want { album_mbid: "not-an-mbid".into(), group_mbid: g1.into(), ..want() };
        let w2 = Want { group_mbid: g2.into(), ..w1.clone() };
        assert_eq!(cover_art_archive(&mut h, &w1, NOW, &mut full()), "https://archive.org/one.jpg");
        assert_eq!(cover_art_archive(&mut h, &w2, NOW, &mut full()), "https://archive.org/two.jpg");
        assert!(!h.cache.keys().any(|k| k.contains("not-an-mbid")), "{:?}", h.cache);
    }

    #[test]
    fn registration_batches_caches_and_backs_off() {
        let (mut h, u) = (Fake::default(), user());
        h.route(ASSETS, 200, "", r#"[{"url":"https://a/x.jpg","external_asset_path":"external/A/https/a/x.jpg"},{"url":"https://p/p.png","external_asset_path":"external/P"}]"#);
        let got = registered(&mut h, &u, ["https://a/x.jpg", "https://p/p.png"], NOW, &mut full());
        assert_eq!(got, ["mp:external/A/https/a/x.jpg".to_string(), "mp:external/P".into()]);
        assert_eq!(h.requests[0].2, r#"{"urls":["https://a/x.jpg","https://p/p.png"]}"#);
        assert_eq!(registered(&mut h, &u, ["https://p/p.png", "https://a/x.jpg"], NOW, &mut full()), ["mp:external/P".to_string(), "mp:external/A/https/a/x.jpg".into()]);
        assert_eq!(h.requests.len(), 1, "both cached");
        // Errors: 500 is retried, an unusable answer is remembered for ten minutes.
        for (status, body, cached) in [(500, "", false), (200, r#"{"not":"an-array"}"#, true), (200, "[]", true), (200, r#"[{"external_asset_path":""}]"#, true)] {
            let mut h = Fake::default();
            h.route(ASSETS, status, "", body);
            assert_eq!(registered(&mut h, &u, ["https://b/y.jpg", ""], NOW, &mut full())[0], "");
            assert_eq!(h.cache.contains_key(&hashed("asset.", &["https://b/y.jpg"])), cached, "{status} {body}");
            assert!(h.logs.iter().any(|(l, _)| *l == Level::Warn), "a failure is logged: {status} {body}");
        }
        // 429: nothing is registered until Retry-After has passed.
        let mut h = Fake::default();
        h.route(ASSETS, 429, "", "");
        registered(&mut h, &u, ["https://c/z.jpg", ""], NOW, &mut full());
        registered(&mut h, &u, ["https://d/z.jpg", ""], NOW + 30_000, &mut full());
        assert_eq!(h.requests.len(), 1);
        registered(&mut h, &u, ["https://d/z.jpg", ""], NOW + 61_000, &mut full());
        assert_eq!(h.requests.len(), 2);
        assert!(h.logs.iter().all(|(_, l)| !l.contains("tok-SECRET")));
    }

    #[test]
    fn without_a_public_cover_the_logo_shows_and_a_pause_shows_its_icon() {
        // Navidrome's default setup: no ShareURL/BaseURL (covers on http://localhost), no
        // Cover Art Archive, no uguu.
        let (mut h, u, s) = (Fake::default(), user(), set(&[]));
        h.art_url = "http://localhost/share/img/x?size=300".into();
        h.route(ASSETS, 200, "", r#"[{"url":"x","external_asset_path":"external/logo"},{"url":"y","external_asset_path":"external/pause"}]"#);
        let mut w = want();
        w.paused = true;
        let mut a = Activity::default();
        enrich(&mut h, &u, &s, &w, &mut a, NOW, &mut full());
        assert_eq!((a.large_image.as_str(), a.small_image.as_str()), ("mp:external/logo", "mp:external/pause"));
        assert_eq!(h.requests.len(), 1, "logo and pause icon register together");
        assert!(h.requests[0].2.contains(LOGO) && !h.requests[0].2.contains("localhost"), "{}", h.requests[0].2);
    }

    #[test]
    fn enrich_falls_back_to_the_logo_and_adds_links() {
        let (mut h, u, s) = (Fake::default(), user(), set(&[("spotifylinks", "true")]));
        h.route(ASSETS, 400, "", "");
        h.route("https://labs.api.listenbrainz.org/spotify-id-from-metadata/json", 200, "", r#"[{"spotify_track_ids":["63OQupATfueTdZMWIV7nzz"]}]"#);
        let mut w = want();
        w.paused = true;
        let mut a = Activity::default();
        enrich(&mut h, &u, &s, &w, &mut a, NOW, &mut full());
        assert_eq!((a.large_image.as_str(), a.small_image.as_str()), ("", ""), "nothing registers: no images");
        assert!(h.requests.iter().any(|r| r.2.contains(LOGO)), "the logo is tried after the cover");
        assert_eq!(a.details_url, "https://open.spotify.com/track/63OQupATfueTdZMWIV7nzz");
        assert_eq!(a.state_url, "https://open.spotify.com/search/Radiohead");
        let body = &h.requests.iter().find(|r| r.1.contains("metadata")).unwrap().2;
        assert_eq!(body, r#"[{"artist_name":"Radiohead","track_name":"Karma Police","release_name":"OK Computer"}]"#);
        // Cover and pause icon register together.
        let mut h = Fake::default();
        h.route(ASSETS, 200, "", r#"[{"url":"x","external_asset_path":"external/art"},{"url":"y","external_asset_path":"external/pause"}]"#);
        let mut a = Activity::default();
        enrich(&mut h, &u, &set(&[]), &w, &mut a, NOW, &mut full());
        assert_eq!((a.large_image.as_str(), a.small_image.as_str()), ("mp:external/art", "mp:external/pause"));
        assert_eq!(h.requests.len(), 1);
    }

    #[test]
    fn spotify_resolution_order_and_cache() {
        let mut w = want();
        w.recording_mbid = "rec-1".into();
        let mut h = Fake::default();
        h.route("https://labs.api.listenbrainz.org/spotify-id-from-mbid/json", 200, "", r#"[{"spotify_track_ids":["4wlLbLeDWbA6TzwZFp1UaK"]}]"#);
        assert_eq!(spotify(&mut h, &w, NOW, &mut full()), "https://open.spotify.com/track/4wlLbLeDWbA6TzwZFp1UaK");
        assert_eq!(h.requests[0].2, r#"[{"recording_mbid":"rec-1"}]"#);
        let key = hashed("spotify.", &["radiohead", "karma police", "ok computer"]);
        assert_eq!(expiry(&h, &key), 720 * HOUR);
        assert_eq!(spotify(&mut h, &w, NOW + 1, &mut full()), "https://open.spotify.com/track/4wlLbLeDWbA6TzwZFp1UaK");
        assert_eq!(h.requests.len(), 1);
        // MBID 404, metadata 500: a search for now, not kept; Labs rests two minutes.
        let mut h = Fake::default();
        h.route("https://labs.api.listenbrainz.org/spotify-id-from-mbid/json", 404, "", "");
        h.route("https://labs.api.listenbrainz.org/spotify-id-from-metadata/json", 500, "", "");
        assert_eq!(spotify(&mut h, &w, NOW, &mut full()), "https://open.spotify.com/search/Radiohead%20Karma%20Police");
        assert_eq!((h.requests.len(), h.cache.contains_key(&key)), (2, false));
        assert_eq!(expiry(&h, "down.labs.api.listenbrainz.org"), 2 * MIN);
        spotify(&mut h, &w, NOW + MIN, &mut full());
        assert_eq!(h.requests.len(), 2, "a service that just failed is not asked again");
        // MBID 404, metadata without an id: a search, kept 4 h.
        let mut h = Fake::default();
        h.route("https://labs.api.listenbrainz.org/spotify-id-from-mbid/json", 404, "", "");
        h.route("https://labs.api.listenbrainz.org/spotify-id-from-metadata/json", 200, "", "[]");
        assert_eq!(spotify(&mut h, &w, NOW, &mut full()), "https://open.spotify.com/search/Radiohead%20Karma%20Police");
        assert_eq!((h.requests.len(), expiry(&h, &key)), (2, 4 * HOUR));
        // No time left in the call: nothing asked, nothing kept, the lookup is left for later.
        let (mut h, mut net) = (Fake::default(), Net { until_ms: 0, skipped: false });
        assert_eq!(spotify(&mut h, &w, NOW, &mut net), "https://open.spotify.com/search/Radiohead%20Karma%20Police");
        assert!(net.skipped && h.requests.is_empty() && h.cache.is_empty());
    }

    #[test]
    fn spotify_search_urls_escape_like_go() {
        assert_eq!(search_url("Rick Astley", "Never Gonna Give You Up"), "https://open.spotify.com/search/Rick%20Astley%20Never%20Gonna%20Give%20You%20Up");
        assert_eq!(search_url("Radiohead", ""), "https://open.spotify.com/search/Radiohead");
        assert_eq!(search_url("", ""), "");
        assert_eq!(search_url("Solo Artist", ""), "https://open.spotify.com/search/Solo%20Artist");
        assert_eq!(search_url("AC/DC's $&+:=@ é", ""), "https://open.spotify.com/search/AC%2FDC%27s%20$&+:=@%20%C3%A9");
    }

    #[test]
    fn spotify_ids_from_labs_answers() {
        let id = |b: &str| {
            let mut found = String::new();
            spotify_id(b.as_bytes(), &mut found);
            found
        };
        assert_eq!(id(r#"[{"spotify_track_ids":["4tIGK5G9hNDA50ZdGioZRG"]}]"#), "4tIGK5G9hNDA50ZdGioZRG");
        assert_eq!(id(r#"[{"spotify_track_ids":["6vN77lE9LK6HP2DewaN6HZ","x"]}]"#), "6vN77lE9LK6HP2DewaN6HZ");
        assert_eq!(id(r#"[{"artist_name":"a","recording_mbid":"m","spotify_track_ids":["63OQupATfueTdZMWIV7nzz"]}]"#), "63OQupATfueTdZMWIV7nzz");
        assert_eq!(id(r#"[{"spotify_track_ids":[]}]"#), "");
        assert_eq!(id(r#"[{"artist_name":"a"}]"#), "");
        assert_eq!(id("[]"), "");
        assert_eq!(id("not json"), "");
        assert_eq!(id(r#"[{"spotify_track_ids":[]},{"spotify_track_ids":["abc123"]}]"#), "abc123");
        assert_eq!(id(r#"[{"spotify_track_ids":["","abc123"]}]"#), "abc123");
        assert_eq!(id(r#"[{"spotify_track_ids":["abc!@#$%^&*()_+=-12345"]}]"#), "");
        assert_eq!(id(r#"[{"spotify_track_ids":["has space"]}]"#), "");
    }
}
