//! Close codes: what each one means for the session (Discord's close-code table, spec
//! §1.7), and the two the client closes with itself.

/// Closing with this keeps the session resumable (any code but 1000 and 1001, §1.4).
pub const KEEP: u16 = 4000;
/// Closing with this ends the session at Discord: the next connection identifies (§1.3).
pub const END: u16 = 1000;

/// How a close code is handled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OnClose {
    /// Reconnect and Resume if session data is held.
    Resume,
    /// Reconnect with a new session (Identify).
    Identify,
    /// Reconnect later, slowly (4008 rate limited, 4015 too many sessions).
    SlowDown,
    /// Never reconnect for this user until the configuration changes.
    Fatal(&'static str),
}

impl OnClose {
    pub fn of(code: u16) -> OnClose {
        match code {
            4004 => OnClose::Fatal("Discord rejected the token (authentication failed): it is invalid or revoked; presence stopped for this user until the token is updated in the plugin settings"),
            // Sharding (4010, 4011), API version (4012), intents (4013, 4014): what the
            // client sends, so nothing a user can change; the logged code tells which.
            4010..=4014 => OnClose::Fatal("Discord rejected the client's gateway settings; presence stopped for this user"),
            // Resuming is refused (4003 not authenticated, 4007 bad seq, 4009 timed out).
            4003 | 4007 | 4009 => OnClose::Identify,
            4008 | 4015 => OnClose::SlowDown,
            _ => OnClose::Resume,
        }
    }
}
