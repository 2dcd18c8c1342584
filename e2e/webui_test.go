package e2e

// Navidrome's own web UI in headless Chromium (Debian's package, driven over the DevTools
// protocol with chromedp), against the plugin in the same real Navidrome: a person logs in,
// opens an album, plays it, pauses, resumes, seeks, skips, lets a track end into the next,
// repeats one track, and closes the player. What reaches the plugin is the UI's own
// reportPlayback sequence and timing (ui/src/audioplayer/Player.jsx), from a real <audio>
// element playing the real files. Runs when e2e/run.sh provides the Navidrome built with
// its UI (build-navidrome-ui.sh).

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const webAlbum = "Web UI · ウェブ"

var (
	// The album the person plays: a long first track to pause, seek and skip in, then two
	// short ones that end by themselves (the last one also on repeat).
	webOne   = &Track{N: 1, File: "w1-first.flac", Title: "Первая «Web»", Artist: patternArtist, Album: webAlbum, Seconds: 60}
	webTwo   = &Track{N: 2, File: "w2-second.flac", Title: "Second 二番目", Artist: patternArtist, Album: webAlbum, Seconds: 12}
	webThree = &Track{N: 3, File: "w3-third.flac", Title: "Third & last ✓", Artist: patternArtist, Album: webAlbum, Seconds: 12}
)

// audioState is the player's <audio> element as the page sees it.
type audioState struct {
	Time   float64 `json:"t"`
	Paused bool    `json:"paused"`
	Src    string  `json:"src"`
	Title  string  `json:"title"` // the player's title (document.title while playing)
}

// browser is a Chromium tab on the UI.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("web UI, %s: %v", what, err)
	}
}

// eval runs a JavaScript expression in the page and decodes its value.
func eval[T any](b *browser, what, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("web UI, %s: %v", what, err)
	}
	return v
}

// audio reads the <audio> element, and the wall-clock moment the track's position 0 was
// (now − currentTime).
func (b *browser) audio() (audioState, time.Time) {
	b.t.Helper()
	s := eval[audioState](b, "reading the audio element", `(() => { const a = document.querySelector('audio');
		return a ? {t: a.currentTime, paused: a.paused, src: a.currentSrc, title: document.title} : {t: -1, paused: true, src: '', title: document.title} })()`)
	return s, time.Now().Add(-time.Duration(s.Time * float64(time.Second)))
}

