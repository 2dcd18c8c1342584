//! Plugin configuration. Navidrome hands every top-level key of the stored config to the
//! plugin as a string; non-string values arrive as compact JSON with sorted object keys
//! (navidrome-plugin-abi §1.6), so `users` is `[{"token":"…","username":"…"}]`.

use crate::json::Reader;
use alloc::string::String;

/// Finds `user`'s Discord token in the `users` config value. Accepts the JSON array of
/// `{username, token}` and the older `alice:token,bob:token` text. Entries with an empty
/// name or token are skipped; for duplicates the last one wins (as the official plugin).
/// Errors name the problem, never a token.
pub fn token_for(users: &str, user: &str) -> Result<Option<String>, &'static str> {
    let t = users.trim();
    if !t.starts_with(['[', '{']) {
        let hit = t
            .split(',')
            .filter_map(|e| e.split_once(':'))
            .filter(|(u, tok)| u.trim() == user && !tok.trim().is_empty())
            .last();
        return Ok(hit.map(|(_, tok)| tok.trim().into()));
    }
    let mut found = None;
    Reader::new(t.as_bytes())
        .array(|r| {
            let (mut name, mut token) = (String::new(), String::new());
            r.object(|k, r| {
                match k {
                    b"username" => name = r.string()?,
                    b"token" => token = r.string()?,
                    _ => r.skip()?,
                }
                Some(())
            })?;
            if !name.is_empty() && name == user && !token.is_empty() {
                found = Some(token);
            }
            Some(())
        })
        .ok_or("config `users` is not a JSON array of {username, token} objects")?;
    Ok(found)
}

/// A whole number of minutes (the config form stores integers as JSON numbers, which
/// reach the plugin as text, ABI §1.6).
pub fn minutes(v: &str) -> Result<i64, &'static str> {
    match v.trim().parse::<i64>() {
        Ok(m) if (0..=1440).contains(&m) => Ok(m),
        _ => Err("config `idleminutes` must be a whole number of minutes from 0 to 1440"),
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
    }

    #[test]
    fn malformed_users_is_an_error_without_the_token() {
        let e = token_for(r#"[{"token":"secret","username":"a"}"#, "a").unwrap_err();
        assert!(!e.contains("secret"));
        assert!(token_for("[1,2]", "a").is_err());
    }

    #[test]
    fn idle_minutes() {
        assert_eq!(minutes("10"), Ok(10));
        assert_eq!(minutes("0"), Ok(0));
        assert!(minutes("-1").unwrap_err().contains("idleminutes"));
        assert!(minutes("1.5").is_err() && minutes("x").is_err() && minutes("99999").is_err());
    }

    #[test]
    fn client_id_is_a_snowflake() {
        assert!(valid_client_id("123456789012345678"));
        assert!(!valid_client_id("12345"));
        assert!(!valid_client_id("12345678901234567a"));
    }
}
