//! Navidrome's host services in memory for native tests, answering with the wire JSON
//! of ABI §4 (errors as `{"error": …}` with Navidrome's texts).

use crate::text;
use crate::host::Level;
use crate::host::{Call, Host};
use crate::json::{Out, Reader};
use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::string::String;
use std::vec::Vec;

#[derive(Clone, Default)]
pub struct Fake {
    pub config: BTreeMap<String, String>,
    pub cache: BTreeMap<String, String>,
    /// Every setting read, and every cache key read, in order.
    pub config_reads: Vec<String>,
    pub cache_reads: Vec<String>,
    pub open: BTreeSet<String>,
    pub connects: Vec<(String, String)>,
    pub frames: Vec<(String, String)>,
    pub closes: Vec<(String, i64, String)>,
    pub timers: BTreeMap<String, (i64, bool)>,
    pub logs: Vec<(Level, String)>,
    pub refuse_dial: bool,
    /// HTTP routes by URL prefix: status, Location header, body; requests made.
    pub routes: Vec<(String, i64, String, String)>,
    pub requests: Vec<(String, String, String)>,
    /// What `artwork_gettrackurl` answers; empty: a public https URL.
    pub art_url: String,
    /// Navidrome's answer to `subsonicapi_callraw` ("": a PNG cover).
    pub raw: String,
    /// The wall clock (Unix ms), and when each pending timer falls due by it.
    pub clock: i64,
    pub due: BTreeMap<String, i64>,
}

/// The string token at `r`, decoded.
fn string(r: &mut Reader) -> Option<String> {
    let mut s = String::new();
    r.string_to(&mut s).map(|_| s)
}

fn fields(req: &[u8]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    Reader::new(req).object(|k, r| {
        let v = match r.peek() {
            b'"' => string(r)?,
            b'n' => {
                r.null();
                "null".into()
            }
            _ => text::num(r.int()?),
        };
        m.insert(String::from_utf8(k.to_vec()).unwrap(), v);
        Some(())
    }).expect("request is a flat JSON object");
    m
}

impl Fake {
    /// Answers requests whose URL starts with `prefix`.
    pub fn route(&mut self, prefix: &str, status: i64, location: &str, body: &str) {
        self.routes.insert(0, (prefix.into(), status, location.into(), body.into()));
    }

    pub fn urls(&self) -> Vec<&str> {
        self.requests.iter().map(|r| r.1.as_str()).collect()
    }

    /// Drops a pending timer with its due time; whether there was one.
    pub fn remove_timer(&mut self, id: &str) -> bool {
        self.due.remove(id);
        self.timers.remove(id).is_some()
    }
}

impl Host for Fake {
    fn call(&mut self, f: Call, req: &[u8]) -> Vec<u8> {
        let req_bytes = req;
        let m = if f == Call::Http { BTreeMap::new() } else { fields(req) };
        // One JSON object with a single string field, escaped as Navidrome's encoder does.
        let reply = |k: &str, v: &str| {
            let mut o = Out::new();
            o.raw("{").key(k).str(v).raw("}");
            o.buf
        };
        let err = |e: String| reply("error", &e);
        let id = |k: &str| m.get(k).cloned().unwrap_or_default();
        match f {
            Call::CacheGet => {
                self.cache_reads.push(id("key"));
                if let Some(v) = self.cache.get(&id("key")) {
                    let mut o = Out::new();
                    o.raw("{").key("value").str(v).key("exists").raw("true}");
                    return o.buf;
                }
            }
            Call::CacheSet => {
                self.cache.insert(id("key"), id("value"));
            }
            Call::CacheRemove => {
                self.cache.remove(&id("key"));
            }
            Call::WsConnect if self.refuse_dial => return err("failed to connect: refused".into()),
            Call::WsConnect => {
                assert!(self.open.insert(id("connectionId")), "connection id reused");
                self.connects.push((id("url"), id("connectionId")));
            }
            Call::WsSend | Call::WsClose if !self.open.contains(&id("connectionId")) => {
                return err(format!("connection ID {:?} not found", id("connectionId")));
            }
            Call::WsSend => self.frames.push((id("connectionId"), id("message"))),
            Call::WsClose => {
                self.open.remove(&id("connectionId"));
                self.closes.push((id("connectionId"), id("code").parse().unwrap(), id("reason")));
            }
            Call::Once | Call::Every => {
                let recurring = f == Call::Every;
                let delay = if recurring { id("cronExpression")[7..].trim_end_matches('s').parse().unwrap() } else { id("delaySeconds").parse().unwrap() };
                // Navidrome keeps the pending schedule and refuses the new one.
                if self.timers.contains_key(&id("scheduleId")) {
                    return err(format!("schedule ID {:?} already exists", id("scheduleId")));
                }
                self.timers.insert(id("scheduleId"), (delay, recurring));
                self.due.insert(id("scheduleId"), self.clock + delay * 1000);
            }
            Call::Cancel => {
                if !self.remove_timer(&id("scheduleId")) {
                    return err(format!("schedule ID {:?} not found", id("scheduleId")));
                }
            }
            // Sorted; Go's `omitempty` leaves an empty list out.
            Call::ConfigKeys if !self.config.is_empty() => {
                let mut o = Out::new();
                o.raw("{").key("keys").raw("[");
                for (i, k) in self.config.keys().enumerate() {
                    o.raw(if i > 0 { "," } else { "" }).str(k);
                }
                return o.raw("]}").buf.clone();
            }
            Call::ConfigKeys => {}
            Call::TrackArt if !self.art_url.is_empty() => return reply("url", &self.art_url),
            Call::TrackArt => return reply("url", &format!("https://nd.example.org/share/img/{}?size=300", id("id"))),
            Call::SubsonicRaw if !self.raw.is_empty() => return self.raw.as_bytes().to_vec(),
            Call::SubsonicRaw => return br#"{"contentType":"image/png","data":"UE5H"}"#.to_vec(),
            Call::Http => {
                let mut req = (String::new(), String::new(), String::new());
                Reader::new(req_bytes).object(|_, r| {
                    r.object(|k, r| {
                        match k {
                            b"method" => req.0 = string(r)?,
                            b"url" => req.1 = string(r)?,
                            b"body" => req.2 = String::from_utf8(crate::json::unbase64(r.raw_str()?)?).unwrap_or_default(),
                            _ => r.skip()?,
                        }
                        Some(())
                    })
                });
                self.requests.push(req.clone());
                let Some((_, status, loc, body)) = self.routes.iter().find(|r| req.1.starts_with(&r.0)) else {
                    return err(format!("no route to {}", req.1));
                };
                let mut o = Out::new();
                o.raw("{").key("result").raw("{").key("statusCode").int(*status);
                o.key("headers").raw("{").key("Location").str(loc).raw("}").key("body").b64(body.as_bytes()).raw("}}");
                return o.buf;
            }
        }
        b"{}".to_vec()
    }
    fn config(&mut self, key: &str) -> Option<String> {
        self.config_reads.push(key.into());
        self.config.get(key).cloned()
    }
    fn log(&mut self, level: Level, msg: &str) {
        self.logs.push((level, msg.into()));
    }

    fn now_ms(&mut self) -> i64 {
        self.clock
    }
}

/// A configuration of the listed keys, as the settings read it.
pub fn config<'a>(pairs: &'a [(&str, &str)]) -> impl FnMut(&str) -> Option<String> + 'a {
    |k| pairs.iter().find(|(x, _)| *x == k).map(|(_, v)| String::from(*v))
}
