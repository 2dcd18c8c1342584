//! The ids Navidrome hands back in callbacks, built and parsed in one place. A
//! connection is `<gen>:<user>` (its generation, so a callback of an older connection
//! finds a newer link); a timer is `<kind>:<number>:<user>`, the number a connection
//! generation, a due time or a presence's time (ms), or a now-playing number.

use crate::text::{cut, int, join3, num};
use alloc::string::String;

/// The plugin's timers, in the order of `CODES`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// With the generation: the first heartbeat, then the recurring one.
    FirstBeat,
    Beat,
    /// Retries 1–3 of a later heartbeat, then of a first one, that found the send lock
    /// taken.
    Retry1,
    Retry2,
    Retry3,
    FirstRetry1,
    FirstRetry2,
    FirstRetry3,
    /// The send lock's lease, and the reconnect timer.
    SendLock,
    Reconnect,
    /// With the due time, which is also when they run: a presence flush, an idle close.
    Flush,
    IdleClose,
    /// With the want's time: its images and links.
    Lookups,
    /// With the now-playing number (hosts before 0.62): show it, and clear it after the
    /// track's end.
    LegacyShow,
    LegacyEnd,
}

const KINDS: [Kind; 15] = {
    use Kind::*;
    [FirstBeat, Beat, Retry1, Retry2, Retry3, FirstRetry1, FirstRetry2, FirstRetry3, SendLock, Reconnect, Flush, IdleClose, Lookups, LegacyShow, LegacyEnd]
};
/// Two letters each, as one text (no table of 15 slices to keep).
const CODES: &str = "b1hbr1r2r3f1f2f3slrcflicennpne";

impl Kind {
    /// Retry `tries + 1` of a heartbeat (`first`: of the first one).
    pub fn retry(first: bool, tries: u8) -> Kind {
        KINDS[(Kind::Retry1 as u8 + 3 * first as u8 + tries.min(2)) as usize]
    }

    /// Of a retry: whether it retries the first heartbeat, and which retry it is (1–3);
    /// the inverse of `retry`.
    pub fn retried(self) -> Option<(bool, u8)> {
        // The kinds before `Retry1` wrap around, past the six retries.
        let n = (self as u8).wrapping_sub(Kind::Retry1 as u8);
        if n >= 6 {
            return None;
        }
        let first = n >= 3;
        Some((first, n - 3 * first as u8 + 1))
    }

    /// The timer's id.
    pub fn id(self, n: i64, user: &str) -> String {
        numbered(code(self), ":", n, user)
    }
}

/// A kind's two letters.
fn code(k: Kind) -> &'static str {
    let i = 2 * k as usize;
    CODES.get(i..i + 2).unwrap_or_default()
}

/// A timer id's kind, number and user; `None` for an id that is not ours.
pub fn timer(id: &str) -> Option<(Kind, i64, &str)> {
    let (k, rest) = cut(id, b':')?;
    let (n, user) = cut(rest, b':')?;
    let i = (0..KINDS.len()).find(|&i| code(KINDS[i]) == k)?;
    Some((KINDS[i], int(n)?, user))
}

/// Connection `gen` of `user`.
#[inline(always)]
pub fn conn(gen: u32, user: &str) -> String {
    tail(gen as i64, ":", user)
}

/// A connection id's generation and user.
pub fn parse_conn(id: &str) -> Option<(u32, &str)> {
    let (n, user) = cut(id, b':')?;
    Some((u32::try_from(int(n)?).ok()?, user))
}

/// `<kind><sep><n><sep><user>`: timer ids (`:`) and the keys of connection records (`.`).
pub fn numbered(kind: &str, sep: &str, n: i64, user: &str) -> String {
    join3(kind, sep, &tail(n, sep, user))
}

/// `<n><sep><user>`: a connection id, and the end of `numbered`.
#[inline(always)]
fn tail(n: i64, sep: &str, user: &str) -> String {
    let mut s = num(n);
    s.push_str(sep);
    s.push_str(user);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_ids_round_trip() {
        for (i, k) in KINDS.iter().enumerate() {
            let id = k.id(-7 + i as i64, "a:b");
            assert_eq!(timer(&id), Some((*k, -7 + i as i64, "a:b")), "{id}");
        }
        assert_eq!(Kind::Flush.id(1714600000000, "alice"), "fl:1714600000000:alice");
        assert_eq!((Kind::retry(false, 0), Kind::retry(true, 2)), (Kind::Retry1, Kind::FirstRetry3));
        for first in [false, true] {
            for tries in 0..3 {
                assert_eq!(Kind::retry(first, tries).retried(), Some((first, tries + 1)));
            }
        }
        assert_eq!((Kind::Beat.retried(), Kind::SendLock.retried()), (None, None));
        for bad in ["", "fl", "fl:x:alice", "zz:1:alice", "someone-else"] {
            assert_eq!(timer(bad), None, "{bad}");
        }
    }

    #[test]
    fn connection_ids_round_trip() {
        assert_eq!(parse_conn(&conn(12, "a:b")), Some((12, "a:b")));
        assert_eq!(parse_conn("x:a"), None);
        assert_eq!(parse_conn("-1:a"), None);
    }
}
