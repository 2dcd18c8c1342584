package harness

// Fault injection through Navidrome's real host bindings: each scenario is run
// once clean to number its host calls, then once per (fault kind, host call k)
// with that one call faulted (faults.go, switchboard.go), then a recovery
// event. Every run must hold: no trap, no Go panic; the failed call logged
// WARN/ERROR or returned an error (FaultError); no orphan or duplicate
// schedules or sockets; well-formed per-user cache records; no leak; valid
// frames; and the next playing report shows on a live socket.
//
// FAULT_CASE=<scenario>/<kind>/<k> reruns one case verbosely (logs, host
// calls around k, frame timeline). FAULT_MATRIX=full runs every k for every
// kind; the default (CI) runs every k for "error" and "drop" and every 3rd k
// for the others; -short every 4th k (see matrixKs).

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/navidrome/navidrome/plugins/capabilities"
	"github.com/navidrome/navidrome/plugins/host"
)

const recoveryTitle = "Recovery"

// beatGrace: in these runs the gateway closes (4009) a socket that missed a
// heartbeat by this much, as Discord does with clients that stop heartbeating.
const beatGrace = 20 * time.Second

type faultScenario struct {
	name   string
	extra  map[string]any
	setup  func(*Harness)
	tracks map[string]capabilities.TrackInfo
	steps  func(r *rig)
}

// live returns u's open gateway socket (the newest), nil if none.
func (r *rig) live(u account) *Conn {
	for i := len(r.WS.Conns) - 1; i >= 0; i-- {
		if c := r.WS.Conns[i]; c.Open && strings.HasSuffix(c.ID, ":"+u.name) {
			return c
		}
	}
	return nil
}

func mbzTrack(id, title, album, release, recording string) capabilities.TrackInfo {
	artists := []capabilities.ArtistRef{{ID: "a1", Name: "Radiohead"}}
	return capabilities.TrackInfo{ID: id, Title: title, Artist: "Radiohead", Album: album, AlbumArtist: "Radiohead",
		Artists: artists, AlbumArtists: artists, Duration: 3600, MBZAlbumID: release, MBZRecordingID: recording}
}

// enrichRoutes answers the enrichment lookups: the Cover Art Archive has the
// release "11111111-1111-4111-8111-111111111111" (307 to an http:// archive.org image) and nothing else,
// ListenBrainz finds recording "rec-1" and no metadata match, external-assets
// registers whatever it is given.
func enrichRoutes(h *Harness) {
	h.HTTP.Routes = append(h.HTTP.Routes,
		Route{Method: "HEAD", Prefix: "https://coverartarchive.org/release/11111111-1111-4111-8111-111111111111/", Resp: host.HTTPResponse{StatusCode: 307,
			Headers: map[string]string{"Location": "http://archive.org/download/11111111-1111-4111-8111-111111111111/front.jpg"}}},
		Route{Method: "HEAD", Prefix: "https://coverartarchive.org/", Resp: host.HTTPResponse{StatusCode: 404}},
		Route{Method: "POST", Prefix: "https://labs.api.listenbrainz.org/spotify-id-from-mbid/json",
			Resp: host.HTTPResponse{StatusCode: 200, Body: []byte(`[{"recording_mbid":"rec-1","spotify_track_ids":["4wlLbLeDWbA6TzwZFp1UaK"]}]`)}},
		Route{Method: "POST", Prefix: "https://labs.api.listenbrainz.org/spotify-id-from-metadata/json",
			Resp: host.HTTPResponse{StatusCode: 200, Body: []byte(`[]`)}},
		Route{Method: "POST", Prefix: "https://discord.com/api/v9/applications/" + sliceClientID + "/external-assets",
			Resp: host.HTTPResponse{StatusCode: 200, Body: []byte(`[{"url":"a","external_asset_path":"external/one/a.jpg"},{"url":"b","external_asset_path":"external/two/b.png"}]`)}},
		Route{Method: "POST", Prefix: "https://uguu.se/upload",
			Resp: host.HTTPResponse{StatusCode: 200, Body: []byte(`{"success":true,"files":[{"hash":"h","url":"https://a.uguu.se/up.png"}]}`)}},
	)
	h.Subsonic.Routes["getCoverArt"] = SubsonicResponse{ContentType: "image/png", Body: []byte("\x89PNG fake image")}
}

