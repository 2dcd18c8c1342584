//! Configuration: a stored config object turned into the plugin's string map as Navidrome
//! does (strings as is, other values as Go's compact JSON with sorted keys), or lines
//! `user`, `users`, `key=value`…; then the users lookup in both formats, the settings,
//! and a report and Hello through the plugin with that config.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nd::config::{self, Settings, User};
use nd::{go_json, World};
use serde_json::Value;
use std::collections::BTreeMap;

/// Go's `json.Marshal` of a float64 writes integral values below 1e21 without a fraction.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        v => String::from_utf8(go_json(v)).unwrap(),
    }
}

/// The users lookup on JSON that serde_json accepted: the last entry of `user` with a
/// non-empty token, or an error when it is not an array of objects with string fields or
/// that token, without blanks around it, is not 1–512 printable ASCII characters.
fn reference(v: &Value, user: &str) -> Result<Option<String>, ()> {
    let mut found = None;
    for e in v.as_array().ok_or(())? {
        // Go writes a nil map as null: the plugin reads it as an empty object.
        let empty = serde_json::Map::new();
        let o = if e.is_null() { Some(&empty) } else { e.as_object() };
        let field = |k| o.ok_or(()).and_then(|o| o.get(k).map_or(Ok(""), |x| x.as_str().ok_or(())));
        let (name, token) = (field("username")?, field("token")?);
        if !name.is_empty() && name == user && !token.is_empty() {
            found = Some(token.trim_matches(|c: char| c.is_ascii_whitespace()).to_string());
        }
    }
    match found {
        Some(t) if t.is_empty() || t.len() > 512 || !t.bytes().all(|b| b.is_ascii_graphic()) => Err(()),
        t => Ok(t),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (user, cfg): (String, BTreeMap<String, String>) = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(m)) => (m.get("_user").and_then(Value::as_str).unwrap_or("alice").into(), m.iter().map(|(k, v)| (k.clone(), go_value(v))).collect()),
        _ => {
            let mut lines = text.split('\n');
            let user = lines.next().unwrap_or("").to_string();
            let users = lines.next().unwrap_or("").to_string();
            let kv = lines.map(|l| l.split_once('=').unwrap_or((l, ""))).map(|(k, v)| (k.to_string(), v.to_string()));
            (user, kv.chain([("users".to_string(), users)]).collect())
        }
    };
    let users = cfg.get("users").cloned().unwrap_or_default();
    let got = config::token_for(&users, &user);
    if let Ok(Some(t)) = &got {
        assert!(!t.is_empty() && users.contains(t.trim()) || users.contains('\\'), "token {t:?} not in {users:?}");
    }
    let json = serde_json::from_str::<Value>(users.trim()).ok().filter(|v| v.is_array() || v.is_object());
    if let Some(v) = json {
        // Navidrome's own encoding of that value must read exactly as the reference.
        let canon = String::from_utf8(go_json(&v)).unwrap();
        let want = reference(&v, &user);
        assert_eq!(config::token_for(&canon, &user).map_err(drop), want, "{canon}");
        if let (Ok(a), Ok(b)) = (&got, &want) {
            assert_eq!(a, b, "{users}");
        }
    }
    let get = |k: &str| cfg.get(k).cloned();
    // Whole minutes 0..=1440 (Some(true)); a leading `+` or exotic blanks around the
    // number (never written by Go) may go either way.
    let minutes = |k| {
        get(k).map_or(Some(true), |v| {
            let t = v.trim_matches([' ', '\t', '\n', '\r']);
            (t == v.trim() && !t.starts_with('+')).then(|| t.parse::<i64>().is_ok_and(|m| (0..=1440).contains(&m)))
        })
    };
    let [idle, pause] = ["idleminutes", "pauseminutes"].map(minutes);
    match Settings::load(get) {
        Ok(s) => {
            assert!(idle != Some(false) && pause != Some(false));
            assert!((0..=86_400_000).contains(&s.idle_ms));
            assert_eq!(s.status.map(|i| nd::gateway::STATUSES[i as usize]), get("status").as_deref().filter(|v| nd::gateway::STATUSES.contains(v)));
            let _ = s.ignores(&user, &users);
        }
        Err(e) => assert!(idle != Some(true) || pause != Some(true), "{e}"),
    }
    let _ = (User::load(get, &user), config::valid_client_id(&user));

    // Through the plugin: no log line or error may show a token of this config.
    let mut w = World::new();
    w.h.fake.config = cfg.clone();
    let p = |v: Value| go_json(&v);
    let mut errs = vec![w.call(b'a', &p(serde_json::json!({"username": user})))];
    errs.push(w.call(b'p', &p(serde_json::json!({"username": user, "track": {"id": "t", "title": "T", "artist": "A", "album": "B", "duration": 100}, "state": "playing", "positionMs": 0, "playbackRate": 1, "playerId": "p", "playerName": "P", "timestamp": nd::T0}))));
    w.script(b"{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}");
    // Only a token shaped like Discord's (and found in no other value) can be told apart
    // from the plugin's own words in a log line.
    let shaped = |t: &str| t.len() >= 8 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) && t.bytes().any(|b| b.is_ascii_digit());
    let tokens: Vec<String> = match config::token_for(&users, &user) {
        Ok(Some(t)) if shaped(&t) && !user.contains(&t) && cfg.iter().all(|(k, v)| k == "users" || !(k.contains(&t) || v.contains(&t))) => vec![t],
        _ => vec![],
    };
    let errs = errs.into_iter().filter_map(Result::err);
    for l in w.h.fake.logs.iter().map(|(_, l)| l.clone()).chain(errs) {
        assert!(tokens.iter().all(|t| !l.contains(t)), "token logged or returned: {l}");
    }
});