// waitAudio polls the audio element until ok holds.
func (b *browser) waitAudio(what string, timeout time.Duration, ok func(audioState) bool) (audioState, time.Time) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, began := b.audio()
		if ok(s) {
			return s, began
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("web UI: %s: not within %v (audio: %+v)", what, timeout, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// click clicks the element as a person does: a mouse press and release at its centre.
func (b *browser) click(what, selector string) {
	b.t.Helper()
	b.run("clicking "+what, chromedp.WaitVisible(chromedp.CSS(selector)), chromedp.Click(chromedp.CSS(selector)))
}

// checkUIActivity checks an activity against the track the UI plays: title, artist,
// album, the logo (Navidrome's default setup), and timestamps from the audio element's
// own position: start = when position 0 was (began), end = start + duration; paused: start
// = the pause (began), no end, the pause icon. Whole-second report times and the request's
// trip allow 2.5 s either way (the plugin's own tolerance for periodic reports).
func checkUIActivity(t *testing.T, fake *FakeDiscord, f Frame, tr *Track, began time.Time, paused bool) {
	t.Helper()
	a := activityOf(t, f)
	if a.Details != tr.Title || a.State != tr.Artist || a.Assets.LargeText != tr.Album {
		t.Errorf("activity text: %q / %q / %q, want %q / %q / %q", a.Details, a.State, a.Assets.LargeText, tr.Title, tr.Artist, tr.Album)
	}
	if got := fake.AssetURL(a.Assets.LargeImage); got != logoURL {
		t.Errorf("%q: large image %q registered for %q, want the logo", tr.Title, a.Assets.LargeImage, got)
	}
	if d := time.UnixMilli(a.Timestamps.Start).Sub(began); math.Abs(d.Seconds()) > 2.5 {
		t.Errorf("%q: start %s is %v from the audio element's %s (paused %v)", tr.Title,
			time.UnixMilli(a.Timestamps.Start).Format("15:04:05.000"), d.Round(time.Millisecond), began.Format("15:04:05.000"), paused)
	}
	wantEnd := a.Timestamps.Start + int64(tr.Seconds)*1000
	if paused {
		wantEnd = 0
	}
	if a.Timestamps.End != wantEnd {
		t.Errorf("%q: end %d, want %d (paused %v)", tr.Title, a.Timestamps.End, wantEnd, paused)
	}
	if paused != (fake.AssetURL(a.Assets.SmallImage) == pauseIconURL && a.Assets.SmallText == "Paused") {
		t.Errorf("%q: small image %q text %q, paused %v", tr.Title, a.Assets.SmallImage, a.Assets.SmallText, paused)
	}
}

func TestWebUINavidrome063(t *testing.T) {
	binary := os.Getenv("NDP_E2E_NAVIDROME_UI")
	if binary == "" {
		t.Skip("no Navidrome with its web UI (e2e/run.sh builds it with build-navidrome-ui.sh)")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (Debian: apt-get install chromium)")
	}
	ndp := requireEnv(t, "NDP_E2E_PACKAGE")
	music := t.TempDir()
	tracks := []*Track{webOne, webTwo, webThree}
	addTracks(t, music, tracks...)
	fake := startFakeDiscord(t)
	nd := startNavidrome(t, binary, music, ndp, fake.CAFile, port+5, "")
	fake.Diagnose = func() string { return pluginProblems(nd.Log()) }
	nd.CreateAdmin(t)
	album := findTracks(t, Subsonic{n: nd, Client: "e2e-setup"}, tracks...)
	configurePluginWith(t, nd, false)
	frame := func(i int) Frame { frames, _, _ := fake.Snapshot(); return frames[i] }

	// Chromium, headless, with a profile of its own; its console goes to the logs.
	dir := t.TempDir()
	logs, err := os.Create(filepath.Join(logDir(t), "chromium.txt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logs, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1280, 900), chromedp.Env("HOME="+dir),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		// The person clicks Play; the next tracks start without a click, as in a browser
		// the person has used.
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(logf))
	defer cancel()
	b := &browser{t: t, ctx: ctx}
	_ = chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			logf("console.%s %s", e.Type, strings.Join(parts, " "))
		}
	})

	// 1. Log in on the login page.
	b.run("opening the login page", chromedp.Navigate(nd.Base+"/app/"))
	b.run("logging in",
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), adminUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), adminPass),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))

	// 2. The album list is the start page: open the album, press Play.
	b.click("the album in the album list", fmt.Sprintf(`a[href="#/album/%s/show"]`, album))
	b.click("Play on the album page", `button[aria-label="Play"]`)
	_, began := b.waitAudio("the first track playing", 30*time.Second, func(s audioState) bool {
		return !s.Paused && s.Time > 0.2 && strings.Contains(s.Title, webOne.Title)
	})
	i := fake.WaitFrame(t, 0, frameWait, "presence of the album's first track", isPresence(webOne.Title))
	checkUIActivity(t, fake, frame(i), webOne, began, false)

	// 3. Pause after a few seconds: the paused presence, from the moment of the pause.
	time.Sleep(3 * time.Second)
	b.click("pause", `.music-player-panel .play-btn`)
	_, _ = b.waitAudio("the pause", 10*time.Second, func(s audioState) bool { return s.Paused })
	pausedAt := time.Now()
	i = fake.WaitFrame(t, i+1, frameWait, "paused presence", func(f Frame) bool {
		return isPresence(webOne.Title)(f) && activityOf(t, f).Timestamps.End == 0
	})
	checkUIActivity(t, fake, frame(i), webOne, pausedAt, true)

	// 4. Resume: the track again, from where it was.
	time.Sleep(2 * time.Second)
	b.click("play", `.music-player-panel .play-btn`)
	_, began = b.waitAudio("playing again", 10*time.Second, func(s audioState) bool { return !s.Paused })
	i = fake.WaitFrame(t, i+1, frameWait, "resumed presence", func(f Frame) bool {
		return isPresence(webOne.Title)(f) && activityOf(t, f).Timestamps.End != 0
	})
	checkUIActivity(t, fake, frame(i), webOne, began, false)

	// 5. Seek: a click at three quarters of the progress bar.
	time.Sleep(time.Second)
	box := eval[[]float64](b, "measuring the progress bar", `(() => { const r = document.querySelector('.music-player-panel .progress-bar .rc-slider').getBoundingClientRect();
		return [r.left, r.top, r.width, r.height] })()`)
	b.run("clicking the progress bar", chromedp.MouseClickXY(box[0]+box[2]*0.75, box[1]+box[3]/2))
	_, began = b.waitAudio("the seek", 10*time.Second, func(s audioState) bool { return s.Time > 40 })
	startBefore := activityOf(t, frame(i)).Timestamps.Start
	i = fake.WaitFrame(t, i+1, frameWait, "presence after the seek", func(f Frame) bool {
		return isPresence(webOne.Title)(f) && activityOf(t, f).Timestamps.Start < startBefore-20_000
	})
	_, began = b.audio()
	checkUIActivity(t, fake, frame(i), webOne, began, false)

	// 6. Skip to the next track: it replaces the first with no clear in between, nor when
	// the skip's stop grace is over.
	time.Sleep(time.Second)
	b.click("next track", `.music-player-panel .next-audio`)
	_, began = b.waitAudio("the second track playing", 15*time.Second, func(s audioState) bool {
		return !s.Paused && strings.Contains(s.Title, webTwo.Title)
	})
	j := fake.WaitFrame(t, i+1, frameWait, "presence of the second track (skip)", isPresence(webTwo.Title))
	_, began = b.audio()
	checkUIActivity(t, fake, frame(j), webTwo, began, false)
	noPresenceBetween(t, fake, i+1, j, "between the first track and the one skipped to (want no clear)")
	i = j

	// 7. The second track ends: the UI goes on to the third by itself. The <audio> element
	// fires pause before ended, so the UI reports paused at the track's end, then stopped,
	// then the next track's starting and playing, all within a few milliseconds: the end of
	// a track, not a pause by the person. Nothing may show between the two tracks (no
	// clear, no paused presence of the track that ended).
	j = fake.WaitFrame(t, i+1, time.Duration(webTwo.Seconds)*time.Second+frameWait, "presence of the third track (the second ended)",
		isPresence(webThree.Title))
	_, began = b.audio()
	checkUIActivity(t, fake, frame(j), webThree, began, false)
	noPresenceBetween(t, fake, i+1, j, "between the second track and the third, which followed when it ended (want the third "+
		"track right after the second: no clear, and no paused presence of the track that ended)")
	i = j

	// 8. Repeat One: the mode button until it says so; the third track ends and plays again.
	for k := 0; k < 4; k++ {
		title := eval[string](b, "reading the play mode", `document.querySelector('.music-player-panel .loop-btn').title`)
		if title == "Repeat One" {
			break
		}
		b.click("the play mode button ("+title+")", `.music-player-panel .loop-btn`)
	}
	prevStart := activityOf(t, frame(i)).Timestamps.Start
	j = fake.WaitFrame(t, i+1, time.Duration(webThree.Seconds)*time.Second+frameWait, "presence of the third track's second round", func(f Frame) bool {
		if f.Op != 3 || isClear(f) {
			return f.Op == 3
		}
		a := activityOf(t, f)
		return a.Details == webThree.Title && a.Timestamps.End != 0 && a.Timestamps.Start >= prevStart+int64(webThree.Seconds)*1000-2500
	})
	if isClear(frame(j)) {
		frames, _, _ := fake.Snapshot()
		t.Fatalf("the repeated track was cleared instead of shown again:\n%s", presences(frames[i:]))
	}
	_, began = b.audio()
	checkUIActivity(t, fake, frame(j), webThree, began, false)
	noPresenceBetween(t, fake, i+1, j, "between the track and its repetition (want the new round right after the first: no clear, "+
		"and no paused presence of the round that ended)")
	i = j

	// 9. Close the player (its × button): cleared once the stop's 5 s grace is over.
	time.Sleep(2 * time.Second)
	from := time.Now()
	b.click("the player's close button", `.music-player-panel .destroy-btn`)
	w := sent{from, time.Now()}
	waitClear(t, fake, i+1, w)

	frames, conns, _ := fake.Snapshot()
	if n := countOp(frames, 2); len(conns) != 1 || n != 1 {
		t.Errorf("%d connections and %d Identify frames, want 1 and 1", len(conns), n)
	}
	t.Logf("presence updates:\n%s", presences(frames))
	logReportSequence(t, nd.Log())
	checkLogs(t, nd.Log())
}