var enrichTracks = map[string]capabilities.TrackInfo{
	"Karma Police": mbzTrack("t-kp", "Karma Police", "OK Computer", "11111111-1111-4111-8111-111111111111", "rec-1"),
	"Lucky":        mbzTrack("t-lucky", "Lucky", "OK Computer (Deluxe)", "22222222-2222-4222-8222-222222222222", ""),
}

func faultScenarios() []faultScenario {
	return []faultScenario{
		{name: "vertical", setup: enrichRoutes, steps: func(r *rig) {
			r.authorized(alice)
			r.play(alice, "Song A")
			r.Advance(50 * time.Second)
			r.Advance(41 * time.Second)
			r.play(alice, "Song B")
			r.Advance(5 * time.Second)
			r.report(alice, "stopped", "Song B")
			r.Advance(10 * time.Second)
		}},
		{name: "reconnect", setup: enrichRoutes, steps: func(r *rig) {
			r.play(alice, "Song")
			r.Advance(50 * time.Second)
			if c := r.live(alice); c != nil {
				r.WS.ServerDrop(c)
			}
			r.Advance(10 * time.Second) // backoff 1–2 s, Resume, RESUMED
			r.Advance(30 * time.Second)
			if c := r.live(alice); c != nil {
				r.Gateway.Reconnect(c) // op 7: close 4000, Resume
			}
			r.Advance(30 * time.Second)
			if c := r.live(alice); c != nil {
				r.Gateway.InvalidSession(c, false) // op 9 false: Identify after 1–5 s
			}
			r.Advance(10 * time.Second)
			r.Advance(30 * time.Second)
		}},
		{name: "enrich", extra: map[string]any{"caaenabled": true, "spotifylinks": true}, setup: enrichRoutes, tracks: enrichTracks,
			steps: func(r *rig) {
				r.play(alice, "Karma Police") // CAA hit, Spotify by recording id
				r.Advance(30 * time.Second)
				r.play(alice, "Lucky") // CAA 404 → Navidrome's artwork URL, Spotify search
				r.Advance(30 * time.Second)
				r.report(alice, "paused", "Lucky") // pause icon
				r.Advance(30 * time.Second)
				r.play(alice, "Lucky")
				r.Advance(10 * time.Second)
			}},
		{name: "uguu", extra: map[string]any{"uguuenabled": true}, setup: enrichRoutes, tracks: enrichTracks,
			steps: func(r *rig) {
				r.play(alice, "Lucky") // subsonicapi getCoverArt → uguu.se upload → external-assets
				r.Advance(30 * time.Second)
				r.play(alice, "Karma Police")
				r.Advance(10 * time.Second)
			}},
	}
}

// faultRun is the outcome of one scenario run.
type faultRun struct {
	calls    []HostCall // host calls of the scenario steps (not the recovery)
	plan     *FaultPlan
	problems []problem
	scan     LeakScan
	r        *rig
}

type problem struct{ cat, msg string }

// runFault runs sc with kind injected at host call k (k == 0: clean), then
// the recovery, then every check. t only provides the shared runtime; all
// findings are returned.
func runFault(t testing.TB, sc faultScenario, kind FaultKind, k int, verbose bool) (run faultRun) {
	ctb := &caseTB{TB: t}
	var tb testing.TB = ctb
	if verbose {
		tb = t
	}
	runCase(ctb, func() {
		r := loadRig(tb, sc.extra, sc.setup)
		r.tracks = sc.tracks
		r.Gateway.HeartbeatGrace = beatGrace
		run.r = r
		if k > 0 {
			r.Fault = &FaultPlan{At: k, Kind: kind}
		}
		run.plan = r.Fault
		sc.steps(r)
		run.calls = slices.Clone(r.HostCalls)
		r.Fault = nil
		run.problems = append(run.problems, r.recoverAndCheck(alice, recoveryTitle)...)
		run.scan = r.ScanLeaks([]string{alice.token}, nil)
		for _, f := range run.scan.Findings {
			run.problems = append(run.problems, problem{"leak", f})
		}
	})
	for _, e := range ctb.errs {
		cat := "harness"
		switch {
		case strings.HasPrefix(e, "Go panic"):
			cat = "panic"
		case strings.HasPrefix(e, "gateway:"):
			cat = "frame"
		}
		run.problems = append(run.problems, problem{cat, e})
	}
	if p := run.plan; p != nil && p.Hit == nil {
		run.problems = append(run.problems, problem{"harness", fmt.Sprintf("fault %s at host call %d never fired", kind, k)})
	}
	if p := run.plan; p != nil && p.Hit != nil && p.Kind == FaultError && !p.Reported {
		run.problems = append(run.problems, problem{"silent", fmt.Sprintf("%s failed in %s and nothing was logged or returned", p.Hit.Name, p.Hit.Export)})
	}
	return run
}

