package e2e

// The plugin in a real Navidrome v0.63.2: installed from its .ndp, configured through the
// native API exactly as the web UI's plugin page does, driven by Subsonic playback
// reports, observed from the fake Discord gateway.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	discordToken = "e2e-DiscordToken.SECRET_7f3a9c" // must never show up in a log
	clientID     = "123456789012345678"
	webUI        = "NavidromeUI" // the client name Navidrome's web UI uses
	port         = 4533
	// shareURL makes Navidrome's cover URLs public https ones the plugin may register.
	shareURL = "https://music.example.org"
	// logoURL and pauseIconURL are the images the plugin registers when it has no public
	// cover (the logo, as large image) and for a paused track (the icon, as small image).
	logoURL      = "https://raw.githubusercontent.com/navidrome/website/refs/heads/master/assets/icons/logo.webp"
	pauseIconURL = "https://raw.githubusercontent.com/navidrome/discord-rich-presence-plugin/800bfacfb8e85c33692373b10ddbd27388f262d2/assets/pause.png"
)

// imageSetup is where covers can come from: Navidrome's public URL (ND_SHAREURL, "" for
// none) and the Cover Art Archive (the plugin's caaenabled).
type imageSetup struct {
	Name     string
	ShareURL string
	CAA      bool
}

var (
	// publicImages: a server with a public URL, the Cover Art Archive on.
	publicImages = imageSetup{"PublicURL", shareURL, true}
	// defaultImages: Navidrome's default (no ShareURL or BaseURL: its artwork URLs are
	// http://localhost/…, which must go nowhere), the Cover Art Archive and uguu off.
	defaultImages = imageSetup{"NoPublicURL", "", false}
)

// privateURL matches a URL to a loopback, private or link-local host.
var privateURL = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*:(//|\\/\\/)([^/@\s"]*@)?(localhost\b|127\.\d|0\.0\.0\.0|10\.\d|192\.168\.\d|172\.(1[6-9]|2\d|3[01])\.\d|169\.254\.\d|\[(::1|f[cd]|fe80))`)

func redact(s string) string { return strings.ReplaceAll(s, discordToken, "<token>") }

func requireEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run e2e/run.sh", name)
	}
	return v
}

// Activity and PresenceUpdate are the parts of op 3 the test checks.
type Activity struct {
	Type          int    `json:"type"`
	Name          string `json:"name"`
	Details       string `json:"details"`
	State         string `json:"state"`
	ApplicationID string `json:"application_id"`
	Timestamps    struct {
		Start int64 `json:"start"`
		End   int64 `json:"end"`
	} `json:"timestamps"`
	Assets struct {
		LargeImage string `json:"large_image"`
		LargeText  string `json:"large_text"`
		SmallImage string `json:"small_image"`
		SmallText  string `json:"small_text"`
	} `json:"assets"`
}

type PresenceUpdate struct {
	Activities []Activity `json:"activities"`
	Status     string     `json:"status"`
	AFK        bool       `json:"afk"`
}

func presenceOf(t *testing.T, f Frame) PresenceUpdate {
	t.Helper()
	var p PresenceUpdate
	if err := json.Unmarshal(f.D, &p); err != nil {
		t.Fatalf("op 3 is not valid JSON: %v: %s", err, redact(f.Raw))
	}
	return p
}

func isPresence(title string) func(Frame) bool {
	return func(f Frame) bool {
		var p PresenceUpdate
		return f.Op == 3 && json.Unmarshal(f.D, &p) == nil && len(p.Activities) == 1 && p.Activities[0].Details == title
	}
}

func isClear(f Frame) bool {
	var p PresenceUpdate
	return f.Op == 3 && json.Unmarshal(f.D, &p) == nil && p.Activities != nil && len(p.Activities) == 0
}

// shown is what Discord's 128-character text fields receive: longer text is cut to 127
// characters and "…".
func shown(s string) string {
	if utf8.RuneCountInString(s) <= 128 {
		return s
	}
	return string([]rune(s)[:127]) + "…"
}

// sent is a client request's time window: Navidrome stamps the report with its own clock
// (whole seconds) somewhere inside it.
type sent struct{ from, to time.Time }

func (w sent) secondsMs() (int64, int64) { return w.from.Unix() * 1000, w.to.Unix() * 1000 }

