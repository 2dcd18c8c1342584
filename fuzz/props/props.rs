//! Property tests of what reaches Discord: any Unicode text (every plane, controls,
//! quotes, backslashes, combining marks, emoji, bidi marks) in any field renders an op 3
//! frame that, decoded as Navidrome and Discord decode it, is valid JSON carrying exactly
//! the expected texts. Runs on stable: `cargo test -p props` in fuzz/.
#![cfg(test)]

use nd::config::{Name, Settings};
use nd::gateway::{Frame, STATUSES};
use nd::json::Out;
use nd::presence::{self, Activity, Want};
use nd::{parse, string, World};
use proptest::prelude::*;
use serde_json::{json, Value};

fn tricky() -> impl Strategy<Value = char> {
    let marks = ['"', '\\', '/', '{', '}', '<', '&', '\u{7f}', '\u{85}', '\u{200B}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{FEFF}', '\u{2028}', '\u{2029}', '…', '\u{FFFD}'];
    prop_oneof![
        4 => any::<char>(),
        2 => prop::char::range('\0', '\u{1f}'),
        2 => prop::sample::select(marks.to_vec()),
        1 => prop::char::range('\u{300}', '\u{36f}'),
        1 => prop::char::range('\u{1F300}', '\u{1FAFF}'),
        1 => prop::sample::select(vec![' ', '\t', '\n', '\u{a0}', '\u{3000}']),
        3 => prop::char::range('a', 'z'),
    ]
}

/// Any text; blank ones; and lengths around Discord's 128-character limit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(tricky(), 0..40).prop_map(String::from_iter),
        2 => prop::collection::vec(tricky(), 100..300).prop_map(String::from_iter),
        1 => prop::collection::vec(prop::sample::select(vec![' ', '\t', '\n', '\u{3000}', '\u{2028}']), 0..4).prop_map(String::from_iter),
        1 => (tricky(), 1..3usize).prop_map(|(c, n)| std::iter::repeat(c).take(n).collect()),
        2 => (tricky(), tricky(), 125..132usize).prop_map(|(a, b, n)| std::iter::repeat(a).take(n).chain([b]).collect()),
    ]
}

fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec!["{track}", "{artist}", "{album}", "{albumartist}", "{", "}", "{track", " - "]).prop_map(String::from),
        text(),
    ];
    prop::collection::vec(piece, 0..5).prop_map(|v| v.concat())
}