// recoverAndCheck plays title, lets 3 minutes pass, and checks the end state.
func (r *rig) recoverAndCheck(u account, title string) (ps []problem) {
	add := func(cat, format string, args ...any) { ps = append(ps, problem{cat, fmt.Sprintf(format, args...)}) }
	at := r.Clock.Now()
	r.play(u, title)
	r.Advance(3 * time.Minute)
	for _, c := range r.Calls {
		if c.Trap {
			add("trap", "%s at %s trapped: %v", c.Func, c.At.Format(time.TimeOnly), c.Err)
		}
	}
	c := r.live(u)
	switch {
	case c == nil:
		add("recovery", "no live gateway socket for %s 3 min after the recovery report", u.name)
	default:
		fs := r.Gateway.FramesOn(c, 3)
		if len(fs) == 0 {
			add("recovery", "socket %s shows nothing 3 min after the recovery report", c.ID)
		} else if _, shown := presenceOf(r.t, fs[len(fs)-1]); shown != title || fs[len(fs)-1].At.Before(at) {
			add("recovery", "socket %s shows %q 3 min after the recovery report, want %q", c.ID, shown, title)
		}
	}
	return append(ps, r.stateProblems()...)
}

// timerID matches the plugin's schedule ids, <kind>:<number>:<user>.
var timerID = regexp.MustCompile(`^([a-z0-9]+):(-?\d+):(.+)$`)

// stateProblems checks schedules, sockets and cache records of every user.
func (r *rig) stateProblems() (ps []problem) {
	add := func(cat, format string, args ...any) { ps = append(ps, problem{cat, fmt.Sprintf(format, args...)}) }
	for _, u := range r.users {
		var open []*Conn
		for _, c := range r.WS.Active() {
			if strings.HasSuffix(c.ID, ":"+u.name) {
				open = append(open, c)
			}
		}
		gw, hasGW := r.cacheString("gw." + u.name)
		gen := strings.SplitN(gw, " ", 2)[0]
		if len(open) > 1 {
			add("orphan", "%s has %d open sockets: %v", u.name, len(open), connIDs(open))
		}
		for _, c := range open {
			if !hasGW || c.ID != gen+":"+u.name {
				add("orphan", "%s: open socket %s is not the session's (gw record %q)", u.name, c.ID, gw)
			}
		}
		beats, reconnects := 0, 0
		for _, s := range r.Sched.Active() {
			m := timerID.FindStringSubmatch(s.ID)
			if m == nil || m[3] != u.name {
				continue
			}
			switch {
			case m[1] == "hb" && s.Recurring:
				beats++
				if !slices.ContainsFunc(open, func(c *Conn) bool { return c.ID == m[2]+":"+u.name }) {
					add("schedule", "%s: recurring heartbeat %s without a live connection (open: %v)", u.name, s.ID, connIDs(open))
				}
			case m[1] == "rc":
				reconnects++
			}
		}
		if beats > len(open) {
			add("schedule", "%s: %d recurring heartbeats for %d live connection(s)", u.name, beats, len(open))
		}
		if reconnects > 1 {
			add("schedule", "%s: %d pending reconnects", u.name, reconnects)
		}
		// The link and want per user; the current connection's records per generation.
		for key, check := range map[string]func(string) string{"gw." + u.name: badLink, "want." + u.name: badWant,
			"cn." + gen + "." + u.name: badConn, "tx." + gen + "." + u.name: badSent} {
			if v, ok := r.cacheString(key); ok {
				if why := check(v); why != "" {
					add("cache", "%s = %q: %s", key, v, why)
				}
			}
		}
	}
	return ps
}

func connIDs(cs []*Conn) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

// cacheString reads a live string entry without touching it.
func (r *rig) cacheString(key string) (string, bool) {
	e, ok := r.Cache.Dump()[key]
	if !ok {
		return "", false
	}
	s, ok := e.Value.(string)
	return s, ok
}

