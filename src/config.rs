//! Plugin configuration. Navidrome hands every top-level key of the stored config to the
//! plugin as a string; non-string values arrive as compact JSON with sorted object keys
//! (navidrome-plugin-abi §1.6), so `users` is `[{"token":"…","username":"…"}]`.

use crate::json::Reader;
use alloc::string::String;

/// Finds `user`'s Discord token in the `users` config value. Accepts the JSON array of
/// `{username, token}` and the older `alice:token,bob:token` text. Entries with an empty
/// name or token are skipped; for duplicates the last one wins (as the official plugin).
/// Errors name the problem, never a token.
#[inline(always)]
pub fn token_for(users: &str, user: &str) -> Result<Option<String>, &'static str> {
    let t = crate::text::trim(users);
    // The token found, "" for none (a found one is never empty).
    let mut found = String::new();
    if !matches!(t.as_bytes().first(), Some(b'[' | b'{')) {
        for e in crate::text::split(t, b',') {
            if let Some((u, tok)) = crate::text::cut(e, b':') {
                if !user.is_empty() && crate::text::trim(u) == user && !crate::text::trim(tok).is_empty() {
                    found = tok.into();
                }
            }
        }
    } else {
        Reader::new(t.as_bytes())
            .array(|r| {
                let (mut name, mut token) = (String::new(), String::new());
                r.texts(&["username", "token"], &mut [&mut name, &mut token])?;
                if !name.is_empty() && name == user && !token.is_empty() {
                    found = token;
                }
                Some(())
            })
            .ok_or("config `users` is not a JSON array of {username, token} objects")?;
    }
    // A Discord token is printable ASCII (base64 parts and dots), well under 512
    // characters; anything else (a stray control character, a pasted blob) would make an
    // Identify that Discord rejects, or one over its 4096-byte frame limit. Blanks around
    // it are dropped.
    let tok = crate::text::trim(&found);
    if found.is_empty() {
        Ok(None)
    } else if tok.is_empty() || tok.len() > 512 || !tok.bytes().all(|b| b.is_ascii_graphic()) {
        Err("config `users`: a token is not a Discord token (printable ASCII without spaces, at most 512 characters)")
    } else {
        Ok(Some(tok.into()))
    }
}

/// A configured user with their token. The settings, the application id among them, are
/// read only by the calls that need them (each key read is several host calls): a
/// heartbeat needs none.
pub struct User {
    pub name: String,
    pub token: String,
    set: core::cell::OnceCell<Settings>,
}

impl User {
    /// The user `name` if configured with a token. Errors name the setting, never a token.
    pub fn load(mut get: impl FnMut(&str) -> Option<String>, name: &str) -> Result<Option<User>, &'static str> {
        let Some(token) = token_for(get("users").as_deref().unwrap_or_default(), name)? else { return Ok(None) };
        Ok(Some(User { name: name.into(), token, set: Default::default() }))
    }

    /// The settings, read on first use.
    pub fn settings(&self, get: impl FnMut(&str) -> Option<String>) -> Result<&Settings, String> {
        if let Some(s) = self.set.get() {
            return Ok(s);
        }
        let s = Settings::load(get)?;
        Ok(self.set.get_or_init(|| s))
    }
}

/// How the activity looks and what it may fetch, from the plugin settings (keys as in the
/// official plugin where it has them, spec §3.10; booleans arrive as `true`/`false`).
#[derive(Default, Debug)]
pub struct Settings {
    /// The Discord application the activity is for (`clientid`).
    pub client_id: String,
    /// Configured status (index in `gateway::STATUSES`); `None`: follow the user's own.
    pub status: Option<u8>,
    /// How long a session with nothing to show stays open (ms); 0: forever.
    pub idle_ms: i64,
    /// `activityname`: what follows "Listening to" (spec §3.2).
    pub name: Name,
    /// Templates with `{track}`, `{artist}`, `{album}`, `{albumartist}`.
    pub name_template: String,
    pub details: String,
    pub state: String,
    pub large_text: String,
    pub pause: Pause,
    pub caa: bool,
    pub uguu: bool,
    pub spotify: bool,
    /// Player names or ids whose playback is never shown (comma-separated).
    pub ignore: String,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    #[default]
    Default,
    Track,
    Album,
    Artist,
    Custom,
}

