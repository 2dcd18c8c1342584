//! What goes over the socket: the frames Discord sends, decoded to what the session
//! machine reads, and the templates of the control frames the client sends (spec §1.2, §2).

use crate::json::{Out, Reader};
use alloc::string::String;
use alloc::vec::Vec;

/// Statuses an Update Presence may carry (Discord gateway-events).
pub const STATUSES: [&str; 4] = ["online", "idle", "dnd", "invisible"];

pub fn status_index(s: &[u8]) -> Option<u8> {
    crate::json::key_index(s, &STATUSES).map(|i| i as u8)
}

/// Frames the client sends besides the presence update (`presence::presence`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Frame {
    Identify,
    Resume { session_id: String, seq: i64 },
    Heartbeat(Option<i64>),
}

/// Writes a gateway frame at depth 1 (inside the `message` string of a send request).
pub fn frame(o: &mut Out, f: &Frame, token: &str) {
    match f {
        // Identify (op 2): user-account properties of a desktop client (spec §2.1), no
        // compression, intents 0.
        Frame::Identify => {
            o.raw(r#"{\"op\":2,\"d\":{\"token\":"#).str(token);
            o.raw(r#",\"intents\":0,\"properties\":{\"os\":\"Linux\",\"browser\":\"Discord Client\",\"device\":\"\"}}}"#);
        }
        Frame::Resume { session_id, seq } => {
            o.raw(r#"{\"op\":6,\"d\":{\"token\":"#).str(token);
            o.raw(r#",\"session_id\":"#).str(session_id).raw(r#",\"seq\":"#).int(*seq).raw("}}");
        }
        // Heartbeat (op 1): the last sequence number, null before the first dispatch.
        Frame::Heartbeat(seq) => {
            o.raw(r#"{\"op\":1,\"d\":"#);
            match seq {
                Some(s) => o.int(*s),
                None => o.raw("null"),
            };
            o.raw("}");
        }
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
    #[inline(never)]
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
pub fn session_entry(r: &mut Reader, out: &mut Vec<(String, u8)>) -> Option<()> {
    let (mut id, mut st) = (String::new(), None);
    r.object(|k, r| {
        match crate::json::key_index(k, &["session_id", "status"]) {
            Some(0) => id = r.string()?,
            Some(1) => st = status_index(r.raw_str()?),
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
pub fn ready_fields(d: &[u8]) -> (String, String, Vec<(String, u8)>) {
    let (mut sid, mut url, mut sessions) = (String::new(), String::new(), Vec::new());
    Reader::new(d).object(|k, r| {
        if r.text_into(k, &["session_id", "resume_gateway_url"], &mut [&mut sid, &mut url])? {
            return Some(());
        }
        if k == b"sessions" {
            r.array(|r| session_entry(r, &mut sessions))
        } else {
            r.skip()
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

    fn render(f: impl FnOnce(&mut Out)) -> String {
        let mut o = Out::new();
        o.open();
        f(&mut o);
        o.close();
        Reader::new(&o.buf).string().unwrap()
    }

    #[test]
    fn control_frames_are_exact() {
        let tok = "to\"k\\en";
        assert_eq!(
            render(|o| frame(o, &Frame::Identify, tok)),
            r#"{"op":2,"d":{"token":"to\"k\\en","intents":0,"properties":{"os":"Linux","browser":"Discord Client","device":""}}}"#
        );
        assert_eq!(render(|o| frame(o, &Frame::Heartbeat(None), tok)), r#"{"op":1,"d":null}"#);
        assert_eq!(render(|o| frame(o, &Frame::Heartbeat(Some(42)), tok)), r#"{"op":1,"d":42}"#);
        assert_eq!(
            render(|o| frame(o, &Frame::Resume { session_id: "s1".into(), seq: 9 }, "t")),
            r#"{"op":6,"d":{"token":"t","session_id":"s1","seq":9}}"#
        );
    }
}