// checkActivity checks one Listening activity against the track and the report that
// produced it: start = report time − position, end = start + duration (none when paused);
// the cover registered with Discord is the Cover Art Archive's for a track with a
// MusicBrainz release id (when on), else Navidrome's public cover URL, else the logo; a
// pause icon when paused.
func checkActivity(t *testing.T, img imageSetup, fake *FakeDiscord, f Frame, tr *Track, w sent, positionMs int64, paused bool) {
	t.Helper()
	a := listening(t, f)
	if a.Details != shown(tr.Title) || a.State != shown(tr.Artist) {
		t.Errorf("activity text: details %q state %q, want %q / %q", a.Details, a.State, shown(tr.Title), shown(tr.Artist))
	}
	lo, hi := w.secondsMs()
	if !paused {
		lo, hi = lo-positionMs, hi-positionMs
	}
	if a.Timestamps.Start < lo || a.Timestamps.Start > hi {
		t.Errorf("%q: start %d outside [%d, %d] (position %d ms, paused %v)", tr.Title, a.Timestamps.Start, lo, hi, positionMs, paused)
	}
	wantEnd := a.Timestamps.Start + int64(tr.Seconds)*1000
	if paused {
		wantEnd = 0
	}
	if a.Timestamps.End != wantEnd {
		t.Errorf("%q: end %d, want %d (paused %v)", tr.Title, a.Timestamps.End, wantEnd, paused)
	}
	checkCover(t, img, fake, tr, a.Assets.LargeImage)
	if a.Assets.LargeText != shown(tr.Album) {
		t.Errorf("%q: large text %q, want the album %q", tr.Title, a.Assets.LargeText, tr.Album)
	}
	pause := fake.AssetURL(a.Assets.SmallImage)
	if paused != (pause == pauseIconURL && strings.HasPrefix(a.Assets.SmallImage, "mp:external/")) || !paused && a.Assets.SmallImage != "" ||
		paused != (a.Assets.SmallText == "Paused") {
		t.Errorf("%q: small image %q (%q) text %q, paused %v", tr.Title, a.Assets.SmallImage, pause, a.Assets.SmallText, paused)
	}
}

// listening returns the one activity of a presence update, checking its envelope: a
// Listening activity named Navidrome, of our application, status online.
func listening(t *testing.T, f Frame) Activity {
	t.Helper()
	p := presenceOf(t, f)
	if len(p.Activities) != 1 {
		t.Fatalf("want one activity, got %s", redact(f.Raw))
	}
	a := p.Activities[0]
	if a.Type != 2 || a.Name != "Navidrome" || a.ApplicationID != clientID || p.Status != "online" || p.AFK {
		t.Errorf("activity envelope: %s", redact(f.Raw))
	}
	return a
}

// checkCover checks an activity's large image: registered with Discord, for the Cover Art
// Archive's image when the setup uses it and the track has MusicBrainz ids, else for
// Navidrome's public cover, else for the logo.
func checkCover(t *testing.T, img imageSetup, fake *FakeDiscord, tr *Track, large string) {
	t.Helper()
	cover := fake.AssetURL(large)
	switch {
	case !strings.HasPrefix(large, "mp:external/"):
		t.Errorf("%q: large image %q is not an external asset", tr.Title, large)
	case img.CAA && tr.MBIDs:
		if cover != caaImage(tr.AlbumMBID()) {
			t.Errorf("%q: large image %q registered for %q, want the Cover Art Archive's", tr.Title, large, cover)
		}
	case img.ShareURL != "":
		if !strings.HasPrefix(cover, img.ShareURL+"/share/img/") {
			t.Errorf("%q: large image %q registered for %q, want Navidrome's public cover", tr.Title, large, cover)
		}
	case cover != logoURL:
		t.Errorf("%q: large image %q registered for %q, want the logo %s", tr.Title, large, cover, logoURL)
	}
}

// TestPresenceNavidrome063 runs the scenario in a server with a public URL and the Cover
// Art Archive on, then in Navidrome's default setup (no public URL, no outside image
// service): there every activity shows the logo.
func TestPresenceNavidrome063(t *testing.T) {
	binary := requireEnv(t, "NDP_E2E_NAVIDROME")
	ndp := requireEnv(t, "NDP_E2E_PACKAGE")
	music := makeLibrary(t)
	for _, img := range []imageSetup{publicImages, defaultImages} {
		t.Run(img.Name, func(t *testing.T) { presenceScenario(t, binary, ndp, music, img) })
	}
}