/// What a paused player shows (v2 issues #42/#50): the paused activity, nothing, or the
/// paused activity for a while (ms).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    #[default]
    Show,
    Hide,
    HideAfter(i64),
}

impl Settings {
    pub fn load(mut get: impl FnMut(&str) -> Option<String>) -> Result<Settings, String> {
        let g: &mut dyn FnMut(&str) -> Option<String> = &mut get;
        let flag = |g: &mut dyn FnMut(&str) -> Option<String>, k: &str| val(g, k, "") == "true";
        let (caa, uguu, spotify) = (flag(g, "caaenabled"), flag(g, "uguuenabled"), flag(g, "spotifylinks"));
        let name = match crate::json::key_index(val(g, "activityname", "").as_bytes(), &["Track", "Album", "Artist", "Custom"]) {
            Some(i) => [Name::Track, Name::Album, Name::Artist, Name::Custom][i],
            None => Name::Default,
        };
        let pause_ms = minutes(g, "pauseminutes", 0)?;
        let pause = match val(g, "pausemode", "").as_str() {
            "hide" => Pause::Hide,
            "hideafter" if pause_ms > 0 => Pause::HideAfter(pause_ms),
            _ => Pause::Show,
        };
        Ok(Settings {
            client_id: val(g, "clientid", ""),
            status: crate::gateway::status_index(val(g, "status", "").as_bytes()),
            idle_ms: minutes(g, "idleminutes", 600_000)?,
            name,
            name_template: val(g, "activitynametemplate", ""),
            details: val(g, "detailstemplate", "{track}"),
            state: val(g, "statetemplate", "{artist}"),
            large_text: val(g, "largetexttemplate", "{album}"),
            pause,
            caa,
            uguu,
            spotify,
            ignore: val(g, "ignoreplayers", ""),
        })
    }

    /// Whether a player (by name or id) is on the ignore list; names compare exactly.
    pub fn ignores(&self, player_name: &str, player_id: &str) -> bool {
        crate::text::split(&self.ignore, b',').map(crate::text::trim).any(|p| !p.is_empty() && (p == player_name || p == player_id))
    }
}

/// A setting's text, `default` when unset or empty (an empty template keeps the default).
fn val(get: &mut dyn FnMut(&str) -> Option<String>, key: &str, default: &str) -> String {
    let mut t = get(key).unwrap_or_default();
    if t.is_empty() {
        t.push_str(default);
    }
    t
}

/// A whole number of minutes (the config form stores integers as JSON numbers, which
/// reach the plugin as text, ABI §1.6), in ms; `default` (ms) when unset, an error naming
/// `key` when not 0–1440.
fn minutes(get: &mut dyn FnMut(&str) -> Option<String>, key: &str, default: i64) -> Result<i64, String> {
    let Some(v) = get(key) else { return Ok(default) };
    match crate::text::int(crate::text::trim(&v)) {
        Some(m) if (0..=1440).contains(&m) => Ok(m * 60_000),
        _ => Err(crate::text::join3("config `", key, "` must be a whole number of minutes from 0 to 1440")),
    }
}

