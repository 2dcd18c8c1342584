//! Navidrome host services as typed calls over one byte-level `Host::call` (ABI §4.0:
//! one JSON request in, one JSON response out, failures as `{"error": "…"}`). Requests
//! are written straight into the buffer that goes to the host, frames included. The host
//! decodes a request into a Go struct, so a field at its zero value (an empty payload or
//! prefix, no headers) is left out.

use crate::json::{self, Out, Reader};
use alloc::string::String;
use alloc::vec::Vec;

/// Log levels, as Navidrome's `log_*` kernel functions name them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// The host functions this plugin imports from `extism:host/user`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Call {
    WsConnect,
    WsSend,
    WsClose,
    Once,
    Every,
    Cancel,
    CacheGet,
    CacheSet,
    CacheRemove,
    Http,
    TrackArt,
    SubsonicRaw,
    ConfigKeys,
}

/// What the ABI layer provides; tests provide a fake.
pub trait Host {
    fn call(&mut self, f: Call, request: &[u8]) -> Vec<u8>;
    fn config(&mut self, key: &str) -> Option<String>;
    fn log(&mut self, level: Level, msg: &str);
    /// Wall-clock time in Unix milliseconds (0 if unknown).
    fn now_ms(&mut self) -> i64;
}

/// A log line about one user: `<user>: <msg>`.
pub fn log(h: &mut impl Host, level: Level, user: &str, msg: &str) {
    h.log(level, &crate::text::join3(user, ": ", msg));
}

/// Starts a request object with its first field, a string; `key` takes care of the
/// commas after it.
fn req(key: &str, value: &str) -> Out {
    let mut o = Out::new();
    o.raw("{").key(key).str(value);
    o
}

/// Sends the request and returns the response, or the host's error text.
#[inline(never)]
fn send(h: &mut impl Host, f: Call, mut o: Out) -> Result<Vec<u8>, String> {
    o.raw("}");
    let resp = h.call(f, &o.buf);
    // A NUL, which no error text holds, until an `error` field replaces it.
    let mut err = String::from("\0");
    Reader::new(&resp).texts(&["error"], &mut [&mut err]);
    if err == "\0" { Ok(resp) } else { Err(err) }
}

/// `send` for calls whose response carries nothing but a possible error.
#[inline(never)]
fn done(h: &mut impl Host, f: Call, o: Out) -> Result<(), String> {
    send(h, f, o).map(drop)
}

/// Whether a host error says `what` (Navidrome's texts: `… not found`, `… already
/// exists`).
#[inline(always)]
pub fn says(e: &str, what: &str) -> bool {
    crate::text::find(e, what).is_some()
}

/// A failed cache call, logged with the key it was about.
fn cache_failed(h: &mut impl Host, what: &str, key: &str, e: &str) -> String {
    let mut msg = crate::text::join3("cache ", what, " of ");
    msg.push_str(key);
    msg.push_str(" failed: ");
    msg.push_str(e);
    h.log(Level::Warn, &msg);
    msg
}

/// `done` for a cache call about `key`, its failure logged.
fn cache_done(h: &mut impl Host, f: Call, o: Out, what: &str, key: &str) -> Result<(), String> {
    done(h, f, o).map_err(|e| cache_failed(h, what, key, &e))
}

/// The cached string at `key`, "" when absent; `Err` when the host failed (so a caller
/// can refuse to act on state it could not read).
pub fn cache_read(h: &mut impl Host, key: &str) -> Result<String, String> {
    let resp = send(h, Call::CacheGet, req("key", key)).map_err(|e| cache_failed(h, "read", key, &e))?;
    // Navidrome omits `exists` when false and `value` when empty (ABI §4.6); the plugin
    // stores no empty text (each record starts with a number), so "" is an absent entry.
    let mut value = String::new();
    Reader::new(&resp).texts(&["value"], &mut [&mut value]);
    Ok(value)
}

/// `cache_read` for values whose loss only costs a lookup or a default: "" when absent
/// or unread.
#[inline(always)]
pub fn cache_get(h: &mut impl Host, key: &str) -> String {
    cache_read(h, key).unwrap_or_default()
}

/// A `[]byte` field into `to`: Go sends it as base64 (ABI §4.0), decoded from the
/// response in place of a copy (base64 needs no JSON escapes).
fn bytes(r: &mut Reader, to: &mut Vec<u8>) -> Option<()> {
    *to = json::unbase64(r.raw_str()?)?;
    Some(())
}

/// An HTTP response: status, the headers the plugin reads, body.
#[derive(Default, Debug)]
pub struct Response {
    pub status: i64,
    pub location: String,
    pub retry_after: String,
    pub body: Vec<u8>,
}