var (
	intField = regexp.MustCompile(`^-?\d+$`)
	// gen idle attempts at seq waiting identify_at session_id resume_url
	linkRecord = regexp.MustCompile(`^\d+ [01] \d+ -?\d+ (-|-?\d+) [01] -?\d+ [!-~]* ((wss://[!-~]+)?)$`)
	// phase seq heartbeat status ready ack session_id resume_url
	connRecord = regexp.MustCompile(`^[0-5] (-|-?\d+) \d+ [0-3] -?\d+ -?\d+ [!-~]* ((wss://[!-~]+)?)$`)
)

func badLink(v string) string {
	if !linkRecord.MatchString(v) {
		return "not `gen idle attempts at seq waiting identify_at session_id resume_url`"
	}
	return ""
}

func badConn(v string) string {
	if !connRecord.MatchString(v) {
		return "not `phase seq heartbeat status ready ack session_id resume_url`"
	}
	return ""
}

func badSent(v string) string {
	f := strings.Split(v, " ")
	if len(f) < 3 || len(f) > 8 {
		return fmt.Sprintf("%d fields, want fingerprint start beat and up to 5 times", len(f))
	}
	for _, x := range f {
		if !intField.MatchString(x) {
			return fmt.Sprintf("field %q is not an integer", x)
		}
	}
	return ""
}

func badWant(v string) string {
	// at, start, end, legacy, paused, then the ten texts, separated by DEL (src/store.rs).
	w := strings.Split(v, "\x7f")
	if len(w) != 15 {
		return fmt.Sprintf("%d fields, want 15", len(w))
	}
	for i, x := range w[:5] {
		if _, err := strconv.ParseInt(x, 10, 64); err != nil {
			return fmt.Sprintf("field %d is not an integer", i)
		}
	}
	return ""
}

// Matrix modes: which host-call numbers k each kind is injected at.
const (
	matrixFull    = "full"    // FAULT_MATRIX=full: every applicable k, every kind
	matrixDefault = "default" // every k for error and drop, every 3rd for lost/empty/garbage
	matrixShort   = "short"   // go test -short: every 4th k for every kind
)

func matrixMode() string {
	switch {
	case os.Getenv("FAULT_MATRIX") == "full":
		return matrixFull
	case testing.Short():
		return matrixShort
	}
	return matrixDefault
}

// matrixKs returns the host-call numbers to fault with kind; sampled modes
// rotate the offset per kind, so together the kinds still touch most calls.
func matrixKs(calls []HostCall, kind FaultKind, mode string) []int {
	var ks []int
	for i, c := range calls {
		if !kind.Applies(c) {
			continue
		}
		off := i + slices.Index(FaultKinds, kind)
		if mode == matrixFull || mode == matrixDefault && (kind == FaultError || kind == FaultDrop || off%3 == 0) ||
			mode == matrixShort && off%4 == 0 {
			ks = append(ks, c.N)
		}
	}
	return ks
}

type failureGroup struct {
	cat, kind, fn, export string
	ks                    []int
	first                 string
}

func TestFaultMatrix(t *testing.T) {
	if spec := os.Getenv("FAULT_CASE"); spec != "" {
		reproduceFault(t, spec)
		return
	}
	mode := matrixMode()
	var mu sync.Mutex
	var total, groups int
	var scan LeakScan
	for _, sc := range faultScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			base := runFault(t, sc, "", 0, false)
			for _, p := range base.problems {
				t.Errorf("clean run: [%s] %s", p.cat, p.msg)
			}
			// Any WARN/ERROR of a faulted run must then come from its fault.
			for _, l := range base.r.Logs {
				if l.Level >= extism.LogLevelWarn && !strings.Contains(l.Msg, "gateway connection closed") {
					t.Errorf("clean run logged %s: %s", l.Level, l.Msg)
				}
			}
			if len(base.calls) == 0 {
				t.Fatal("the clean run made no host calls")
			}
			counts := map[string]int{}
			for _, c := range base.calls {
				counts[c.Name]++
			}
			t.Logf("%s: %d host calls in the clean run %v", sc.name, len(base.calls), counts)
			mu.Lock()
			scan.Add(base.scan)
			mu.Unlock()
			for _, kind := range FaultKinds {
				t.Run(string(kind), func(t *testing.T) {
					t.Parallel()
					runs, silent, failures, sc2 := faultKind(t, sc, kind, base.calls, mode)
					quiet := "silent (the failed call neither logged WARN/ERROR nor returned an error)"
					if kind != FaultError {
						quiet = "unnoticed (no WARN/ERROR, no error: informational, the call did not fail)"
					}
					t.Logf("%s/%s: %d faulted runs, %d failure group(s), %s in %d; leak scan: %s", sc.name, kind, runs, failures, quiet, silent, sc2)
					reportf("fault matrix %s/%s: %d host calls, %d runs, %d failure group(s), %s %d", sc.name, kind, len(base.calls), runs, failures,
						strings.Fields(quiet)[0], silent)
					mu.Lock()
					total += runs
					groups += failures
					scan.Add(sc2)
					mu.Unlock()
				})
			}
		})
	}
	t.Cleanup(func() {
		t.Logf("fault matrix (%s): %d runs, %d failure group(s); leak scan: %s", mode, total, groups, scan)
		reportf("fault matrix total (%s): %d runs, %d failure group(s); leak scan %s", mode, total, groups, scan)
	})
}