/// Discord application ids are snowflakes: 17–20 digits.
pub fn valid_client_id(id: &str) -> bool {
    (17..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_users_format() {
        let cfg = r#"[{"token":"t1","username":"alice"},{"token":"t2","username":"bob"}]"#;
        assert_eq!(token_for(cfg, "alice"), Ok(Some("t1".into())));
        assert_eq!(token_for(cfg, "bob"), Ok(Some("t2".into())));
        assert_eq!(token_for(cfg, "carol"), Ok(None));
        assert_eq!(token_for(cfg, "Alice"), Ok(None), "usernames are case-sensitive");
    }

    #[test]
    fn json_users_skip_empty_and_last_wins() {
        let cfg = r#"[{"token":"","username":"a"},{"token":"x","username":""},{"token":"1","username":"a"},{"username":"a","token":"2"}]"#;
        assert_eq!(token_for(cfg, "a"), Ok(Some("2".into())));
        assert_eq!(token_for(cfg, ""), Ok(None));
    }

    #[test]
    fn legacy_users_format() {
        let cfg = "alice:tok1, bob:tok2,carol:,alice:tok3";
        assert_eq!(token_for(cfg, "alice"), Ok(Some("tok3".into())));
        assert_eq!(token_for(cfg, "bob"), Ok(Some("tok2".into())));
        assert_eq!(token_for(cfg, "carol"), Ok(None));
        assert_eq!(token_for("", "alice"), Ok(None));
        // An entry with an empty name is skipped, as in the JSON format.
        assert_eq!(token_for("a:x, :tok", ""), Ok(None));
    }

    #[test]
    fn malformed_users_is_an_error_without_the_token() {
        let e = token_for(r#"[{"token":"secret","username":"a"}"#, "a").unwrap_err();
        assert!(!e.contains("secret"));
        assert!(token_for("[1,2]", "a").is_err());
    }

    #[test]
    fn tokens_must_look_like_discord_tokens() {
        assert_eq!(token_for(r#"[{"token":" t.1-_ ","username":"a"}]"#, "a"), Ok(Some("t.1-_".into())));
        let long = "k".repeat(513);
        for bad in ["k\\u0000k", "k k", "kö", &long] {
            let e = token_for(&[r#"[{"username":"a","token":""#, bad, r#""}]"#].concat(), "a").unwrap_err();
            assert!(e.contains("not a Discord token") && !e.contains(bad), "{e}");
            let other = [r#"[{"username":"b","token":""#, bad, r#""}]"#].concat();
            assert_eq!(token_for(&other, "a"), Ok(None), "another user's token is not checked");
        }
        assert!(token_for("a:k\u{7}k", "a").is_err());
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::load(crate::fake::config(pairs))
    }

    #[test]
    fn settings_defaults_and_options() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.name, s.pause, s.idle_ms, s.status), (Name::Default, Pause::Show, 600_000, None));
        assert_eq!((s.details.as_str(), s.state.as_str(), s.large_text.as_str()), ("{track}", "{artist}", "{album}"));
        assert!(!s.caa && !s.uguu && !s.spotify);
        let s = settings(&[("activityname", "Custom"), ("pausemode", "hideafter"), ("pauseminutes", "5"), ("caaenabled", "true"), ("spotifylinks", "false"), ("status", "dnd"), ("detailstemplate", "")]).unwrap();
        assert_eq!((s.name, s.pause, s.status), (Name::Custom, Pause::HideAfter(300_000), Some(2)));
        assert!(s.caa && !s.spotify);
        assert_eq!(s.details, "{track}", "an empty template keeps the default");
        assert_eq!(settings(&[("activityname", "Bogus"), ("pausemode", "hide")]).unwrap().name, Name::Default);
        for (v, n) in [("Track", Name::Track), ("Album", Name::Album), ("Artist", Name::Artist), ("track", Name::Default)] {
            assert_eq!(settings(&[("activityname", v)]).unwrap().name, n, "{v}");
        }
        assert_eq!(settings(&[("pausemode", "hideafter")]).unwrap().pause, Pause::Show, "no minutes: keep showing");
    }

    #[test]
    fn minute_settings_are_checked() {
        assert_eq!(settings(&[("idleminutes", "0")]).unwrap().idle_ms, 0);
        assert!(settings(&[("idleminutes", "-1")]).unwrap_err().contains("idleminutes"));
        assert!(settings(&[("pauseminutes", "1.5")]).unwrap_err().contains("pauseminutes"));
        assert!(settings(&[("idleminutes", "99999")]).is_err());
    }

    #[test]
    fn ignore_list_matches_name_or_id() {
        let s = settings(&[("ignoreplayers", "Sonixd, abc-123 ,")]).unwrap();
        assert!(s.ignores("Sonixd", "x") && s.ignores("NavidromeUI", "abc-123"));
        assert!(!s.ignores("sonixd", "x") && !s.ignores("", ""));
    }

    #[test]
    fn client_id_is_a_snowflake() {
        assert!(valid_client_id("123456789012345678"));
        assert!(!valid_client_id("12345"));
        assert!(!valid_client_id("12345678901234567a"));
    }
}
