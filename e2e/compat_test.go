package e2e

// The same package in Navidrome v0.61.2, the newest release without playback reports:
// there the plugin only gets now-playing calls (Subsonic `scrobble?submission=false`, with
// v0.61's `position` in seconds) and shows the track without a progress bar, 2 s after the
// call if no playback report came meanwhile, and clears it 5 s after the track's end.

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// legacyWait is how long the plugin waits after a now-playing for a playback report of a
// newer host before it shows the track (LEGACY_WAIT_S).
const legacyWait = 2 * time.Second

func TestNowPlayingFallbackNavidrome061(t *testing.T) {
	binary := requireEnv(t, "NDP_E2E_NAVIDROME_061")
	ndp := requireEnv(t, "NDP_E2E_PACKAGE")
	img := publicImages
	music := makeLibrary(t)
	fake := startFakeDiscord(t)
	nd := startNavidrome(t, binary, music, ndp, fake.CAFile, port+1, img.ShareURL)
	fake.Diagnose = func() string { return pluginProblems(nd.Log()) }
	nd.CreateAdmin(t)
	ui := Subsonic{n: nd, Client: webUI, UniqueID: "e2e-webui-tab-1"}
	waitForLibrary(t, ui)
	configurePluginWith(t, nd, img.CAA)

	// nowPlaying is a player's now-playing call at positionS seconds into the track (-1: no
	// position, as a plain Subsonic client sends it) and returns its time window.
	nowPlaying := func(p Subsonic, tr *Track, positionS int) sent {
		q := url.Values{"id": {tr.ID}, "submission": {"false"}}
		if positionS >= 0 {
			q.Set("position", fmt.Sprint(positionS))
		}
		from := time.Now()
		p.Call(t, "scrobble", q)
		return sent{from, time.Now()}
	}
	const frameWait = 30 * time.Second
	at := func(i int) Frame { frames, _, _ := fake.Snapshot(); return frames[i] }

	// 1. A, 8 s before its end: the plugin waits 2 s for a playback report, then dials the
	// gateway, identifies after Hello and shows A.
	wA := nowPlaying(ui, trackA, trackA.Seconds-8)
	i := fake.WaitFrame(t, 0, frameWait, "presence of track A", isPresence(trackA.Title))
	frames, conns, _ := fake.Snapshot()
	checkLegacyActivity(t, img, fake, frames[i], trackA)
	if d := frames[i].At.Sub(wA.from); d < legacyWait {
		t.Errorf("A shown %v after its now-playing, before the plugin's %v wait for a playback report", d, legacyWait)
	}
	if c := conns[0]; len(conns) != 1 || c.Host != "gateway.discord.gg" || c.Query != "v=10&encoding=json" {
		t.Errorf("%d connections before the first presence; the first to %s/?%s, want one to gateway.discord.gg/?v=10&encoding=json",
			len(conns), c.Host, c.Query)
	}
	checkIdentify(t, frames[:i])

	// 2. the next track, B, 10 s before its end, while A's clear is pending: B replaces A
	// with no clear in between, and A's end timer (13 s after A's call; Navidrome logs it
	// as ne:1:<user>) leaves B alone.
	logAt := len(nd.Log())
	wB := nowPlaying(ui, trackB, trackB.Seconds-10)
	iB := fake.WaitFrame(t, i+1, frameWait, "presence of track B", isPresence(trackB.Title))
	frames, _, _ = fake.Snapshot()
	checkLegacyActivity(t, img, fake, frames[iB], trackB)
	if n := countOp(frames[i+1:iB], 3); n != 0 {
		t.Errorf("%d presence updates between A and B (want none: no clear on a track change):\n%s", n, dumpFrames(frames[i+1:iB]))
	}
	endA := regexp.MustCompile(`Scheduler callback completed.*scheduleID="?ne:1:` + adminUser)
	nd.WaitLog(t, logAt, 20*time.Second, "A's end timer", endA.MatchString)
	time.Sleep(300 * time.Millisecond)
	if frames, _, _ = fake.Snapshot(); countOp(frames[iB+1:], 3) != 0 {
		t.Errorf("A's end timer cleared or changed B's presence:\n%s", dumpFrames(frames[iB+1:]))
	}

	// 3. B's end: cleared 5 s after it, i.e. 15 s after B's call (the last update, B's,
	// is long enough before it that Discord's spacing holds nothing back).
	i = fake.WaitFrame(t, iB+1, frameWait, "clear after the end of track B", isClear)
	frames, _, _ = fake.Snapshot()
	due := 10*time.Second + 5*time.Second
	if d := frames[i].At.Sub(wB.from); d < due-100*time.Millisecond || d > due+3*time.Second {
		t.Errorf("B cleared %v after its now-playing, want ≈ %v (10 s left + 5 s):\n%s", d.Round(time.Millisecond), due, dumpFrames(frames[iB:i+1]))
	} else {
		t.Logf("B cleared %v after its now-playing (10 s left + 5 s)", d.Round(time.Millisecond))
	}

	// 4. a plain Subsonic player: now-playing without a position shows C; its scrobble
	// (submission=true) changes nothing.
	legacy := Subsonic{n: nd, Client: "e2e-legacy-player"}
	nowPlaying(legacy, trackC, -1)
	i = fake.WaitFrame(t, i+1, frameWait, "presence of track C", isPresence(trackC.Title))
	checkLegacyActivity(t, img, fake, at(i), trackC)
	legacy.Call(t, "scrobble", url.Values{"id": {trackC.ID}, "submission": {"true"}})
	time.Sleep(legacyWait + time.Second)
	if frames, _, _ = fake.Snapshot(); countOp(frames[i+1:], 3) != 0 {
		t.Errorf("a scrobble changed the presence:\n%s", dumpFrames(frames[i+1:]))
	}

	// 5. Discord asks to reconnect (op 7): the plugin resumes on the resume host without
	// a second Identify and shows C there again, and beats there.
	fake.SendLatest(`{"op":7,"d":null,"s":null,"t":null}`)
	iResume := fake.WaitFrame(t, i+1, frameWait, "Resume (op 6)", func(f Frame) bool { return f.Op == 6 })
	frames, conns, _ = fake.Snapshot()
	checkResume(t, frames[iResume], conns)
	i = fake.WaitFrame(t, iResume+1, frameWait, "presence of track C on the resumed connection", func(f Frame) bool {
		return isPresence(trackC.Title)(f) && f.Conn == 2
	})
	checkLegacyActivity(t, img, fake, at(i), trackC)
	for deadline := time.Now().Add(frameWait); ; time.Sleep(100 * time.Millisecond) {
		frames, _, _ = fake.Snapshot()
		beats := 0
		for _, f := range frames {
			if f.Op == 1 && f.Conn == 2 {
				beats++
			}
		}
		if beats >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats on the resumed connection within %v, want 3", beats, frameWait)
		}
	}

	frames, conns, requests := fake.Snapshot()
	checkWholeSession(t, frames, conns)
	checkRequests(t, img, frames, requests)
	checkLogs(t, nd.Log())
	if n := strings.Count(nd.Log(), "Sending PlaybackReport"); n != 0 {
		t.Errorf("v0.61.2 sent %d playback reports", n)
	}
}