/// `http_send` (ABI §4.3) to `https://<service><path>`, the URL written straight into
/// the request: 4xx/5xx are responses; transport errors and refused hosts are errors. A
/// request with a body (content type, bytes) is a POST that follows redirects; one
/// without, a HEAD that does not (its redirect is the answer). The response is read into
/// `out`, a default one.
pub fn http(h: &mut impl Host, service: &str, path: &str, auth: &str, body: Option<(&str, &[u8])>, timeout_ms: i64, out: &mut Response) -> Result<(), String> {
    let mut o = Out::new();
    o.raw(r#"{"request":{"method":"#).str(if body.is_some() { "POST" } else { "HEAD" }).raw(r#","url":"#);
    o.open().text("https://").text(service).text(path).close().raw(r#","headers":{"#);
    if !auth.is_empty() {
        o.key("Authorization").str(auth);
    }
    if let Some((ctype, data)) = body {
        o.key("Content-Type").str(ctype).raw("}").key("body").b64(data);
    } else {
        o.raw(r#"},"noFollowRedirects":true"#);
    }
    o.key("timeoutMs").int(timeout_ms).raw("}");
    let resp = send(h, Call::Http, o)?;
    Reader::new(&resp).object(|k, r| {
        if k != b"result" {
            return r.skip();
        }
        r.object(|k, r| {
            match json::key_index(k, &["statusCode", "body", "headers"]) {
                Some(0) => r.number_to(0, &mut out.status)?,
                Some(1) => bytes(r, &mut out.body)?,
                Some(2) => r.texts(&["Location", "Retry-After"], &mut [&mut out.location, &mut out.retry_after])?,
                _ => r.skip()?,
            }
            Some(())
        })
    })
    .ok_or("malformed http response")?;
    Ok(())
}

/// The config keys that are set, as the host lists them (`config_keys`, ABI §4.2; the
/// Config service is always there): `{"keys":["clientid","users"]}`.
pub fn config_keys(h: &mut impl Host) -> Result<String, String> {
    // No prefix: every key.
    let mut o = Out::new();
    o.raw("{");
    send(h, Call::ConfigKeys, o).map(crate::text::utf8)
}

/// Navidrome's public URL of a track's cover (ABI §4.7); it may be `http://localhost/…`.
pub fn track_art_url(h: &mut impl Host, track_id: &str, size: i64) -> Result<String, String> {
    let mut o = req("id", track_id);
    o.key("size").int(size);
    let resp = send(h, Call::TrackArt, o)?;
    let mut url = String::new();
    Reader::new(&resp).texts(&["url"], &mut [&mut url]);
    Ok(url)
}

/// A raw Subsonic API response (content type, bytes), `subsonicapi_callraw` (ABI §4.9).
pub fn subsonic_raw(h: &mut impl Host, uri: &str) -> Result<(String, Vec<u8>), String> {
    let resp = send(h, Call::SubsonicRaw, req("uri", uri))?;
    let mut out = (String::new(), Vec::new());
    Reader::new(&resp).object(|k, r| {
        match json::key_index(k, &["contentType", "data"]) {
            Some(0) => r.string_to(&mut out.0)?,
            Some(1) => bytes(r, &mut out.1)?,
            _ => r.skip()?,
        }
        Some(())
    });
    Ok(out)
}

/// Stores a string written by `value` (at depth 1, inside the request's `value` string)
/// for `ttl_secs`; 0 sends none: the host's default, a day (ABI §4.6).
pub fn cache_set(h: &mut impl Host, key: &str, ttl_secs: i64, value: &dyn Fn(&mut Out)) -> Result<(), String> {
    let mut o = req("key", key);
    o.key("value").open();
    value(&mut o);
    o.close();
    if ttl_secs > 0 {
        o.key("ttlSeconds").int(ttl_secs);
    }
    cache_done(h, Call::CacheSet, o, "write", key)
}

pub fn cache_remove(h: &mut impl Host, key: &str) -> Result<(), String> {
    cache_done(h, Call::CacheRemove, req("key", key), "removal", key)
}

#[inline(never)]
pub fn ws_connect(h: &mut impl Host, url: &str, id: &str) -> Result<(), String> {
    let mut o = req("url", url);
    o.key("connectionId").str(id);
    done(h, Call::WsConnect, o)
}

/// Sends one text frame written by `frame` at depth 1 (inside `message`).
#[inline(always)]
pub fn ws_send(h: &mut impl Host, id: &str, frame: &dyn Fn(&mut Out)) -> Result<(), String> {
    let mut o = req("connectionId", id);
    o.key("message").open();
    frame(&mut o);
    o.close();
    done(h, Call::WsSend, o)
}

pub fn ws_close(h: &mut impl Host, id: &str, code: u16, reason: &str) -> Result<(), String> {
    let mut o = req("connectionId", id);
    o.key("code").int(code as i64).key("reason").str(reason);
    done(h, Call::WsClose, o)
}

pub fn schedule_once(h: &mut impl Host, delay_secs: u32, id: &str) -> Result<(), String> {
    let mut o = req("scheduleId", id);
    o.key("delaySeconds").int(delay_secs as i64);
    done(h, Call::Once, o)
}

/// Recurring timer: Navidrome's cron accepts `@every <n>s` (ABI §4.5).
#[inline(never)]
pub fn schedule_every(h: &mut impl Host, secs: u32, id: &str) -> Result<(), String> {
    let mut o = req("scheduleId", id);
    o.key("cronExpression").raw("\"@every ").int(secs as i64).raw("s\"");
    done(h, Call::Every, o)
}

pub fn cancel(h: &mut impl Host, id: &str) -> Result<(), String> {
    done(h, Call::Cancel, req("scheduleId", id))
}