/// Reference template expansion: placeholders replaced in one left-to-right pass.
fn fill(t: &str, w: &Want) -> String {
    let (mut out, mut rest) = (String::new(), t);
    'next: while let Some(c) = rest.chars().next() {
        for (p, v) in [("{track}", &w.title), ("{artist}", &w.artist), ("{album}", &w.album), ("{albumartist}", &w.album_artist)] {
            if let Some(r) = rest.strip_prefix(p) {
                out.push_str(v);
                rest = r;
                continue 'next;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// What Discord must receive for a text: nothing when blank, at most 128 characters (a
/// cut text keeps its first 127 and ends with "…"), a single character padded.
fn shown(s: &str) -> Option<String> {
    // ASCII control characters are dropped; only ASCII white space makes a text blank.
    let s: String = s.chars().filter(|c| !c.is_ascii_control()).collect();
    let s = s.as_str();
    let n = s.chars().count();
    match n {
        _ if s.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty() => None,
        1 => Some(format!("{s}\u{200B}")),
        n if n > 128 => Some(s.chars().take(127).chain(['…']).collect()),
        _ => Some(s.into()),
    }
}

/// The op 3 frame as written into `websocket_sendtext`'s `message`, decoded as Navidrome
/// does (the request), then as Discord does (the frame); returns the frame and activity.
fn render(a: &Activity, client_id: &str, status: &str) -> (String, Value) {
    let mut o = Out::new();
    o.open();
    presence::presence(&mut o, Some(a), client_id, status);
    o.close();
    let frame = string(&o.buf);
    let v = parse(frame.as_bytes());
    assert_eq!((&v["op"], &v["d"]["since"], &v["d"]["afk"], &v["d"]["status"]), (&json!(3), &Value::Null, &json!(false), &json!(status)));
    (frame, v["d"]["activities"][0].clone())
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(String::from)
}

fn want(title: String, artist: String, album: String, album_artist: String) -> Want {
    Want { title, artist, album, album_artist, track_id: "t1".into(), ..Want::default() }
}

/// The characters that cost a frame the most: 4-byte UTF-8, and ones escaped to 2 bytes
/// (quote, backslash) or 6 (controls, which links and images keep).
fn heavy() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range('\u{10000}', '\u{10FFFF}'),
        1 => prop::sample::select(vec!['"', '\\', '\u{1}', '\u{1f}', '\u{7f}', '…', '\u{2028}', 'a']),
    ]
}

/// `prefix` and as many of `chars` as fit in `max` bytes.
fn filled(prefix: &str, chars: Vec<char>, max: usize) -> String {
    let mut s = String::from(prefix);
    for c in chars {
        if c.len_utf8() > max - s.len() {
            break;
        }
        s.push(c);
    }
    s
}

/// Links at Discord's 256 bytes: as enrich makes them (percent-escaped searches), or
/// holding characters that escape.
fn link() -> impl Strategy<Value = String> {
    let safe = prop::sample::select(b"ABCFabcf0123456789%".map(char::from).to_vec());
    prop_oneof![
        3 => prop::collection::vec(safe, 256).prop_map(|c| filled("https://open.spotify.com/search/", c, 256)),
        1 => prop::collection::vec(heavy(), 0..256).prop_map(|c| filled("https://x/", c, 256)),
    ]
}

/// `mp:` paths: the plugin passes on whatever path external-assets answers, so from
/// Discord's 313 characters to far past it, and with characters that escape.
fn image() -> impl Strategy<Value = String> {
    let path = prop::sample::select(b"ABCFabcf0123456789%/-._".map(char::from).to_vec());
    prop_oneof![
        4 => prop::collection::vec(path, 290..=1200).prop_map(|c| filled("mp:external/", c, usize::MAX)),
        1 => prop::collection::vec(heavy(), 0..=600).prop_map(|c| filled("mp:external/", c, usize::MAX)),
    ]
}

/// The bytes a string value takes in a frame, quotes included.
fn json_len(s: &str) -> usize {
    serde_json::to_string(s).unwrap().len()
}

/// Maximal presences (every text past 128 characters of the heaviest characters, every
/// link, long `mp:` paths, a pause icon, a 20-digit application id) fit in a gateway
/// frame: links are shed first, then texts cut shorter (at a character, with "…"); images
/// are never cut, and only images that leave no room for the rest clear the activity.
#[test]
fn maximal_presences_fit_in_a_gateway_frame() {
    use proptest::test_runner::{Config, TestRunner};
    let text = || prop::collection::vec(heavy(), 120..=140).prop_map(String::from_iter);
    let texts = (text(), text(), text(), text());
    let largest = std::cell::Cell::new(0);
    let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
    let input = (texts, link(), link(), image(), prop::option::of(image()));
    let outcome = runner.run(&input, |((name, details, state, large_text), du, su, large, small)| {
        let small = small.unwrap_or_default();
        let act = Activity { name, display: 0, details, state, large_text, details_url: du, state_url: su, large_image: large, small_image: small, start: i64::MAX, end: i64::MAX };
        let (frame, a) = render(&act, "12345678901234567890", "invisible");
        largest.set(largest.get().max(frame.len()));
        prop_assert!(frame.len() <= nd::MAX_FRAME, "{} bytes: {}", frame.len(), frame);
        if a.is_null() {
            prop_assert!(json_len(&act.large_image) + json_len(&act.small_image) > nd::MAX_FRAME - 512, "cleared: {}", frame);
            return Ok(());
        }
        prop_assert_eq!(s(&a["assets"]["large_image"]), Some(act.large_image.clone()));
        prop_assert_eq!(s(&a["assets"]["small_image"]), (!act.small_image.is_empty()).then(|| act.small_image.clone()));
        let mut cut = false;
        for (t, got) in [(&act.name, &a["name"]), (&act.details, &a["details"]), (&act.state, &a["state"]), (&act.large_text, &a["assets"]["large_text"])] {
            let (full, got) = (shown(t), s(got));
            if got != full {
                let (full, got) = (full.unwrap_or_default(), got.unwrap_or_default());
                let stem = got.strip_suffix('…').unwrap_or("\0");
                prop_assert!(full.starts_with(stem) && got.chars().count() < full.chars().count(), "{:?} from {:?}", got, full);
                cut = true;
            }
        }
        let links = [(",\"details_url\":", &act.details_url, &a["details_url"]), (",\"state_url\":", &act.state_url, &a["state_url"]), (",\"large_url\":", &act.details_url, &a["assets"]["large_url"])];
        // Links go all together, only when they do not fit, and before any text is cut.
        let kept = links.iter().any(|l| !l.2.is_null());
        let mut room = 0;
        for (key, url, got) in links {
            if !url.is_empty() && url.len() <= 256 {
                room += key.len() + json_len(url);
                prop_assert_eq!(s(got), kept.then(|| url.clone()), "{}", frame);
            }
        }
        prop_assert!(kept || cut || frame.len() + room > nd::MAX_FRAME, "links shed from a {}-byte frame", frame.len());
        prop_assert!(!(kept && cut), "a text cut while links stay: {}", frame);
        Ok(())
    });
    eprintln!("largest frame: {} bytes", largest.get());
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// The scripted world the fuzz targets drive reaches the gateway's paths: frames go to the
/// current connection, timers fire, Discord's side answers.
#[test]
fn world_reaches_the_gateway_paths() {
    let ops = |w: &World| w.h.fake.frames.iter().map(|(c, f)| (c.clone(), parse(f.as_bytes())["op"].as_i64().unwrap())).collect::<Vec<_>>();
    let mut w = World::ready();
    w.script(b"{\"op\":1}\n{\"op\":11}\n{\"op\":7}");
    w.fire("rc:1:alice");
    w.script(b"{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}\n{\"op\":0,\"t\":\"RESUMED\",\"s\":5}");
    w.advance(0);
    w.script(b"{\"op\":9,\"d\":false}");
    w.fire("rc:2:alice");
    w.script(b"{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}\n{\"op\":0,\"t\":\"READY\",\"s\":1,\"d\":{\"session_id\":\"s3\"}}");
    w.advance(0);
    let on = |g: u8| ops(&w).into_iter().filter(|(c, _)| *c == format!("{g}:alice")).map(|(_, op)| op).collect::<Vec<_>>();
    // Identify, presence, the heartbeat asked for; op 7: after the reconnect timer, Resume
    // on a new socket; op 9: after the reconnect timer, Identify and the presence again.
    assert_eq!((&on(1)[..], on(2).first(), &on(3)[..]), (&[2, 3, 1][..], Some(&6), &[2, 3][..]), "{:?}", ops(&w));
    let mut w = World::new();
    w.discord = true;
    for i in 0..30 {
        w.report("playing", i % 8, 0);
        w.advance(1000);
        w.check_rate();
    }
    assert!((5..=8).contains(&w.op3.len()), "{:?}", w.op3);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_text_field_renders_exactly(title in text(), artist in text(), album in text(), aa in text(),
            details in template(), state in template(), large in template(), name_t in template(), name in 0..5u8) {
        let w = want(title, artist, album, aa);
        let name = [Name::Default, Name::Track, Name::Album, Name::Artist, Name::Custom][name as usize];
        let set = Settings { name, name_template: name_t.clone(), details: details.clone(), state: state.clone(), large_text: large.clone(), ..Settings::default() };
        let mut act = presence::activity(&w, &set);
        act.large_image = "mp:external/art".into();
        let (frame, a) = render(&act, nd::CLIENT_ID, "online");
        let name = match name {
            Name::Default => String::new(),
            Name::Track => w.title.clone(),
            Name::Album => w.album.clone(),
            Name::Artist => w.artist.clone(),
            Name::Custom => fill(&name_t, &w),
        };
        let blank = name.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty();
        let (name, display) = if blank { ("Navidrome".to_string(), 2) } else { (name, 0) };
        prop_assert_eq!(s(&a["name"]), shown(&name), "{}", frame);
        prop_assert_eq!(&a["status_display_type"], &json!(display));
        prop_assert_eq!(s(&a["details"]), shown(&fill(&details, &w)), "{}", frame);
        prop_assert_eq!(s(&a["state"]), shown(&fill(&state, &w)), "{}", frame);
        prop_assert_eq!(s(&a["assets"]["large_text"]), shown(&fill(&large, &w)), "{}", frame);
        for k in ["name", "details", "state"] {
            prop_assert!(a[k].as_str().map_or(0, |t| t.chars().count()) <= 128);
        }
    }

    #[test]
    fn urls_over_256_bytes_are_left_out(d in text(), st in text(), pad in 0..300usize) {
        let url = |t: &str| ["https://x.example/", &"a".repeat(pad), t].concat();
        let act = Activity { details: "Song".into(), details_url: url(&d), state_url: url(&st), large_image: "mp:x".into(), large_text: "Album".into(), ..Activity::default() };
        let (frame, a) = render(&act, nd::CLIENT_ID, "dnd");
        for (got, u) in [(&a["details_url"], &act.details_url), (&a["state_url"], &act.state_url), (&a["assets"]["large_url"], &act.details_url)] {
            prop_assert_eq!(s(got), (u.len() <= 256).then(|| u.clone()), "{}", frame);
        }
    }

    #[test]
    fn ids_images_and_timestamps(client in text(), status in 0..4usize, large in text(), small in text(), start in any::<i64>(), end in any::<i64>()) {
        let act = Activity { name: "Navidrome".into(), display: 2, large_image: large.clone(), small_image: small.clone(), start, end, ..Activity::default() };
        let (frame, a) = render(&act, &client, STATUSES[status]);
        prop_assert_eq!((&a["type"], s(&a["application_id"])), (&json!(2), Some(client)));
        prop_assert_eq!(s(&a["assets"]["large_image"]), (!large.is_empty()).then(|| large.clone()), "{}", frame);
        let paused = !large.is_empty() && !small.is_empty();
        prop_assert_eq!((s(&a["assets"]["small_image"]), s(&a["assets"]["small_text"])), if paused { (Some(small), Some("Paused".into())) } else { (None, None) });
        prop_assert_eq!(a["timestamps"]["start"].as_i64(), (start > 0).then_some(start));
        prop_assert_eq!(a["timestamps"]["end"].as_i64(), (start > 0 && end > 0).then_some(end));
    }

    /// Discord drops frames over 4096 bytes: whatever the texts, with URLs and image ids
    /// within their own limits, the update must fit.
    #[test]
    fn presence_fits_in_a_gateway_frame(c in tricky(), n in 0..=140usize, url in 0..=256usize, img in 0..=128usize) {
        let (t, u) = (c.to_string().repeat(n), "u".repeat(url));
        let act = Activity { name: t.clone(), display: 0, details: t.clone(), state: t.clone(), large_text: t, details_url: u.clone(), state_url: u,
            large_image: "i".repeat(img), small_image: "mp:external/pause".into(), start: 1, end: 2 };
        let (frame, _) = render(&act, nd::CLIENT_ID, "invisible");
        prop_assert!(frame.len() <= nd::MAX_FRAME, "{} bytes: {}", frame.len(), frame);
    }

    #[test]
    fn control_frames_carry_token_and_session(token in text(), sid in text(), seq in any::<i64>()) {
        for f in [Frame::Identify, Frame::Resume { session_id: sid.clone(), seq }, Frame::Heartbeat(Some(seq)), Frame::Heartbeat(None)] {
            let mut o = Out::new();
            o.open();
            nd::gateway::frame(&mut o, &f, &token);
            o.close();
            let v = parse(string(&o.buf).as_bytes());
            match f {
                Frame::Identify => prop_assert_eq!((s(&v["d"]["token"]), &v["op"]), (Some(token.clone()), &json!(2))),
                Frame::Resume { .. } => prop_assert_eq!((s(&v["d"]["token"]), s(&v["d"]["session_id"]), v["d"]["seq"].as_i64()), (Some(token.clone()), Some(sid.clone()), Some(seq))),
                Frame::Heartbeat(q) => prop_assert_eq!((&v["op"], v["d"].as_i64()), (&json!(1), q)),
            }
        }
    }

    /// The whole path: a report encoded by Go, the plugin's reader, its cache records
    /// (stored and read back through the host), the frame through the Fake; the default
    /// templates show title, artist and album.
    #[test]
    fn reported_texts_reach_discord_exactly(title in text(), artist in text(), album in text()) {
        let mut w = World::new();
        let report = json!({"username": nd::USER, "track": {"id": "t1", "title": title, "artist": artist, "album": album, "albumArtist": "", "artists": [], "duration": 180},
            "state": "playing", "positionMs": 1000, "playbackRate": 1, "playerId": "p", "playerName": "NavidromeUI", "timestamp": nd::T0});
        prop_assert_eq!(w.call(b'p', &nd::go_json(&report)), Ok(None));
        w.advance(0); // the reconnect timer the report asked for dials
        w.script(b"{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}\n{\"op\":0,\"t\":\"READY\",\"s\":1,\"d\":{\"session_id\":\"s1\"}}");
        w.advance(0); // the new track's update goes out from its lookups' timer
        let frame = &w.h.fake.frames.last().expect("a presence update").1;
        let a = &parse(frame.as_bytes())["d"]["activities"][0];
        prop_assert_eq!((s(&a["details"]), s(&a["state"]), s(&a["assets"]["large_text"])), (shown(&title), shown(&artist), shown(&album)), "{}", frame);
    }
}