// faultKind runs sc with kind at every selected k and reports each group of
// failures (same category, host function and export) once, with a reproducer.
func faultKind(t *testing.T, sc faultScenario, kind FaultKind, calls []HostCall, mode string) (runs, silent, failures int, scan LeakScan) {
	groups := map[string]*failureGroup{}
	var keys []string
	for _, k := range matrixKs(calls, kind, mode) {
		run := runFault(t, sc, kind, k, false)
		runs++
		scan.Add(run.scan)
		if p := run.plan; p.Hit != nil && !p.Reported {
			silent++
		}
		hit := calls[k-1]
		for _, p := range run.problems {
			key := strings.Join([]string{p.cat, hit.Name, hit.Export}, "|")
			g := groups[key]
			if g == nil {
				g = &failureGroup{cat: p.cat, kind: string(kind), fn: hit.Name, export: hit.Export, first: p.msg}
				groups[key] = g
				keys = append(keys, key)
			}
			if !slices.Contains(g.ks, k) {
				g.ks = append(g.ks, k)
			}
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		g := groups[key]
		t.Errorf("[%s] fault %s at %s (in %s), %d case(s), k=%v\n    first: %s\n    reproduce: FAULT_CASE=%s/%s/%d go test -run 'TestFaultMatrix' -v",
			g.cat, g.kind, g.fn, g.export, len(g.ks), g.ks, g.first, sc.name, g.kind, g.ks[0])
	}
	return runs, silent, len(groups), scan
}

// reproduceFault reruns one case (FAULT_CASE=<scenario>/<kind>/<k>) with the
// real test as the harness's T, and dumps what happened.
func reproduceFault(t *testing.T, spec string) {
	parts := strings.Split(spec, "/")
	if len(parts) != 3 {
		t.Fatalf("FAULT_CASE=%q: want <scenario>/<kind>/<k>", spec)
	}
	k, err := strconv.Atoi(parts[2])
	if err != nil {
		t.Fatalf("FAULT_CASE=%q: bad k", spec)
	}
	i := slices.IndexFunc(faultScenarios(), func(s faultScenario) bool { return s.name == parts[0] })
	if i < 0 {
		t.Fatalf("FAULT_CASE=%q: no scenario %q", spec, parts[0])
	}
	run := runFault(t, faultScenarios()[i], FaultKind(parts[1]), k, true)
	for _, p := range run.problems {
		t.Errorf("[%s] %s", p.cat, p.msg)
	}
	if run.r == nil {
		return
	}
	if p := run.plan; p != nil && p.Hit != nil {
		t.Logf("fault %s at host call #%d %s in %s at %s; reported: %v; request %s", p.Kind, p.Hit.N, p.Hit.Name, p.Hit.Export,
			p.Hit.At.Format(time.TimeOnly), p.Reported, p.Hit.Request)
	}
	for _, c := range run.r.HostCalls[max(0, k-6):min(len(run.r.HostCalls), k+5)] {
		t.Logf("  host call #%d %s %s in %s%s: %.200s", c.N, c.At.Format(time.TimeOnly), c.Name, c.Export, map[bool]string{true: " <== " + string(c.Fault)}[c.Fault != ""], c.Request)
	}
	for _, l := range run.r.Logs {
		if l.Level >= extism.LogLevelInfo {
			t.Logf("[%s %s %s] %s", l.At.Format(time.TimeOnly), l.Level, l.Func, l.Msg)
		}
	}
	run.r.DumpTimeline()
	t.Logf("schedules at the end: %v", run.r.activeIDs())
}