func presenceScenario(t *testing.T, binary, ndp, music string, img imageSetup) {
	fake := startFakeDiscord(t)
	nd := startNavidrome(t, binary, music, ndp, fake.CAFile, port, img.ShareURL)
	fake.Diagnose = func() string { return pluginProblems(nd.Log()) }
	nd.CreateAdmin(t)
	ui := Subsonic{n: nd, Client: webUI, UniqueID: "e2e-webui-tab-1"}
	waitForLibrary(t, ui)

	configurePluginWith(t, nd, img.CAA)

	// report sends one reportPlayback, as a player does, and returns its time window.
	report := func(p Subsonic, state string, tr *Track, positionMs int64) sent {
		from := time.Now()
		p.Call(t, "reportPlayback", url.Values{"mediaId": {tr.ID}, "mediaType": {"song"}, "state": {state},
			"positionMs": {fmt.Sprint(positionMs)}, "playbackRate": {"1"}})
		return sent{from, time.Now()}
	}
	// trackChange is what the web UI sends when the next track begins: stopped for the old
	// one, starting for the new one, and playing once that request is done. Both of the new
	// track's reports are at position 0 and the activity may follow either's timestamp, so
	// start spans the two requests.
	trackChange := func(old *Track, oldPos int64, next *Track) (stop, start sent) {
		stop = report(ui, "stopped", old, oldPos)
		start = report(ui, "starting", next, 0)
		start.to = report(ui, "playing", next, 0).to
		return stop, start
	}
	// Each step waits for its presence update before the next step, so an update the
	// plugin defers (Discord's 5 per 20 s, its 4 s spacing) is checked, not coalesced.
	const frameWait = 30 * time.Second
	at := func(i int) Frame { frames, _, _ := fake.Snapshot(); return frames[i] }

	// 1. starting A: the plugin dials the gateway, identifies after Hello, and shows A.
	w := report(ui, "starting", trackA, 0)
	playStart := w.from
	i := fake.WaitFrame(t, 0, frameWait, "presence of track A", isPresence(trackA.Title))
	frames, conns, _ := fake.Snapshot()
	checkActivity(t, img, fake, frames[i], trackA, w, 0, false)
	if c := conns[0]; len(conns) != 1 || c.Host != "gateway.discord.gg" || c.Query != "v=10&encoding=json" {
		t.Errorf("%d connections before the first presence; the first to %s/?%s, want one to gateway.discord.gg/?v=10&encoding=json",
			len(conns), c.Host, c.Query)
	}
	checkIdentify(t, frames[:i])

	// 2. playing A at the position that matches the clock: nothing changes on Discord.
	time.Sleep(2 * time.Second)
	logAt := len(nd.Log())
	report(ui, "playing", trackA, time.Since(playStart).Milliseconds())
	nd.WaitLog(t, logAt, 10*time.Second, "the playing report", func(l string) bool {
		return strings.Contains(l, "Sending PlaybackReport") && strings.Contains(l, "state=playing")
	})
	time.Sleep(700 * time.Millisecond) // the update it must not cause would follow within milliseconds
	if frames, _, _ := fake.Snapshot(); countOp(frames[i+1:], 3) != 0 {
		t.Errorf("a playing report at the expected position sent a presence update:\n%s", dumpFrames(frames[i+1:]))
	}

	// 3. paused: the activity keeps the track, loses its end, starts at the pause, and
	// carries the pause icon.
	pos := time.Since(playStart).Milliseconds()
	w = report(ui, "paused", trackA, pos)
	i = fake.WaitFrame(t, i+1, frameWait, "paused presence of track A", func(f Frame) bool {
		return isPresence(trackA.Title)(f) && presenceOf(t, f).Activities[0].Timestamps.End == 0
	})
	checkActivity(t, img, fake, at(i), trackA, w, pos, true)

	// 4. resume at the paused position, two seconds later.
	time.Sleep(2 * time.Second)
	w = report(ui, "playing", trackA, pos)
	i = fake.WaitFrame(t, i+1, frameWait, "resumed presence of track A", func(f Frame) bool {
		return isPresence(trackA.Title)(f) && presenceOf(t, f).Activities[0].Timestamps.End != 0
	})
	checkActivity(t, img, fake, at(i), trackA, w, pos, false)

	// 5. seek to 5:00: start moves back.
	time.Sleep(time.Second)
	w = report(ui, "playing", trackA, 300_000)
	i = fake.WaitFrame(t, i+1, frameWait, "presence after the seek", isPresence(trackA.Title))
	checkActivity(t, img, fake, at(i), trackA, w, 300_000, false)

	// 6. track change: B replaces A with no clear in between, and none when the stop's
	// 5 s grace timer fires (Navidrome's scheduler logs it) while B plays.
	time.Sleep(time.Second)
	logAt = len(nd.Log())
	stop, w := trackChange(trackA, 301_000, trackB)
	iB := fake.WaitFrame(t, i+1, frameWait, "presence of track B", isPresence(trackB.Title))
	frames, _, _ = fake.Snapshot()
	checkActivity(t, img, fake, frames[iB], trackB, w, 0, false)
	if n := countOp(frames[i+1:iB], 3); n != 0 {
		t.Errorf("%d presence updates between A and B (want none: no clear on a track change):\n%s", n, dumpFrames(frames[i+1:iB]))
	}
	waitGraceTimer(t, nd, logAt, stop)
	time.Sleep(300 * time.Millisecond)
	if frames, _, _ = fake.Snapshot(); countOp(frames[iB+1:], 3) != 0 {
		t.Errorf("the stop before the track change cleared or changed the presence:\n%s", dumpFrames(frames[iB+1:]))
	}

	// 7. stopped with nothing after it: cleared once the 5 s grace is over.
	time.Sleep(time.Second)
	w = report(ui, "stopped", trackB, 3_000)
	i = waitClear(t, fake, iB+1, w)

	// 8. a legacy client: scrobble?submission=false is a now-playing (a `playing` report
	// at position 0), submission=true a scrobble (no presence change).
	legacy := Subsonic{n: nd, Client: "e2e-legacy-player"}
	from := time.Now()
	legacy.Call(t, "scrobble", url.Values{"id": {trackC.ID}, "submission": {"false"}})
	w = sent{from, time.Now()}
	i = fake.WaitFrame(t, i+1, frameWait, "presence of track C (legacy now playing)", isPresence(trackC.Title))
	checkActivity(t, img, fake, at(i), trackC, w, 0, false)
	legacy.Call(t, "scrobble", url.Values{"id": {trackC.ID}, "submission": {"true"}})

	// 9. names longer than Discord's fields, then emoji sequences and Hangul.
	w = report(ui, "starting", trackD, 0)
	i = fake.WaitFrame(t, i+1, frameWait, "presence of the long-named track D", isPresence(shown(trackD.Title)))
	checkActivity(t, img, fake, at(i), trackD, w, 0, false)
	// The legacy player's track ends (Navidrome would expire it at its end, 5 min away;
	// here it stops). Until then it would come back when the web UI stops (README:
	// players); now the web UI's stop below clears.
	report(legacy, "stopped", trackC, 5_000)
	_, w = trackChange(trackD, 5_000, trackE)
	i = fake.WaitFrame(t, i+1, frameWait, "presence of track E", isPresence(trackE.Title))
	checkActivity(t, img, fake, at(i), trackE, w, 0, false)

	// 10. Discord asks to reconnect (op 7): the plugin resumes on the resume host
	// (allowed by *.discord.gg), without a second Identify, and keeps working there.
	fake.SendLatest(`{"op":7,"d":null,"s":null,"t":null}`)
	iResume := fake.WaitFrame(t, i+1, frameWait, "Resume (op 6)", func(f Frame) bool { return f.Op == 6 })
	frames, conns, _ = fake.Snapshot()
	checkResume(t, frames[iResume], conns)
	// The resumed connection gets the presence again (what went out on the old socket may
	// never have arrived); the report at 60 s then moves its start. The two can interleave,
	// so this waits for the presence whose start follows the report.
	w = report(ui, "playing", trackE, 60_000)
	lo, hi := w.secondsMs()
	i = fake.WaitFrame(t, iResume+1, frameWait, "presence at 60 s on the resumed connection", func(f Frame) bool {
		var p PresenceUpdate
		if !isPresence(trackE.Title)(f) || f.Conn != 2 || json.Unmarshal(f.D, &p) != nil {
			return false
		}
		start := p.Activities[0].Timestamps.Start
		return start >= lo-60_000 && start <= hi-60_000
	})
	checkActivity(t, img, fake, at(i), trackE, w, 60_000, false)

	// 11. skip to A and stop 2 s later, while the skip's stop grace and A's deferred
	// update are still pending: the clear must still wait 5 s after the last stop.
	_, _ = trackChange(trackE, 61_000, trackA)
	time.Sleep(2 * time.Second)
	w = report(ui, "stopped", trackA, 2_000)
	waitClear(t, fake, i+1, w)

	frames, conns, _ = fake.Snapshot()
	checkWholeSession(t, frames, conns)

	// 12. The first report after a (re)load: Navidrome sends it to the playback-report and
	// now-playing handlers at once, from two workers. Disabling and enabling the plugin
	// empties its cache, so each of 10 rounds is a first report again: each must open exactly
	// one connection and identify once.
	for round := 1; round <= 10; round++ {
		frames, conns, _ := fake.Snapshot()
		for _, enabled := range []bool{false, true} {
			if code := nd.api(t, "PUT", "/api/plugin/"+pluginID, map[string]any{"enabled": enabled}, nil); code != 200 {
				t.Fatalf("round %d: enabled=%v answered %d", round, enabled, code)
			}
		}
		tr := []*Track{trackC, trackB}[round%2]
		report(ui, "starting", tr, 0)
		k := fake.WaitFrame(t, len(frames), frameWait, fmt.Sprintf("presence after reload %d", round), isPresence(tr.Title))
		time.Sleep(500 * time.Millisecond)
		after, conns2, _ := fake.Snapshot()
		if n, ids := len(conns2)-len(conns), countOp(after[len(frames):], 2); n != 1 || ids != 1 {
			t.Errorf("reload %d: %d new connections and %d Identify frames for one user (want 1 and 1):\n%s%s",
				round, n, ids, dumpFrames(after[len(frames):k+1]), pluginProblems(nd.Log()))
			break
		}
	}
	frames, _, requests := fake.Snapshot()
	checkRequests(t, img, frames, requests)
	for _, f := range frames {
		var env struct{ Op *int }
		if json.Unmarshal([]byte(f.Raw), &env) != nil || env.Op == nil {
			t.Errorf("connection %d: a frame that is not a gateway payload: %q", f.Conn, redact(f.Raw))
		}
	}
	checkLogs(t, nd.Log())
	logReportSequence(t, nd.Log())
}

