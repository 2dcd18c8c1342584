//! The JSON payloads Navidrome passes to our exports (ABI §5). Every field is optional
//! on the wire (Go omits nothing here, but we default everything anyway); unknown keys
//! are skipped.

use crate::json::{self, Reader};
use crate::presence::Want;
use alloc::string::String;

/// `nd_scrobbler_playback_report` and `nd_scrobbler_now_playing` (which carries only
/// `position` in seconds and no state or time).
#[derive(Default, Debug)]
pub struct Report {
    pub username: String,
    pub state: String,
    pub position_ms: i64,
    /// Playback rate × 1000.
    pub rate_milli: i64,
    pub player_id: String,
    pub player_name: String,
    /// Unix seconds of the report (0 when absent).
    pub timestamp: i64,
    /// The track's texts, as the presence wants them.
    pub track: Want,
    /// Whole seconds, truncated as the official plugin does (spec §3.3).
    pub duration_s: i64,
}

/// Reads a report into `rep`, a default one.
pub fn report(input: &[u8], rep: &mut Report) -> Option<()> {
    rep.rate_milli = 1000;
    Reader::new(input).object(|k, r| {
        match json::key_index(k, &["username", "state", "playerId", "playerName", "position", "playbackRate", "positionMs", "timestamp", "track"]) {
            Some(i @ 0..=3) => {
                r.string_to(match i {
                    0 => &mut rep.username,
                    1 => &mut rep.state,
                    2 => &mut rep.player_id,
                    _ => &mut rep.player_name,
                })?
            }
            Some(8) => track(r, rep)?,
            // position (s) and playbackRate scaled by 1000; positionMs and timestamp are integers.
            Some(i) => {
                let to = match i {
                    4 | 6 => &mut rep.position_ms,
                    5 => &mut rep.rate_milli,
                    _ => &mut rep.timestamp,
                };
                r.number_to(if i < 6 { 3 } else { 0 }, to)?;
            }
            None => r.skip()?,
        }
        Some(())
    })?;
    // Bounds that keep every later computation far from overflow: times up to the year
    // 5000, positions and durations up to 30 years, rates up to 1000×.
    rep.timestamp = rep.timestamp.clamp(0, 100_000_000_000);
    rep.position_ms = rep.position_ms.clamp(0, 1_000_000_000_000);
    rep.rate_milli = rep.rate_milli.clamp(0, 1_000_000);
    rep.duration_s = rep.duration_s.clamp(0, 1_000_000_000);
    Some(())
}

/// Decodes a track into the report, replacing what it held (the last `track` key wins
/// whole).
#[inline(never)]
fn track(r: &mut Reader, rep: &mut Report) -> Option<()> {
    let t = &mut rep.track;
    // Only these fields come from a track: the rest of `Want` is still the default.
    let mut texts = [&mut t.track_id, &mut t.title, &mut t.artist, &mut t.album, &mut t.album_artist, &mut t.album_mbid, &mut t.group_mbid, &mut t.recording_mbid, &mut t.artist0];
    for s in &mut texts {
        s.clear();
    }
    rep.duration_s = 0;
    r.object(|k, r| {
        match json::key_index(k, &["id", "title", "artist", "album", "albumArtist", "mbzAlbumId", "mbzReleaseGroupId", "mbzRecordingId", "duration", "artists"]) {
            Some(i @ 0..=7) => r.string_to(texts[i])?,
            Some(8) => r.number_to(0, &mut rep.duration_s)?,
            Some(_) => r.array(|r| {
                r.object(|k, r| {
                    if k == b"name" && texts[8].is_empty() {
                        r.string_to(texts[8])?;
                    } else {
                        r.skip()?;
                    }
                    Some(())
                })
            })?,
            None => r.skip()?,
        }
        Some(())
    })
}

/// The string fields of a small payload, by key (`username`, `connectionId`, `error`,
/// `reason`, `scheduleId`…: two at most), plus the one integer some carry (`code`), into
/// `out`.
pub fn fields(input: &[u8], keys: &[&str], out: &mut ([String; 2], i64)) -> Option<()> {
    let ([first, second], code) = out;
    Reader::new(input).object(|k, r| {
        if k == b"code" {
            r.number_to(0, code)?;
        } else if let Some(i) = json::key_index(k, keys) {
            r.string_to(if i == 0 { &mut *first } else { &mut *second })?;
        } else {
            r.skip()?;
        }
        Some(())
    })
}

