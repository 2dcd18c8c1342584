//! The JSON writer with arbitrary text: written at depth 0, 1 (a document inside a JSON
//! string, as frames travel in `message`) and 2, then decoded by serde_json, must come
//! back exactly; so must the cache records built from the same text (want, session, sent;
//! the want's texts lose their DELs, its separator).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nd::gateway::{Conn, Link, Phase};
use nd::json::{Out, Reader};
use nd::presence::{Sent, Want};
use nd::store::Record;
use nd::{parse, string};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s = text.as_ref();
    let mut ints = data.chunks(8).map(|c| c.iter().rev().fold(0i64, |v, &b| v << 8 | b as i64)).cycle();
    let mut int = || ints.next().unwrap_or(0);

    let doc = |f: &dyn Fn(&mut Out)| {
        let mut o = Out::new();
        f(&mut o);
        o.buf
    };
    let d0 = doc(&|o| {
        o.str(s);
    });
    assert_eq!(string(&d0), s);
    assert_eq!(nd::text(&mut Reader::new(&d0)).as_deref(), Some(s));
    let d1 = doc(&|o| {
        o.open().raw("{").key(s).int(-7).key("k").str(s).raw("}").close();
    });
    let inner = string(&d1);
    let v = parse(inner.as_bytes());
    assert_eq!(v["k"].as_str(), Some(s), "{inner}");
    assert!(s == "k" || v[s].as_i64() == Some(-7), "{inner}");
    let d2 = doc(&|o| {
        o.open().open().text(s).close().close();
    });
    assert_eq!(string(string(&d2).as_bytes()), s);
    let n = int();
    let d3 = doc(&|o| {
        o.int(n);
    });
    assert_eq!(parse(&d3).as_i64(), Some(n));

    // The presence wanted, as stored in the cache (at depth 1 in the cache request).
    let mut p = s.split('|').map(String::from).chain(std::iter::repeat(String::new()));
    let mut t = || p.next().unwrap_or_default();
    let mut w = Want { title: t(), artist: t(), album: t(), album_artist: t(), track_id: t(), artist0: t(), album_mbid: t(), group_mbid: t(), recording_mbid: t(), player: t(), ..Want::default() };
    // Times as the clamped reports can make them (|t| < 10^17 ms), exact through JSON.
    let mut t17 = || int() % 100_000_000_000_000_000;
    (w.at_ms, w.start_ms, w.end_ms, w.legacy, w.paused) = (t17(), t17(), t17(), t17(), t17() & 1 == 1);
    let stored = string(&doc(&|o| {
        o.open();
        w.save(o);
        o.close();
    }));
    // Back exactly, but for DEL: the separator, which no text keeps.
    for t in [&mut w.title, &mut w.artist, &mut w.album, &mut w.album_artist, &mut w.track_id, &mut w.artist0, &mut w.album_mbid, &mut w.group_mbid, &mut w.recording_mbid, &mut w.player] {
        t.retain(|c| c != '\u{7f}');
    }
    assert_eq!(Want::load(&stored).as_ref(), Some(&w), "{stored}");

    // Session and rate records: space-separated, so their strings hold no space.
    let (sid, url) = (t().replace(' ', ""), t().replace(' ', ""));
    let x = int();
    let seq = (x & 1 == 1).then(|| int());
    let link = Link { gen: x as u32, idle: x & 2 == 2, attempts: (x >> 16) as u32, at_ms: int(), seq, session_id: sid.clone(), resume_url: url.clone(), waiting: x & 4 == 4, identify_at: int() };
    // As a cache request carries a record: inside a JSON string.
    let saved = |r: &dyn Fn(&mut Out)| {
        string(&doc(&|o| {
            o.open();
            r(o);
            o.close();
        }))
    };
    assert_eq!(Link::load(&saved(&|o| link.save(o))).as_ref(), Some(&link));
    let conn = Conn { phase: Phase::from_u8((x >> 32) as u8 % 6).unwrap(), seq, heartbeat_ms: (x >> 8) as u32, status: (x >> 56) as u8 % 4, ready_ms: int(), ack_ms: int(), session_id: sid, resume_url: url };
    assert_eq!(Conn::load(&saved(&|o| conn.save(o))).as_ref(), Some(&conn));
    let sent = Sent { fingerprint: int() as u64, start_ms: int(), beat_ms: int(), times: (0..(n as u8 % 6)).map(|_| int()).collect() };
    assert_eq!(Sent::load(&saved(&|o| sent.save(o))).as_ref(), Some(&sent));
});