// waitGraceTimer waits until Navidrome's scheduler has run the plugin's flush timer for
// the stop sent in w (id fl:<time the plugin handled the stop + 5 s>:<user>, as the plugin
// names it; Navidrome's report worker may handle it a little after the request).
func waitGraceTimer(t *testing.T, nd *Navidrome, logAt int, w sent) {
	t.Helper()
	lo, hi := w.from.Unix()*1000, w.to.UnixMilli()+2000
	re := regexp.MustCompile(`Scheduler callback completed.*scheduleID="?fl:(\d+):`)
	nd.WaitLog(t, logAt, 15*time.Second, "the stop's grace timer", func(l string) bool {
		m := re.FindStringSubmatch(l)
		if m == nil {
			return false
		}
		var due int64
		fmt.Sscan(m[1], &due)
		return due >= lo+5000 && due <= hi+5000
	})
}

// waitClear waits for the clear that follows the stop sent in w, and checks it came no
// sooner than the 5 s grace.
func waitClear(t *testing.T, fake *FakeDiscord, from int, w sent) int {
	t.Helper()
	i := fake.WaitFrame(t, from, 30*time.Second, "clear after stop", isClear)
	frames, _, _ := fake.Snapshot()
	d := frames[i].At.Sub(w.from)
	if d < 4900*time.Millisecond {
		t.Errorf("presence cleared %v after the stop, before the 5 s grace:\n%s", d.Round(time.Millisecond), dumpFrames(frames[from:i+1]))
	}
	t.Logf("clear arrived %v after the stop", d.Round(time.Millisecond))
	return i
}

