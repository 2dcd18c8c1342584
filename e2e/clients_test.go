package e2e

// Real client patterns in a real Navidrome v0.63.2, each as the client sends it through the
// Subsonic API (Navidrome's own web UI is driven in Chromium in webui_test.go):
//
//   - a player that announces the next track with `starting` only (no `stopped` for the one
//     that ended), as Feishin-like clients do, and says nothing when its queue ends;
//   - a player that only calls `scrobble` (`submission=false` when a track starts,
//     `submission=true` near its end), never reportPlayback;
//   - the same track looped (`starting` again, `playing` back at 0, or the web UI's
//     `stopped` + `starting` + `playing`);
//   - two players of one user at once.
//
// A client that says nothing when it stops relies on Navidrome's own session expiry: a
// playing session expires its remaining time + 5 s after the last report, and the plugin
// gets an `expired` report then. The tracks are short (8 s) so that this happens in the test.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The client scenarios' album (track numbers 1–3) and the web UI's (webui_test.go).
const (
	patternAlbum  = "Muster · パターン"
	patternArtist = "Ансамбль E2E"
	// expiryGrace is what Navidrome adds to a playing session's remaining time before it
	// expires it (core/scrobbler/play_tracker.go, remainingTTL).
	expiryGrace = 5 * time.Second
)

var (
	patOne  = &Track{N: 1, File: "p1-one.flac", Title: "Erster Satz ①", Artist: patternArtist, Album: patternAlbum, Seconds: 8}
	patTwo  = &Track{N: 2, File: "p2-two.flac", Title: "Второй «финал»", Artist: patternArtist, Album: patternAlbum, Seconds: 8}
	patLoop = &Track{N: 3, File: "p3-loop.flac", Title: "Loop ∞ ループ", Artist: patternArtist, Album: patternAlbum, Seconds: 8}
	// patternTracks are the client scenarios' own tracks; the two-player scenario also uses
	// the long tracks of the main library (library_test.go).
	patternTracks = []*Track{patOne, patTwo, patLoop}
)

// addTracks writes tracks (FLAC silence of their exact durations, tagged as one album per
// Album, numbered by N) into dir.
func addTracks(t *testing.T, dir string, tracks ...*Track) {
	t.Helper()
	for _, tr := range tracks {
		writeTrack(t, dir, tr, "2025")
	}
}

