//! Navidrome host services as typed calls over one byte-level `Host::call` (ABI §4.0:
//! one JSON request in, one JSON response out, failures as `{"error": "…"}`). Requests
//! are written straight into the buffer that goes to the host, frames included.

use crate::gateway::Level;
use crate::json::{Out, Reader};
use alloc::string::String;
use alloc::vec::Vec;

/// The host functions this plugin imports from `extism:host/user`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fn {
    WsConnect,
    WsSend,
    WsClose,
    Once,
    Every,
    Cancel,
    CacheGet,
    CacheSet,
    CacheRemove,
}

/// What the ABI layer provides; tests provide a fake.
pub trait Host {
    fn call(&mut self, f: Fn, request: &[u8]) -> Vec<u8>;
    fn config(&mut self, key: &str) -> Option<String>;
    fn log(&mut self, level: Level, msg: &str);
}

/// Starts a request object; `key` takes care of the commas.
fn req() -> Out {
    let mut o = Out::new();
    o.raw("{");
    o
}

/// Sends the request and returns the response, or the host's error text.
fn send(h: &mut impl Host, f: Fn, mut o: Out) -> Result<Vec<u8>, String> {
    o.raw("}");
    let resp = h.call(f, &o.buf);
    let mut err = None;
    Reader::new(&resp).object(|k, r| {
        if k == b"error" {
            err = r.string();
        } else {
            r.skip()?;
        }
        Some(())
    });
    match err {
        Some(e) => Err(e),
        None => Ok(resp),
    }
}

pub fn cache_get(h: &mut impl Host, key: &str) -> Option<String> {
    let mut o = req();
    o.key("key").str(key);
    let resp = send(h, Fn::CacheGet, o).map_err(|e| h.log(Level::Warn, &e)).ok()?;
    let (mut value, mut exists) = (String::new(), false);
    Reader::new(&resp).object(|k, r| {
        match k {
            b"value" => value = r.string()?,
            b"exists" => exists = r.boolean()?,
            _ => r.skip()?,
        }
        Some(())
    })?;
    exists.then_some(value)
}

/// Stores a string written by `value` (at depth 1, inside the request's `value` string).
pub fn cache_set(h: &mut impl Host, key: &str, ttl_secs: i64, value: impl FnOnce(&mut Out)) {
    let mut o = req();
    o.key("key").str(key).key("value").open();
    value(&mut o);
    o.close().key("ttlSeconds").int(ttl_secs);
    if let Err(e) = send(h, Fn::CacheSet, o) {
        h.log(Level::Warn, &e);
    }
}

pub fn cache_put(h: &mut impl Host, key: &str, ttl_secs: i64, value: &str) {
    cache_set(h, key, ttl_secs, |o| {
        o.text(value);
    });
}

pub fn cache_remove(h: &mut impl Host, key: &str) {
    let mut o = req();
    o.key("key").str(key);
    if let Err(e) = send(h, Fn::CacheRemove, o) {
        h.log(Level::Warn, &e);
    }
}

pub fn ws_connect(h: &mut impl Host, url: &str, id: &str) -> Result<(), String> {
    let mut o = req();
    o.key("url").str(url).key("headers").raw("null").key("connectionId").str(id);
    send(h, Fn::WsConnect, o).map(drop)
}

/// Sends one text frame written by `frame` at depth 1 (inside `message`).
pub fn ws_send(h: &mut impl Host, id: &str, frame: impl FnOnce(&mut Out)) -> Result<(), String> {
    let mut o = req();
    o.key("connectionId").str(id).key("message").open();
    frame(&mut o);
    o.close();
    send(h, Fn::WsSend, o).map(drop)
}

pub fn ws_close(h: &mut impl Host, id: &str, code: u16, reason: &str) -> Result<(), String> {
    let mut o = req();
    o.key("connectionId").str(id).key("code").int(code as i64).key("reason").str(reason);
    send(h, Fn::WsClose, o).map(drop)
}

pub fn schedule_once(h: &mut impl Host, delay_secs: u32, id: &str) -> Result<(), String> {
    let mut o = req();
    o.key("delaySeconds").int(delay_secs as i64).key("payload").str("").key("scheduleId").str(id);
    send(h, Fn::Once, o).map(drop)
}

/// Recurring timer: Navidrome's cron accepts `@every <n>s` (ABI §4.5).
pub fn schedule_every(h: &mut impl Host, secs: u32, id: &str) -> Result<(), String> {
    let mut o = req();
    o.key("cronExpression").raw("\"@every ").int(secs as i64).raw("s\"");
    o.key("payload").str("").key("scheduleId").str(id);
    send(h, Fn::Every, o).map(drop)
}

pub fn cancel(h: &mut impl Host, id: &str) -> Result<(), String> {
    let mut o = req();
    o.key("scheduleId").str(id);
    send(h, Fn::Cancel, o).map(drop)
}