// configurePlugin does what an admin does on the plugin's page: the plugin shows up
// disabled, the config and the user grant are saved in one PUT, then the Enable switch
// sends a second PUT (ui/src/plugin/PluginShow.jsx, ToggleEnabledSwitch.jsx).
func configurePlugin(t *testing.T, nd *Navidrome) { t.Helper(); configurePluginWith(t, nd, true) }

// configurePluginWith is configurePlugin with the Cover Art Archive on or off (the form's
// checkbox; uguu stays off).
func configurePluginWith(t *testing.T, nd *Navidrome, caa bool) {
	t.Helper()
	var row PluginRow
	nd.poll(t, 20*time.Second, "the plugin to be discovered", func() bool {
		var code int
		row, code = nd.Plugin(t)
		return code == 200
	})
	if row.Enabled {
		t.Errorf("a newly installed plugin is enabled")
	}
	var manifest struct{ Name string }
	_ = json.Unmarshal([]byte(row.Manifest), &manifest)
	if manifest.Name != "Discord Rich Presence" {
		t.Errorf("manifest name %q", manifest.Name)
	}
	// The config schema is enforced by Navidrome: a non-numeric application id is refused.
	bad, _ := json.Marshal(map[string]any{"clientid": "not-a-number", "users": []map[string]string{{"username": adminUser, "token": "x"}}})
	if code := nd.api(t, "PUT", "/api/plugin/"+pluginID, map[string]any{"config": string(bad)}, nil); code != 400 {
		t.Errorf("an invalid config was answered %d, want 400", code)
	}
	userID := nd.UserID(t, adminUser)
	// The UI writes JSONForms' data with JSON.stringify: keys in form order.
	config := `{"clientid":"` + clientID + `","users":[{"username":"` + adminUser + `","token":"` + discordToken + `"}],"caaenabled":` + fmt.Sprint(caa) + `}`
	ids, _ := json.Marshal([]string{userID})
	if code := nd.api(t, "PUT", "/api/plugin/"+pluginID, map[string]any{"config": config, "users": string(ids), "allUsers": false}, &row); code != 200 {
		t.Fatalf("saving the plugin settings: status %d", code)
	}
	if code := nd.api(t, "PUT", "/api/plugin/"+pluginID, map[string]any{"enabled": true}, &row); code != 200 {
		t.Fatalf("enabling the plugin: status %d, lastError %q", code, row.LastError)
	}
	row, _ = nd.Plugin(t)
	if !row.Enabled || row.LastError != "" || row.Config != config || row.Users != string(ids) || row.AllUsers {
		t.Fatalf("plugin row after enabling: enabled %v lastError %q users %s allUsers %v config stored as given: %v",
			row.Enabled, row.LastError, row.Users, row.AllUsers, row.Config == config)
	}
}