// findTracks waits until the library scan has every track with its tags, and fills in
// the ids; it returns the album id of the first.
func findTracks(t *testing.T, s Subsonic, tracks ...*Track) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := s.Call(t, "search3", url.Values{"query": {""}, "songCount": {"500"}, "artistCount": {"0"}, "albumCount": {"0"}})
		res, _ := r["searchResult3"].(map[string]any)
		songs, _ := res["song"].([]any)
		found, album := 0, ""
		for _, tr := range tracks {
			for _, so := range songs {
				m := so.(map[string]any)
				if m["title"] == tr.Title && m["artist"] == tr.Artist && m["album"] == tr.Album && int(m["duration"].(float64)) == tr.Seconds {
					tr.ID = m["id"].(string)
					if album == "" {
						album, _ = m["albumId"].(string)
					}
					found++
					break
				}
			}
		}
		if found == len(tracks) {
			return album
		}
		if time.Now().After(deadline) {
			t.Fatalf("the library scan found %d of %d tracks within 60 s", found, len(tracks))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// scrobble is a legacy player's call: submission=false announces the track it starts
// (Navidrome makes it a `playing` report at position 0), submission=true scrobbles it.
func scrobble(t *testing.T, p Subsonic, tr *Track, submission bool) sent {
	t.Helper()
	from := time.Now()
	p.Call(t, "scrobble", url.Values{"id": {tr.ID}, "submission": {fmt.Sprint(submission)}})
	return sent{from, time.Now()}
}

// sleepUntil waits for a moment of the scenario's own clock (a player's position).
func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// activityOf returns the one activity of a presence update.
func activityOf(t *testing.T, f Frame) Activity {
	t.Helper()
	p := presenceOf(t, f)
	if len(p.Activities) != 1 {
		t.Fatalf("want one activity, got %s", redact(f.Raw))
	}
	return p.Activities[0]
}

// presences lists the presence updates in frames, for messages: the title shown, or
// "clear".
func presences(frames []Frame) string {
	var out []string
	for _, f := range frames {
		if f.Op != 3 {
			continue
		}
		var p PresenceUpdate
		_ = json.Unmarshal(f.D, &p)
		switch {
		case len(p.Activities) == 0:
			out = append(out, f.At.Format("15:04:05.000")+" clear")
		default:
			a := p.Activities[0]
			out = append(out, fmt.Sprintf("%s %q start %d end %d", f.At.Format("15:04:05.000"), a.Details, a.Timestamps.Start, a.Timestamps.End))
		}
	}
	if len(out) == 0 {
		return "  (no presence update)"
	}
	return "  " + strings.Join(out, "\n  ")
}

// noPresenceBetween fails if a presence update (a clear or any activity) is among
// frames[from:to], with why it should not be there.
func noPresenceBetween(t *testing.T, fake *FakeDiscord, from, to int, why string) {
	t.Helper()
	frames, _, _ := fake.Snapshot()
	to = min(to, len(frames))
	if from < to && countOp(frames[from:to], 3) != 0 {
		t.Errorf("%s; presence updates:\n%s", why, presences(frames[from:to]))
	}
}

// waitExpiryClear waits for the clear that follows the end of a track nobody reported the
// end of: Navidrome expires the session 5 s after the track's end (the activity's end
// timestamp) and the plugin clears then. It must come no sooner than the end, and soon
// after the expiry (the plugin may space it up to 4 s from the previous update).
func waitExpiryClear(t *testing.T, fake *FakeDiscord, from int, end time.Time, what string) int {
	t.Helper()
	i := fake.WaitFrame(t, from, time.Until(end)+expiryGrace+20*time.Second, "clear after "+what, isClear)
	frames, _, _ := fake.Snapshot()
	at := frames[i].At
	switch d := at.Sub(end); {
	case d < 0:
		t.Errorf("%s: cleared %v before the track's end:\n%s", what, -d.Round(time.Millisecond), presences(frames[from:i+1]))
	case d > expiryGrace+6*time.Second:
		t.Errorf("%s: cleared %v after the track's end (Navidrome's session expires %v after it):\n%s",
			what, d.Round(time.Millisecond), expiryGrace, presences(frames[from:i+1]))
	default:
		t.Logf("%s: cleared %v after the track's end", what, d.Round(time.Millisecond))
	}
	noPresenceBetween(t, fake, from, i, what+": a presence update before the clear")
	return i
}

// endOf is the activity's end timestamp.
func endOf(t *testing.T, f Frame) time.Time {
	t.Helper()
	return time.UnixMilli(activityOf(t, f).Timestamps.End)
}

// TestClientPatternsNavidrome063 runs each client pattern in one Navidrome, one after the
// other; each ends with the presence cleared.
func TestClientPatternsNavidrome063(t *testing.T) {
	binary := requireEnv(t, "NDP_E2E_NAVIDROME")
	ndp := requireEnv(t, "NDP_E2E_PACKAGE")
	music := makeLibrary(t)
	addTracks(t, music, patternTracks...)
	fake := startFakeDiscord(t)
	nd := startNavidrome(t, binary, music, ndp, fake.CAFile, port+4, "")
	fake.Diagnose = func() string { return pluginProblems(nd.Log()) }
	nd.CreateAdmin(t)
	setup := Subsonic{n: nd, Client: "e2e-setup"}
	waitForLibrary(t, setup)
	findTracks(t, setup, patternTracks...)
	configurePluginWith(t, nd, false)
	c := &clientRun{nd: nd, fake: fake}

	t.Run("AutoNextStarting", c.autoNextStarting)
	t.Run("ScrobbleOnly", c.scrobbleOnly)
	t.Run("Loop", c.loop)
	t.Run("TwoPlayers", func(t *testing.T) {
		t.Run("NewestShown", c.twoPlayersNewestShown)
		t.Run("ProgressOfOther", c.twoPlayersProgressOfOther)
		t.Run("StopOfShown", c.twoPlayersStopOfShown)
	})

	// The whole run on one connection (nothing here drops it; the idle close is 10 min
	// away), within Discord's presence rate, and no token in a log.
	frames, conns, _ := fake.Snapshot()
	if n := countOp(frames, 2); len(conns) != 1 || n != 1 {
		t.Errorf("%d connections and %d Identify frames in the whole run, want 1 and 1", len(conns), n)
	}
	var updates []time.Time
	for _, f := range frames {
		if f.Op == 3 {
			updates = append(updates, f.At)
		}
	}
	for k := 5; k < len(updates); k++ {
		if d := updates[k].Sub(updates[k-5]); d < 20*time.Second {
			t.Errorf("6 presence updates within %v (Discord allows 5 per 20 s)", d.Round(time.Millisecond))
		}
	}
	t.Logf("%d presence updates in all", len(updates))
	checkLogs(t, nd.Log())
	logReportSequence(t, nd.Log())
}

type clientRun struct {
	nd   *Navidrome
	fake *FakeDiscord
}

func (c *clientRun) next() int { frames, _, _ := c.fake.Snapshot(); return len(frames) }

func (c *clientRun) frame(i int) Frame { frames, _, _ := c.fake.Snapshot(); return frames[i] }

const frameWait = 30 * time.Second

// autoNextStarting: a player that announces each track with `starting` (and progress with
// `playing`), never `stopped`: at a track's end it starts the next one, and when its queue
// ends it says nothing. Expected: the next track replaces the one that ended with no clear
// in between, progress at the clock's position changes nothing, and the presence clears
// after the last track's end (Navidrome's expiry), not before.
func (c *clientRun) autoNextStarting(t *testing.T) {
	fake := c.fake
	p := Subsonic{n: c.nd, Client: "Feishin"} // no client unique id: the player record is the player
	from := c.next()
	w := reportPlayback(t, p, "starting", patOne, 0)
	began := w.from
	i := fake.WaitFrame(t, from, frameWait, "presence of the first track", isPresence(patOne.Title))
	checkActivity(t, defaultImages, fake, c.frame(i), patOne, w, 0, false)

	// Progress half-way, at the position the clock gives.
	sleepUntil(began.Add(4 * time.Second))
	reportPlayback(t, p, "playing", patOne, time.Since(began).Milliseconds())

	// The track ends: the player starts the next one by itself, with `starting` only.
	sleepUntil(began.Add(time.Duration(patOne.Seconds) * time.Second))
	w = reportPlayback(t, p, "starting", patTwo, 0)
	began = w.from
	j := fake.WaitFrame(t, i+1, frameWait, "presence of the next track", isPresence(patTwo.Title))
	checkActivity(t, defaultImages, fake, c.frame(j), patTwo, w, 0, false)
	noPresenceBetween(t, fake, i+1, j, "between the first track and the next one (want no clear, and nothing for progress at the clock's position)")
	sleepUntil(began.Add(3 * time.Second))
	reportPlayback(t, p, "playing", patTwo, time.Since(began).Milliseconds())

	// The queue ends: nothing more from the player.
	waitExpiryClear(t, fake, j+1, endOf(t, c.frame(j)), "the queue's end")
}

// scrobbleOnly: a player that only calls scrobble: submission=false as a track starts,
// submission=true near its end; then the next track; then the same track again (a loop);
// then nothing. Expected: each start shows its track from position 0, the submission
// changes nothing, the loop restarts the timestamps, and the presence clears after the
// last track's end.
func (c *clientRun) scrobbleOnly(t *testing.T) {
	fake := c.fake
	p := Subsonic{n: c.nd, Client: "e2e-scrobble-only"}
	dur := time.Duration(patOne.Seconds) * time.Second
	from := c.next()
	w := scrobble(t, p, patOne, false)
	began := w.from
	i := fake.WaitFrame(t, from, frameWait, "presence of the first track (now playing)", isPresence(patOne.Title))
	checkActivity(t, defaultImages, fake, c.frame(i), patOne, w, 0, false)
	sleepUntil(began.Add(dur - 2*time.Second))
	scrobble(t, p, patOne, true)

	sleepUntil(began.Add(dur))
	w = scrobble(t, p, patTwo, false)
	began = w.from
	j := fake.WaitFrame(t, i+1, frameWait, "presence of the next track (now playing)", isPresence(patTwo.Title))
	checkActivity(t, defaultImages, fake, c.frame(j), patTwo, w, 0, false)
	noPresenceBetween(t, fake, i+1, j, "between the first track and the next one (want no clear; a submission changes nothing)")
	sleepUntil(began.Add(dur - 2*time.Second))
	scrobble(t, p, patTwo, true)

	// The same track again: its timestamps start over.
	sleepUntil(began.Add(dur))
	w = scrobble(t, p, patTwo, false)
	lo, _ := w.secondsMs()
	k := fake.WaitFrame(t, j+1, frameWait, "presence of the track played again", func(f Frame) bool {
		return isPresence(patTwo.Title)(f) && activityOf(t, f).Timestamps.Start >= lo
	})
	checkActivity(t, defaultImages, fake, c.frame(k), patTwo, w, 0, false)
	noPresenceBetween(t, fake, j+1, k, "between the track and its repetition (want no clear)")
	sleepUntil(w.from.Add(dur - 2*time.Second))
	scrobble(t, p, patTwo, true)

	waitExpiryClear(t, fake, k+1, endOf(t, c.frame(k)), "the last scrobbled track's end")
}

// loop: one track on repeat, the restart told three ways a player may tell it: `starting`
// again at 0, `playing` back at 0 (as a seek), and the web UI's `paused` and `stopped` at
// the end then `starting` and `playing` at 0. Expected: each round shows the track from its
// new start (end = start + duration) right after the last, with nothing in between (no
// clear, no paused presence: the web UI's pause and stop are the round's end, followed at
// once by the next round), and the clear after the last round's end.
func (c *clientRun) loop(t *testing.T) {
	fake := c.fake
	p := Subsonic{n: c.nd, Client: "e2e-loop-player", UniqueID: "e2e-loop-player-1"}
	dur := time.Duration(patLoop.Seconds) * time.Second
	from := c.next()
	w := reportPlayback(t, p, "starting", patLoop, 0)
	i := fake.WaitFrame(t, from, frameWait, "presence of the looped track", isPresence(patLoop.Title))
	checkActivity(t, defaultImages, fake, c.frame(i), patLoop, w, 0, false)
	rounds := []struct {
		how    string
		report func() sent
	}{
		{"starting again", func() sent { return reportPlayback(t, p, "starting", patLoop, 0) }},
		{"playing at 0", func() sent { return reportPlayback(t, p, "playing", patLoop, 0) }},
		// What Navidrome's web UI sends when a track ends: its <audio> element fires pause
		// before ended, so paused and stopped at the end, then the next round's starting and
		// playing, all within milliseconds.
		{"the web UI's paused and stopped at the end, starting, playing", func() sent {
			reportPlayback(t, p, "paused", patLoop, int64(patLoop.Seconds)*1000)
			reportPlayback(t, p, "stopped", patLoop, int64(patLoop.Seconds)*1000)
			w := reportPlayback(t, p, "starting", patLoop, 0)
			w.to = reportPlayback(t, p, "playing", patLoop, 0).to
			return w
		}},
	}
	for _, r := range rounds {
		sleepUntil(w.from.Add(dur))
		w = r.report()
		lo, _ := w.secondsMs()
		j := fake.WaitFrame(t, i+1, frameWait, "presence of the next round ("+r.how+")", func(f Frame) bool {
			if f.Op != 3 || isClear(f) {
				return f.Op == 3
			}
			a := activityOf(t, f)
			return a.Details == patLoop.Title && a.Timestamps.End != 0 && a.Timestamps.Start >= lo
		})
		if isClear(c.frame(j)) {
			frames, _, _ := fake.Snapshot()
			t.Fatalf("round restarted by %s: cleared instead of showing the track again:\n%s", r.how, presences(frames[i:]))
		}
		checkActivity(t, defaultImages, fake, c.frame(j), patLoop, w, 0, false)
		noPresenceBetween(t, fake, i+1, j, "between two rounds ("+r.how+"): want the next round right after the last (no clear, "+
			"no paused presence of the round that ended)")
		i = j
	}
	waitExpiryClear(t, fake, i+1, endOf(t, c.frame(i)), "the last round's end")
}

// Two players of one user: a web UI tab and a Feishin-like player, each on a long track of
// the main library. The player whose track started last is the one shown.

func (c *clientRun) twoPlayers() (web, other Subsonic) {
	return Subsonic{n: c.nd, Client: webUI, UniqueID: "e2e-webui-tab-two"}, Subsonic{n: c.nd, Client: "Feishin"}
}

// bothPlaying starts trackA on the web UI tab, then trackB on the other player, and
// returns the index of B's presence and A's starting window.
func (c *clientRun) bothPlaying(t *testing.T, web, other Subsonic) (int, sent) {
	fake := c.fake
	from := c.next()
	wa := reportPlayback(t, web, "starting", trackA, 0)
	i := fake.WaitFrame(t, from, frameWait, "presence of the first player's track", isPresence(trackA.Title))
	checkActivity(t, defaultImages, fake, c.frame(i), trackA, wa, 0, false)
	wb := reportPlayback(t, other, "starting", trackB, 0)
	j := fake.WaitFrame(t, i+1, frameWait, "presence of the second player's track", isPresence(trackB.Title))
	checkActivity(t, defaultImages, fake, c.frame(j), trackB, wb, 0, false)
	return j, wa
}

// reportSettled reports state for tr from p and waits until the report has certainly been
// acted on: the plugin handled it (Navidrome's log), any update it deferred to keep 4 s
// between updates (after the presence update at index last) would have gone out, and, for
// a stop, the 5 s the plugin waits for a next track before it clears are over.
func (c *clientRun) reportSettled(t *testing.T, p Subsonic, state string, tr *Track, positionMs int64, last int) sent {
	t.Helper()
	logAt := len(c.nd.Log())
	w := reportPlayback(t, p, state, tr, positionMs)
	c.nd.WaitLog(t, logAt, 10*time.Second, "the "+state+" report", func(l string) bool {
		return strings.Contains(l, "Sending PlaybackReport") && strings.Contains(l, "state="+state)
	})
	until := maxTime(c.frame(last).At.Add(4500*time.Millisecond), w.to.Add(1500*time.Millisecond))
	if state == "stopped" {
		until = maxTime(until, w.to.Add(stopGrace+2*time.Second))
	}
	sleepUntil(until)
	return w
}

// stopGrace is how long the plugin waits after a stop for the next track before it clears.
const stopGrace = 5 * time.Second

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// twoPlayersNewestShown: A on the web UI, then B on the other player: B is shown. The web
// UI stops while the other still plays: nothing changes, even after the stop's grace.
// Then the other player stops: cleared 5 s later.
func (c *clientRun) twoPlayersNewestShown(t *testing.T) {
	web, other := c.twoPlayers()
	j, _ := c.bothPlaying(t, web, other)
	c.reportSettled(t, web, "stopped", trackA, 5_000, j)
	noPresenceBetween(t, c.fake, j+1, c.next(), "the first player stopped while the second plays on (want its track to stay)")
	w := reportPlayback(t, other, "stopped", trackB, 8_000)
	waitClear(t, c.fake, j+1, w)
}

// twoPlayersProgressOfOther: while B (the newest) is shown, the first player sends its
// periodic progress report for A at the position its clock gives (the web UI does so every
// minute). That is no new playback: B stays.
func (c *clientRun) twoPlayersProgressOfOther(t *testing.T) {
	web, other := c.twoPlayers()
	j, wa := c.bothPlaying(t, web, other)
	c.reportSettled(t, web, "playing", trackA, time.Since(wa.from).Milliseconds(), j)
	frames, _, _ := c.fake.Snapshot()
	if countOp(frames[j+1:], 3) != 0 {
		t.Errorf("the first player's periodic progress report (its track at the clock's position) replaced the newest "+
			"player's track %q (want it to stay):\n%s", trackB.Title, presences(frames[j+1:]))
	}
	reportPlayback(t, web, "stopped", trackA, time.Since(wa.from).Milliseconds())
	w := reportPlayback(t, other, "stopped", trackB, 8_000)
	waitClear(t, c.fake, c.next(), w)
}

// twoPlayersStopOfShown: B (the newest) is shown and its player stops while the first
// player still plays A. Expected: A is shown again (with A's own timestamps), and nothing
// is cleared; the clear comes 5 s after the first player stops too.
func (c *clientRun) twoPlayersStopOfShown(t *testing.T) {
	web, other := c.twoPlayers()
	j, wa := c.bothPlaying(t, web, other)
	c.reportSettled(t, other, "stopped", trackB, 8_000, j)
	frames, _, _ := c.fake.Snapshot()
	var shownA *Frame
	cleared := false
	for k := j + 1; k < len(frames); k++ {
		if isClear(frames[k]) {
			cleared = true
		}
		if isPresence(trackA.Title)(frames[k]) && shownA == nil {
			shownA = &frames[k]
		}
	}
	if cleared || shownA == nil {
		t.Errorf("the newest player stopped while the first still plays %q: want that track shown again and no clear; "+
			"presence updates after the stop:\n%s", trackA.Title, presences(frames[j+1:]))
	}
	if shownA != nil {
		checkActivity(t, defaultImages, c.fake, *shownA, trackA, wa, 0, false)
	}
	w := reportPlayback(t, web, "stopped", trackA, time.Since(wa.from).Milliseconds())
	from := c.next()
	if !cleared {
		waitClear(t, c.fake, from, w)
	}
}