// checkLegacyActivity checks one Listening activity from a now-playing: the track's text,
// no timestamps (no progress bar: v0.61 sends no playback time), and the cover as in
// checkActivity: the Cover Art Archive's for a track with a MusicBrainz release id (when
// on), else Navidrome's public cover URL, else the logo; no small image.
func checkLegacyActivity(t *testing.T, img imageSetup, fake *FakeDiscord, f Frame, tr *Track) {
	t.Helper()
	a := listening(t, f)
	if a.Details != shown(tr.Title) || a.State != shown(tr.Artist) || a.Assets.LargeText != shown(tr.Album) {
		t.Errorf("activity text: details %q state %q large text %q, want %q / %q / %q",
			a.Details, a.State, a.Assets.LargeText, shown(tr.Title), shown(tr.Artist), shown(tr.Album))
	}
	if a.Timestamps.Start != 0 || a.Timestamps.End != 0 {
		t.Errorf("%q: timestamps %+v, want none (v0.61 sends no playback time)", tr.Title, a.Timestamps)
	}
	checkCover(t, img, fake, tr, a.Assets.LargeImage)
	if a.Assets.SmallImage != "" || a.Assets.SmallText != "" {
		t.Errorf("%q: small image %q text %q, want none", tr.Title, a.Assets.SmallImage, a.Assets.SmallText)
	}
}