// checkRequests: images are registered at discord.com with the user's token, covers are
// looked up by release id at the Cover Art Archive without it (and only when it is on),
// no URL with Subsonic credentials leaves Navidrome, and no URL to a loopback or private
// host reaches the fakes at all, in a request or a gateway frame. Without a public URL the
// only images registered are the logo and the pause icon.
func checkRequests(t *testing.T, img imageSetup, frames []Frame, requests []Request) {
	t.Helper()
	assets, caa, logo := 0, 0, 0
	for _, r := range requests {
		switch {
		case r.Host == "discord.com" && r.Path == "/api/v9/applications/"+clientID+"/external-assets" && r.Method == "POST":
			assets++
			if r.Authorization != discordToken {
				t.Errorf("external-assets request without the user's token")
			}
			var body struct{ URLs []string }
			if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
				t.Errorf("external-assets body is not JSON: %v: %s", err, redact(r.Body))
			}
			for _, u := range body.URLs {
				if u == logoURL {
					logo++
				}
				if img.ShareURL == "" && u != logoURL && u != pauseIconURL {
					t.Errorf("with no public URL, %s registered (want only the logo and the pause icon)", u)
				}
			}
		case r.Host == "coverartarchive.org":
			caa++
			if r.Authorization != "" {
				t.Errorf("credentials sent to the Cover Art Archive")
			}
			if !strings.Contains(r.Path, trackA.AlbumMBID()) && !strings.Contains(r.Path, trackC.AlbumMBID()) {
				t.Errorf("Cover Art Archive asked for %s", r.Path)
			}
		default:
			t.Errorf("unexpected request %s https://%s%s", r.Method, r.Host, r.Path)
		}
		if strings.Contains(r.Body, "/rest/") || regexp.MustCompile(`[?&](u|t|s|p|jwt|apiKey)=`).MatchString(r.Body) {
			t.Errorf("a URL with Subsonic credentials sent to %s: %s", r.Host, redact(r.Body))
		}
		if m := privateURL.FindString(r.Path + " " + r.Body); m != "" {
			t.Errorf("a local URL (%s…) sent to %s: %s %s", m, r.Host, r.Path, redact(r.Body))
		}
	}
	for _, f := range frames {
		if m := privateURL.FindString(f.Raw); m != "" {
			t.Errorf("a local URL (%s…) in an op %d frame: %s", m, f.Op, redact(f.Raw))
		}
	}
	if assets == 0 || img.CAA != (caa > 0) {
		t.Errorf("%d external-assets and %d Cover Art Archive requests (Cover Art Archive on: %v)", assets, caa, img.CAA)
	}
	if img.ShareURL == "" && logo == 0 {
		t.Errorf("with no public URL, the logo was never registered")
	}
	t.Logf("%d external-assets registrations (%d with the logo), %d Cover Art Archive lookups", assets, logo, caa)
}

