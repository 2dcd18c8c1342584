//! Whose track is shown when one user plays on several players at once: the player whose
//! track started last (spec §6.3, v2 weakness W12). A pure decision over the shown want
//! and the other player's, kept beside it; playback reports (one worker for the whole
//! server) are its only callers.

use crate::presence::Want;

/// The shown want, and the latest want of one other player of the same user.
#[derive(Default)]
pub struct Players {
    pub shown: Option<Want>,
    pub other: Option<Want>,
}

/// What a report changed.
#[derive(PartialEq, Eq, Debug)]
pub enum Change {
    /// `shown` is new: show it.
    Show,
    /// Only `other` changed: nothing to send.
    Quiet,
    /// The shown player stopped and no other plays: clear (after the stop's grace).
    Stopped,
}

/// A `paused` within a second of the track's end is the track ending: Navidrome's web UI
/// pauses its `<audio>` before `ended`, then reports the next track at once.
#[inline(never)]
pub fn ended(position_ms: i64, duration_s: i64) -> bool {
    duration_s > 0 && position_ms >= duration_s * 1000 - 1000
}

impl Players {
    /// A report of `w.player`: `w` what it plays if `plays` (else it stopped), `start`: a
    /// `starting` report. Another player's report takes over only for a track that player
    /// was not known to play (its periodic progress changes nothing) and not while paused.
    #[inline(never)]
    pub fn report(&mut self, w: Want, plays: bool, start: bool, now: i64) -> Change {
        let mine = |x: &Option<Want>| x.as_ref().is_some_and(|x| x.player.as_bytes() == w.player.as_bytes());
        let (shown_mine, other_mine) = (mine(&self.shown), mine(&self.other));
        if !plays {
            if !shown_mine {
                if other_mine {
                    self.other = None;
                }
                return Change::Quiet;
            }
            // The shown player stopped: another that still plays is shown again.
            self.shown = self.other.take().filter(|o| !o.paused && (o.end_ms == 0 || o.end_ms > now));
            return if self.shown.is_some() { Change::Show } else { Change::Stopped };
        }
        if self.shown.is_none() || shown_mine {
            if other_mine {
                self.other = None;
            }
            self.shown = Some(w);
            return Change::Show;
        }
        let known = other_mine && self.other.as_ref().is_some_and(|o| o.track_id == w.track_id);
        if !w.paused && (start || !known) {
            self.other = self.shown.replace(w);
            Change::Show
        } else {
            self.other = Some(w);
            Change::Quiet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(player: &str, track: &str, end_ms: i64) -> Want {
        Want { player: player.into(), track_id: track.into(), title: track.into(), end_ms, ..Want::default() }
    }

    fn shown(p: &Players) -> (&str, &str) {
        p.shown.as_ref().map_or(("", ""), |w| (w.player.as_str(), w.track_id.as_str()))
    }

    #[test]
    fn one_player_shows_what_it_plays_and_its_stop_clears() {
        let mut p = Players::default();
        assert_eq!(p.report(want("web", "a", 100), true, true, 0), Change::Show);
        assert_eq!(p.report(want("web", "a", 100), true, false, 10), Change::Show);
        assert_eq!(p.report(want("web", "", 0), false, false, 20), Change::Stopped);
        assert!(p.shown.is_none() && p.other.is_none());
    }

    #[test]
    fn the_newest_track_is_shown_and_the_other_players_progress_changes_nothing() {
        let mut p = Players::default();
        p.report(want("web", "a", 1000), true, true, 0);
        assert_eq!(p.report(want("app", "b", 1000), true, true, 10), Change::Show);
        assert_eq!(shown(&p), ("app", "b"));
        // The web UI's periodic progress of its own track: the app stays shown.
        assert_eq!(p.report(want("web", "a", 1000), true, false, 60), Change::Quiet);
        assert_eq!(shown(&p), ("app", "b"));
        // A new track on the web UI (even reported as `playing`) takes over; a pause does not.
        assert_eq!(p.report(want("web", "c", 1000), true, false, 70), Change::Show);
        assert_eq!(shown(&p), ("web", "c"));
        let mut paused = want("app", "d", 0);
        paused.paused = true;
        assert_eq!(p.report(paused, true, true, 80), Change::Quiet);
        assert_eq!(shown(&p), ("web", "c"));
    }

    #[test]
    fn a_stop_of_the_shown_player_shows_the_other_again_if_it_still_plays() {
        let mut p = Players::default();
        p.report(want("web", "a", 1000), true, true, 0);
        p.report(want("app", "b", 1000), true, true, 10);
        // The other player's stop: nothing to send, and it is forgotten.
        assert_eq!(p.report(want("web", "", 0), false, false, 20), Change::Quiet);
        assert!(p.other.is_none());
        assert_eq!(p.report(want("app", "", 0), false, false, 30), Change::Stopped);
        // Again, the shown player stops first: the other's track, while it lasts.
        p.report(want("web", "a", 1000), true, true, 40);
        p.report(want("app", "b", 1000), true, true, 50);
        assert_eq!(p.report(want("app", "", 0), false, false, 60), Change::Show);
        assert_eq!(shown(&p), ("web", "a"));
        p.report(want("app", "b", 1000), true, true, 70);
        assert_eq!(p.report(want("app", "", 0), false, false, 1000), Change::Stopped, "the other's track has ended");
    }

    #[test]
    fn a_pause_at_the_end_is_the_end() {
        assert!(ended(179_500, 180) && ended(180_000, 180) && !ended(178_900, 180) && !ended(0, 0));
    }
}