/// The close code in a websocket error text (gorilla: `websocket: close 4004: …`);
/// anything else, such as a dropped connection, counts as 1006 (abnormal closure).
pub fn close_code(error: &str) -> u16 {
    let Some(i) = crate::text::find(error, "close ") else { return 1006 };
    let rest = &error.as_bytes()[i + 6..];
    let digits = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    // `uint` reads "" as 0: no digits is no code.
    match crate::text::uint(&rest[..digits], 10) {
        c @ 0..=65535 if digits > 0 => c as u16,
        _ => 1006,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `report` into a new report.
    fn report(input: &[u8]) -> Option<Report> {
        let mut rep = Report::default();
        super::report(input, &mut rep)?;
        Some(rep)
    }

    #[test]
    fn playback_report_as_navidrome_sends_it() {
        let input = br#"{"username":"alice","track":{"id":"4Fz","title":"Song","album":"Album","artist":"Artist A","albumArtist":"Artist A","artists":[{"id":"1","name":"Artist A","mbid":"b1"}],"albumArtists":[],"duration":215.37,"trackNumber":3,"discNumber":1,"mbzRecordingId":"0e6f"},"state":"playing","positionMs":45000,"playbackRate":1.5,"playerId":"c6f2","playerName":"NavidromeUI","timestamp":1783771200}"#;
        let r = report(input).unwrap();
        assert_eq!((r.username.as_str(), r.state.as_str(), r.player_id.as_str()), ("alice", "playing", "c6f2"));
        assert_eq!((r.position_ms, r.rate_milli, r.timestamp), (45000, 1500, 1783771200));
        assert_eq!((r.track.title.as_str(), r.track.artist.as_str(), r.track.album.as_str()), ("Song", "Artist A", "Album"));
        assert_eq!((r.track.track_id.as_str(), r.duration_s), ("4Fz", 215));
        assert_eq!((r.track.artist0.as_str(), r.track.recording_mbid.as_str(), r.player_name.as_str()), ("Artist A", "0e6f", "NavidromeUI"));
    }

    #[test]
    fn go_nil_slices_and_maps_are_empty() {
        let r = report(br#"{"username":"a","track":{"title":"x","artists":null,"albumArtists":null},"position":1}"#).unwrap();
        assert_eq!((r.track.title.as_str(), r.track.artist0.as_str()), ("x", ""));
        assert!(report(br#"{"username":"a","track":null}"#).is_some());
    }

    #[test]
    fn the_last_track_wins_whole() {
        let r = report(br#"{"track":{"title":"a","artists":[{"name":"x"}],"duration":5},"track":{"album":"b"}}"#).unwrap();
        assert_eq!((r.track.title.as_str(), r.track.artist0.as_str(), r.track.album.as_str(), r.duration_s), ("", "", "b", 0));
    }

    #[test]
    fn now_playing_position_is_seconds() {
        let r = report(br#"{"username":"a","track":{"title":"x"},"position":12}"#).unwrap();
        assert_eq!((r.position_ms, r.rate_milli, r.timestamp), (12000, 1000, 0));
    }

    #[test]
    fn malformed_reports_are_rejected() {
        for bad in [&b""[..], b"{\"username\":1}", b"{\"track\":[]}", b"{\"positionMs\":\"x\"}"] {
            assert!(report(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn close_codes_from_gorilla_errors() {
        assert_eq!(close_code("websocket: close 4004: Authentication failed."), 4004);
        assert_eq!(close_code("websocket: close 1006 (abnormal closure): unexpected EOF"), 1006);
        assert_eq!(close_code("read tcp: connection reset by peer"), 1006);
        assert_eq!(close_code("websocket: close 99999999: x"), 1006);
        assert_eq!(close_code("websocket: close 99999999999999999999999: x"), 1006);
        assert_eq!(close_code("websocket: close : x"), 1006);
        assert_eq!(close_code("websocket: close -1: x"), 1006);
        assert_eq!((close_code("close 0"), close_code("close 65535"), close_code("close 65536")), (0, 65535, 1006));
    }

    #[test]
    fn small_payload_fields() {
        let mut out = Default::default();
        fields(br#"{"connectionId":"c","code":1000,"reason":"bye"}"#, &["connectionId", "reason"], &mut out).unwrap();
        let (v, code) = out;
        assert_eq!((v[0].as_str(), v[1].as_str(), code), ("c", "bye", 1000));
    }
}