func countOp(frames []Frame, op int) int {
	n := 0
	for _, f := range frames {
		if f.Op == op {
			n++
		}
	}
	return n
}

func checkIdentify(t *testing.T, before []Frame) {
	t.Helper()
	var ids []Frame
	for _, f := range before {
		if f.Op == 2 {
			ids = append(ids, f)
		}
		if f.Op == 3 {
			t.Errorf("presence update before READY: %s", f.Raw)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want one Identify before the first presence, got %d", len(ids))
	}
	var d struct {
		Token      string         `json:"token"`
		Intents    *int           `json:"intents"`
		Properties map[string]any `json:"properties"`
	}
	_ = json.Unmarshal(ids[0].D, &d)
	if d.Token != discordToken || d.Intents == nil || *d.Intents != 0 || d.Properties["os"] == nil {
		t.Errorf("Identify: %s", redact(ids[0].Raw))
	}
}

func checkResume(t *testing.T, f Frame, conns []*Conn) {
	t.Helper()
	if len(conns) != 2 || conns[1].Host != resumeHost || conns[1].Query != "v=10&encoding=json" {
		for _, c := range conns {
			t.Logf("connection %d: %s/?%s", c.N, c.Host, c.Query)
		}
		t.Fatalf("want the resume on a second connection to %s", resumeHost)
	}
	var d struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}
	_ = json.Unmarshal(f.D, &d)
	last := conns[0].Seqs[len(conns[0].Seqs)-1].S
	if f.Conn != 2 || d.Token != discordToken || d.SessionID != "e2e-session" || d.Seq != last {
		t.Errorf("Resume on connection %d: %s (want session e2e-session, seq %d)", f.Conn, redact(f.Raw), last)
	}
}

// checkWholeSession checks the recorded session as a whole: one Identify, heartbeats at
// Hello's interval carrying the last sequence number, Discord's presence rate limit,
// frame sizes, and the token only where it belongs.
func checkWholeSession(t *testing.T, frames []Frame, conns []*Conn) {
	t.Helper()
	if n := countOp(frames, 2); n != 1 {
		t.Errorf("%d Identify frames in the whole run, want 1", n)
	}
	if len(conns) != 2 {
		t.Errorf("%d gateway connections, want 2 (the first, and the resume after op 7)", len(conns))
	} else if conns[0].CloseCode != 4000 {
		t.Errorf("the plugin closed the first connection with %d, want 4000 (keeps the session resumable)", conns[0].CloseCode)
	}
	for _, c := range conns {
		var beats []Frame
		for _, f := range frames {
			if f.Conn == c.N && f.Op == 1 {
				beats = append(beats, f)
			}
		}
		if len(beats) < 3 {
			t.Errorf("connection %d: only %d heartbeats", c.N, len(beats))
			continue
		}
		// First beat: within interval × jitter of Hello (+1 s for whole-second timers).
		if d := beats[0].At.Sub(c.Opened); d > helloIntervalMs*time.Millisecond+1500*time.Millisecond {
			t.Errorf("connection %d: first heartbeat %v after connecting", c.N, d)
		}
		var gaps []time.Duration
		for k := 1; k < len(beats); k++ {
			gaps = append(gaps, beats[k].At.Sub(beats[k-1].At))
		}
		sorted := append([]time.Duration(nil), gaps...)
		sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
		median := sorted[len(sorted)/2]
		if median < 1500*time.Millisecond || median > 2500*time.Millisecond {
			t.Errorf("connection %d: median heartbeat gap %v, want ≈ %d ms (gaps %v)", c.N, median, helloIntervalMs, gaps)
		}
		for _, g := range gaps[1:] { // the first gap follows the jittered first beat
			if g < 900*time.Millisecond || g > 3500*time.Millisecond {
				t.Errorf("connection %d: heartbeat gap %v (all gaps %v)", c.N, g, gaps)
				break
			}
		}
		t.Logf("connection %d (%s): %d heartbeats, first %v after connect, median gap %v",
			c.N, c.Host, len(beats), beats[0].At.Sub(c.Opened).Round(time.Millisecond), median.Round(time.Millisecond))
		checkBeatSequence(t, c, beats)
	}
	// Discord's limit: at most 5 presence updates per 20 s.
	var updates []time.Time
	for _, f := range frames {
		if f.Op == 3 {
			updates = append(updates, f.At)
		}
	}
	for k := 5; k < len(updates); k++ {
		if updates[k].Sub(updates[k-5]) < 20*time.Second {
			t.Errorf("6 presence updates within %v", updates[k].Sub(updates[k-5]))
		}
	}
	t.Logf("%d presence updates, %d frames in all", len(updates), len(frames))
	for _, f := range frames {
		if len(f.Raw) > 4096 {
			t.Errorf("frame of %d bytes (Discord closes with 4002 over 4096)", len(f.Raw))
		}
		if strings.Contains(f.Raw, discordToken) && f.Op != 2 && f.Op != 6 {
			t.Errorf("the token in an op %d frame", f.Op)
		}
	}
}

// checkBeatSequence: each heartbeat carries the last sequence number received on its
// connection before it (null before any); a dispatch sent within 500 ms of a beat may
// have crossed it on the wire.
func checkBeatSequence(t *testing.T, c *Conn, beats []Frame) {
	t.Helper()
	for _, b := range beats {
		var d *int64
		_ = json.Unmarshal(b.D, &d)
		// The plugin may not have handled what was sent in the last 500 ms: the beat
		// carries the last sequence sent before that (null if none) or a more recent one.
		var settled *int64
		recent := map[int64]bool{}
		for k := range c.Seqs {
			switch {
			case !c.Seqs[k].At.Before(b.At):
			case b.At.Sub(c.Seqs[k].At) >= 500*time.Millisecond:
				settled = &c.Seqs[k].S
			default:
				recent[c.Seqs[k].S] = true
			}
		}
		ok := (d == nil && settled == nil) || (d != nil && (recent[*d] || (settled != nil && *d == *settled)))
		if c.N == 2 && d != nil && settled == nil {
			ok = true // a resumed connection continues the session's sequence
		}
		if !ok {
			t.Errorf("connection %d: heartbeat at %s carries %s, last sequence sent 500 ms before it %v", c.N, b.At.Format("15:04:05.000"), b.D, deref(settled))
		}
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// pluginProblems returns the warnings and errors Navidrome logged about the plugin.
func pluginProblems(log string) string {
	var b strings.Builder
	for _, l := range strings.Split(log, "\n") {
		if logLine.MatchString(l) && (strings.Contains(l, "level=error") || strings.Contains(l, "level=warn")) ||
			failedCallLine.MatchString(l) || failedCallErrors.MatchString(l) {
			b.WriteString("  " + redact(l) + "\n")
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "Navidrome's warnings and errors about the plugin:\n" + b.String()
}

var logLine = regexp.MustCompile(`plugin=` + regexp.QuoteMeta(pluginID) + `\b`)

// checkLogs: the plugin's lines (its own log calls and Navidrome's lines about it) never
// carry the token, and it logged no error; the rest of the log is checked too.
func checkLogs(t *testing.T, log string) {
	t.Helper()
	lines, leaks := 0, 0
	for _, l := range strings.Split(log, "\n") {
		if logLine.MatchString(l) {
			lines++
			if strings.Contains(l, discordToken) {
				t.Errorf("the Discord token in a plugin log line: %s", redact(l))
			}
			if strings.Contains(l, "level=error") {
				t.Errorf("plugin error: %s", l)
			}
		} else if strings.Contains(l, discordToken) {
			leaks++
			t.Errorf("the Discord token in a Navidrome log line: %s", redact(l))
		}
	}
	if lines == 0 {
		t.Errorf("no log line about the plugin: is the log level debug?")
	}
	t.Logf("%d log lines about the plugin, none with the token; %d other lines with it", lines, leaks)
}

// logReportSequence prints the playback reports Navidrome dispatched to the plugin (its
// "Sending PlaybackReport" debug lines), to document what reportPlayback produces.
func logReportSequence(t *testing.T, log string) {
	t.Helper()
	var seq []string
	re := regexp.MustCompile(`state=(\S+).*track="?([^"]*)"?`)
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "Sending PlaybackReport") && strings.Contains(l, pluginID) {
			pos := regexp.MustCompile(`positionMs=(\d+)`).FindStringSubmatch(l)
			st := re.FindStringSubmatch(l)
			if st != nil && pos != nil {
				seq = append(seq, st[1]+"@"+pos[1])
			}
		}
	}
	t.Logf("playback reports dispatched to the plugin: %s", strings.Join(seq, ", "))
}
