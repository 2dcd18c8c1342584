package harness

// Concurrent mode (sim.go): scenarios where Navidrome runs plugin calls at the
// same time — timer firings, websocket read loops, the scrobbler's workers —
// each run over many seeds, one interleaving per seed, with invariants
// checked after every seed. A failure prints its seed and the command that
// replays it; testdata/concurrency-seeds.txt (`scenario seed` per line)
// replays in every run.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/navidrome/navidrome/plugins/capabilities"
)

const (
	// presenceBound: the last wanted presence (or the clear, after the
	// plugin's 5 s stop grace) must reach the fake Discord within this much
	// virtual time after the last scenario event. Discord allows 5 presence
	// updates per 20 s per connection, so an update wanted right after a
	// burst may wait up to 20 s for the budget; the stop grace (5 s) and a
	// reconnect with resume (Hello, Resume, RESUMED) plus a retry fit in the
	// remaining 10 s.
	presenceBound = 30 * time.Second
	// concDefaultSeeds per scenario in a plain `go test` (CONC_SEEDS overrides).
	concDefaultSeeds = 200
	// concSeedFile lists failing seeds kept as regressions.
	concSeedFile = "testdata/concurrency-seeds.txt"
)

type concScenario struct {
	name  string
	about string
	users []account
	run   func(cr *concRig)
	// weight scales CONC_SEEDS for this scenario, in percent (0: 100), so
	// the cheap scenarios get more seeds and the run time stays even.
	weight int
}

// seeds is the number of seeds sc runs when CONC_SEEDS (or the default) is n.
func (sc concScenario) seeds(n int) int {
	if sc.weight == 0 {
		return n
	}
	return n * sc.weight / 100
}

// concRig is one seed of one scenario: the plugin in concurrent mode, the
// scenario's events, and what each user should see at the end.
type concRig struct {
	*rig
	sim     *Sim
	pt      *PlayTracker
	rng     *rand.Rand // scenario choices (independent of the interleaving)
	start   time.Time
	last    time.Time
	want    map[string]wantState // what each user's Discord should show
	other   map[string]wantState // the latest of another player of that user
	started map[string]playStart // user/player → title and its start
	viol    []string
	recs    map[string]gwRecord
}

type wantState struct {
	title, player string
	paused        bool
}

func (cr *concRig) violf(format string, args ...any) {
	cr.viol = append(cr.viol, fmt.Sprintf(format, args...))
}

// rel formats a virtual time as an offset from the scenario start.
func (cr *concRig) rel(t time.Time) string { return "t=" + t.Sub(cr.start).String() }

// at schedules a scenario event d after the start.
func (cr *concRig) at(d time.Duration, f func()) {
	t := cr.start.Add(d)
	if t.After(cr.last) {
		cr.last = t
	}
	cr.sim.At(t, f)
}

// pick returns one of xs, chosen by the scenario RNG.
func pick[T any](cr *concRig, xs ...T) T { return xs[cr.rng.Intn(len(xs))] }

// offset is a small extra delay: most often none (events on whole seconds
// meet the plugin's whole-second timers), sometimes a few milliseconds.
func (cr *concRig) offset() time.Duration {
	return pick(cr, 0, 0, 0, time.Millisecond, 5*time.Millisecond, 15*time.Millisecond)
}

// heartbeat sets Hello's interval and a strict deadline: the gateway closes
// 4009 a socket whose next heartbeat is later than the interval plus half of
// it (at most 20 s), so a single lost beat is caught.
func (cr *concRig) heartbeat(ms int) {
	cr.Gateway.HeartbeatMs = ms
	cr.Gateway.HeartbeatGrace = min(beatGrace, time.Duration(ms)*time.Millisecond/2)
}

// report is one ReportPlayback of u on player, dispatched like Navidrome.
func (cr *concRig) report(u account, player, state, title string) {
	now := cr.Clock.Now()
	key := u.name + "/" + player
	if p := cr.started[key]; p.title != title {
		cr.started[key] = playStart{title, now}
	}
	artists := []capabilities.ArtistRef{{ID: "a1", Name: "Artist"}}
	track := capabilities.TrackInfo{ID: "id-" + title, Title: title, Artist: "Artist", Album: "Album", AlbumArtist: "Artist",
		Artists: artists, AlbumArtists: artists, Duration: 3600}
	cr.pt.Report(capabilities.PlaybackReportRequest{Username: u.name, Track: track, State: state,
		PositionMs: now.Sub(cr.started[key].at).Milliseconds(), PlaybackRate: 1, PlayerId: player, PlayerName: "NavidromeUI",
		Timestamp: now.Unix()})
	// Whose track is shown (README: players): the track that started last; another
	// player's progress of a track it was known to play, or its pause, changes nothing;
	// when the shown player stops, the other's track comes back unless it is paused.
	shown, other := cr.want[u.name], cr.other[u.name]
	rep := wantState{title, player, state == "paused"}
	switch {
	case state == "stopped" && shown.player == player:
		shown, other = wantState{}, wantState{}
		if o := cr.other[u.name]; o.title != "" && !o.paused {
			shown = o
		}
	case state == "stopped":
		if other.player == player {
			other = wantState{}
		}
	case shown.title == "" || shown.player == player:
		shown = rep
		if other.player == player {
			other = wantState{}
		}
	case !rep.paused && (state == "starting" || other.player != player || other.title != title):
		shown, other = rep, shown
	default:
		other = rep
	}
	cr.want[u.name], cr.other[u.name] = shown, other
}

func (cr *concRig) play(u account, title string) { cr.report(u, "p1", "playing", title) }

// liveConns returns u's sockets the server still serves (open, close not read).
func (cr *concRig) liveConns(user string) []*Conn {
	var out []*Conn
	for _, c := range cr.WS.Conns {
		if c.Open && !c.Ended && !c.broken && connUser(c.ID) == user {
			out = append(out, c)
		}
	}
	return out
}

// onLive runs f on each user's live socket(s) at the time of the event.
func (cr *concRig) onLive(f func(c *Conn)) {
	for _, u := range cr.users {
		for _, c := range cr.liveConns(u.name) {
			f(c)
		}
	}
}

var concScenarios = []concScenario{
	{name: "ready", weight: 150, about: "connect → Hello → READY while a report arrives and the first heartbeat (jitter 0 s possible) is due",
		run: func(cr *concRig) {
			hb := pick(cr, 1000, 2000, 5000, 41250)
			cr.heartbeat(hb)
			// A late Hello and READY, but READY within the plugin's deadline
			// (one heartbeat interval after Hello).
			cr.Gateway.ReplyDelay = min(secs(cr, 0, 1, 2), time.Duration(hb/2)*time.Millisecond-time.Second)
			if cr.Gateway.ReplyDelay < 0 {
				cr.Gateway.ReplyDelay = 0
			}
			cr.at(0, func() { cr.play(alice, "Song") })
			cr.at(secs(cr, 0, 1, 2, 3, 4)+cr.offset(), func() { cr.play(alice, "Next") })
			if cr.rng.Intn(2) == 0 {
				cr.at(secs(cr, 4, 5, 6)+cr.offset(), func() { cr.play(alice, "Third") })
			}
		}},
	{name: "flappy", weight: 50, about: "1 s heartbeats, the gateway closes resumably (4000 or a drop) every 2–5 s, tracks change every 2–4 s",
		run: func(cr *concRig) {
			cr.heartbeat(1000)
			at := time.Duration(0)
			for i := 0; i < 8; i++ {
				title := fmt.Sprintf("Track %d", i)
				cr.at(at, func() { cr.play(alice, title) })
				at += secs(cr, 2, 3, 4) + cr.offset()
			}
			for c := secs(cr, 2, 3) + cr.offset(); c < at; c += secs(cr, 2, 3, 4, 5) + cr.offset() {
				drop := cr.rng.Intn(3) == 0
				cr.at(c, func() {
					cr.onLive(func(c *Conn) {
						if drop {
							cr.WS.ServerDrop(c)
						} else {
							cr.WS.ServerClose(c, 4000, "Unknown error.")
						}
					})
				})
			}
		}},
	{name: "webui", about: "the web UI's pattern: each event is a playback report and a now-playing at once; skip = stopped then playing; pause/resume",
		run: func(cr *concRig) {
			cr.heartbeat(pick(cr, 41250, 5000))
			cur, n := "Song 0", 0
			cr.at(0, func() { cr.report(alice, "p1", "starting", "Song 0"); cr.report(alice, "p1", "playing", "Song 0") })
			at := time.Duration(0)
			for i := 0; i < 6; i++ {
				at += secs(cr, 1, 2, 3, 5) + cr.offset()
				switch cr.rng.Intn(3) {
				case 0: // skip
					n++
					old, next := cur, fmt.Sprintf("Song %d", n)
					cur = next
					cr.at(at, func() { cr.report(alice, "p1", "stopped", old); cr.report(alice, "p1", "playing", next) })
				case 1: // pause, resume later
					title := cur
					cr.at(at, func() { cr.report(alice, "p1", "paused", title) })
					at += secs(cr, 1, 2, 4) + cr.offset()
					cr.at(at, func() { cr.report(alice, "p1", "playing", title) })
				default: // a periodic playing report
					title := cur
					cr.at(at, func() { cr.report(alice, "p1", "playing", title) })
				}
			}
			if cr.rng.Intn(2) == 0 {
				title := cur
				at += secs(cr, 1, 2, 3) + cr.offset()
				cr.at(at, func() { cr.report(alice, "p1", "stopped", title) })
			}
		}},
	{name: "multi", about: "two users, and two players of one user, in parallel",
		users: []account{alice, bob},
		run: func(cr *concRig) {
			cr.heartbeat(pick(cr, 41250, 3000))
			type lane struct {
				u      account
				player string
			}
			lanes := []lane{{alice, "p1"}, {alice, "p2"}, {bob, "p1"}}
			for li, l := range lanes {
				at := time.Duration(li) * pick(cr, 0, time.Second)
				for i := 0; i < 5; i++ {
					title := fmt.Sprintf("%s %s %d", l.u.name, l.player, i)
					state := pick(cr, "playing", "playing", "playing", "paused", "stopped")
					if i == 0 {
						state = "playing"
					}
					cr.at(at, func() { cr.report(l.u, l.player, state, title) })
					at += secs(cr, 1, 2, 3) + cr.offset()
				}
			}
		}},
	{name: "bursts", about: "op 7 and op 9 bursts (and op 1 requests) while tracks change",
		run: func(cr *concRig) {
			cr.heartbeat(pick(cr, 41250, 2000))
			at := time.Duration(0)
			for i := 0; i < 5; i++ {
				title := fmt.Sprintf("Track %d", i)
				cr.at(at, func() { cr.play(alice, title) })
				at += secs(cr, 2, 3, 4, 6) + cr.offset()
			}
			for b := secs(cr, 1, 2) + cr.offset(); b < at; b += secs(cr, 2, 3, 4) + cr.offset() {
				kind := cr.rng.Intn(5)
				cr.at(b, func() {
					cr.onLive(func(c *Conn) {
						switch kind {
						case 0:
							cr.Gateway.Reconnect(c)
						case 1:
							cr.Gateway.Reconnect(c)
							cr.Gateway.Reconnect(c)
						case 2:
							cr.Gateway.InvalidSession(c, true)
						case 3:
							cr.Gateway.InvalidSession(c, false)
						default:
							cr.Gateway.RequestHeartbeat(c)
							cr.Gateway.RequestHeartbeat(c)
						}
					})
				})
			}
		}},
}

// concResult is the outcome of one seed.
type concResult struct {
	scenario   string
	seed       int64
	viol       []string
	context    []string // failed calls and collisions, to explain violations
	collisions int
	calls      int
	digest     string // the interleaving's fingerprint (determinism check)
}

// runConc runs one seed of sc. verbose uses t directly (logs, timeline).
func runConc(t testing.TB, sc concScenario, seed int64, verbose bool) (res concResult) {
	res.scenario, res.seed = sc.name, seed
	ctb := &caseTB{TB: t}
	var tb testing.TB = ctb
	if verbose {
		tb = t
	}
	var cr *concRig
	runCase(ctb, func() {
		users := sc.users
		if len(users) == 0 {
			users = []account{alice}
		}
		r := loadRig(tb, nil, enrichRoutes, users...)
		cr = &concRig{rig: r, rng: rand.New(rand.NewSource(seed*7919 + 17)), start: r.Clock.Now(),
			want: map[string]wantState{}, other: map[string]wantState{}, started: map[string]playStart{}, recs: map[string]gwRecord{}}
		cr.last = cr.start
		cr.sim = NewSim(r.Harness, seed)
		cr.pt = NewPlayTracker(cr.sim)
		cr.Cache.Watch = cr.watchRecord
		sc.run(cr)
		// The bound runs from the last event, or from when the identify budget the
		// gateway's invalid sessions spent meanwhile allows a new session.
		for until := cr.last.Add(presenceBound); ; {
			cr.sim.Run(until)
			next := cr.budgetAllows(cr.last).Add(presenceBound)
			if !next.After(until) {
				break
			}
			until = next
		}
		cr.check()
		cr.sim.Drain()
	})
	for _, e := range ctb.errs {
		res.viol = append(res.viol, "harness: "+e)
	}
	if cr == nil || cr.sim == nil {
		return res
	}
	res.viol = append(res.viol, cr.viol...)
	res.collisions, res.calls = cr.sim.Collisions, len(cr.Calls)
	res.context = cr.explain()
	res.digest = cr.digest()
	if verbose {
		cr.DumpLogs()
		cr.DumpTimeline()
	}
	return res
}

// watchRecord checks every write of a gateway record against the previous
// write of the same record: the link's generation never decreases, a
// connection's phase never goes back, the sequence number never decreases
// within a session.
func (cr *concRig) watchRecord(key string, value any) {
	rec, ok := parseRecord(key, value)
	if !ok {
		return
	}
	by := "?"
	if c := cr.Current(); c != nil {
		by = c.Func
	}
	if prev, seen := cr.recs[rec.Key]; seen {
		switch {
		case rec.Gen < prev.Gen:
			cr.violf("record went back: %s at %s: generation %d after %d (written by %s: %q)", key, cr.rel(cr.Clock.Now()), rec.Gen, prev.Gen, by, value)
		case rec.Phase < prev.Phase:
			cr.violf("record went back: %s at %s: phase %d after %d (written by %s: %q)", key, cr.rel(cr.Clock.Now()), rec.Phase, prev.Phase, by, value)
		case rec.Session != "" && rec.Session == prev.Session && rec.HasSeq && prev.HasSeq && rec.Seq < prev.Seq:
			cr.violf("record went back: %s at %s: seq %d after %d in session %s (written by %s)", key, cr.rel(cr.Clock.Now()), rec.Seq, prev.Seq, rec.Session, by)
		}
	}
	cr.recs[rec.Key] = rec
}

// The identify budget the plugin keeps (src/gateway/session.rs), a GCRA: four new
// sessions at once, then one every 20 minutes. An account that identifies in a loop is
// what Discord flags, so once the gateway's invalid sessions have spent it, the plugin
// waits, and the presence is due a bound after the budget allows the next new session.
const (
	identifyBurst = 4
	identifyEvery = 20 * time.Minute
)

// budget walks u's Identifies through the identify budget: when it allows the next new
// session, and the Identifies it did not allow.
func (cr *concRig) budget(u account) (next time.Time, over []IdentifyAt) {
	var tat time.Time
	for _, id := range cr.Gateway.Identifies {
		if !strings.HasSuffix(id.Conn.ID, ":"+u.name) {
			continue
		}
		// The plugin counts from when it dials; the Identify arrives a moment later.
		if tat.Sub(id.At) > (identifyBurst-1)*identifyEvery+time.Second {
			over = append(over, id)
		}
		if tat.Before(id.At) {
			tat = id.At
		}
		tat = tat.Add(identifyEvery)
	}
	return tat.Add(-(identifyBurst - 1) * identifyEvery), over
}

// budgetAllows is the later of t and, for each user, when the budget allows a new
// session after the Identifies the gateway received.
func (cr *concRig) budgetAllows(t time.Time) time.Time {
	for _, u := range cr.users {
		if next, _ := cr.budget(u); next.After(t) {
			t = next
		}
	}
	return t
}

// check runs the invariants once the scenario and its bound are over.
func (cr *concRig) check() {
	g := cr.Gateway
	for _, p := range cr.sim.Panics {
		cr.violf("harness: %s", p)
	}
	// No new session beyond the identify budget.
	for _, u := range cr.users {
		if _, over := cr.budget(u); len(over) > 0 {
			cr.violf("identify budget: %s identified on %s at %s, beyond %d at once and one every %s", u.name, over[0].Conn.ID, cr.rel(over[0].At), identifyBurst, identifyEvery)
		}
	}
	// The last wanted presence (or the clear) is what Discord shows.
	for _, u := range cr.users {
		w := cr.want[u.name]
		live := cr.liveConns(u.name)
		var ready *Conn
		for _, c := range live {
			if g.SessionOn(c) != nil {
				ready = c
			}
		}
		shown, at := "", time.Time{}
		if ready != nil {
			for _, f := range g.Frames {
				if f.Op == 3 && g.SessionOn(f.Conn) == g.SessionOn(ready) {
					_, shown = presenceOf(cr.t, f)
					at = f.At
				}
			}
		}
		switch {
		case w.title != "" && ready == nil:
			cr.violf("presence lost: %s wants %q but has no ready gateway socket %s after the last event (live: %v)", u.name, w.title, presenceBound, connIDs(live))
		case shown != w.title:
			since := "never set"
			if !at.IsZero() {
				since = "since " + cr.rel(at)
			}
			cr.violf("presence lost: %s's Discord shows %q (%s), want %q within %s of the last event (%s)", u.name, shown, since, w.title, presenceBound, cr.rel(cr.last))
		}
	}
	for _, c := range cr.WS.Conns {
		if n := g.MaxInWindow(c, 20*time.Second, 3); n > maxPresencePer20s {
			cr.violf("rate: %d presence updates in 20 s on %s, max %d", n, c.ID, maxPresencePer20s)
		}
	}
	// At most one open socket per user at any instant (by event order).
	endN := func(c *Conn) int {
		for _, e := range c.Events {
			if e.Kind == "close" || e.Kind == "error" {
				return e.N
			}
		}
		return 1 << 62
	}
	for i, a := range cr.WS.Conns {
		for _, b := range cr.WS.Conns[i+1:] {
			if connUser(a.ID) == connUser(b.ID) && b.OpenN >= a.OpenN && b.OpenN < endN(a) {
				cr.violf("two sockets: %s opened at %s while %s (opened %s) was still open", b.ID, cr.rel(b.Opened), a.ID, cr.rel(a.Opened))
			}
		}
	}
	// No Identify where a Resume would have done.
	for _, id := range g.Identifies {
		for _, s := range id.Resumable {
			if cr.knew(s, id.N) {
				cr.violf("needless Identify: on %s at %s, although session %s (its READY delivered) was still resumable", id.Conn.ID, cr.rel(id.At), s.ID)
			}
		}
	}
	// Heartbeats: the gateway closes 4009 a socket that missed one.
	for _, c := range g.Timeouts {
		cr.violf("heartbeat lost: %s closed 4009 at %s (no heartbeat within %s + %s)", c.ID, cr.rel(endAt(c)), time.Duration(g.HeartbeatMs)*time.Millisecond, g.HeartbeatGrace)
	}
	// Two calls acting on the same state: a first heartbeat scheduled twice
	// (two answers to one Hello). The reconnect timer rc:<gen>, the send lock
	// sl:<gen> and the recurring heartbeat hb:<gen> (armed by the first beat's
	// sender and by the first beat's own timer) are asked for by several callers
	// on purpose: the scheduler's refusal of a duplicate id is what keeps one of
	// each (src/store.rs), so their refusals are not violations, but the plugin
	// must not log them as failures.
	for _, o := range cr.Sched.Ops {
		if k := timerKind(o.ID); strings.Contains(o.Err, "already exists") && k == "b1" {
			cr.violf("duplicate schedule: %s at %s: %s", o.Kind, cr.rel(o.At), o.Err)
		}
	}
	for _, l := range cr.Logs {
		if l.Level >= extism.LogLevelWarn && strings.Contains(l.Msg, "already exists") {
			cr.violf("duplicate logged: %s at %s: %s", l.Func, cr.rel(l.At), l.Msg)
		}
	}
	// A call that trapped for another reason than the host's panic.
	for _, c := range cr.Calls {
		if c.Trap && !strings.Contains(c.Err.Error(), ConcurrentWrite) {
			cr.violf("trap: %s at %s: %s", c.Func, cr.rel(c.At), firstLine(c.Err.Error()))
		}
	}
}

// knew reports whether the plugin had received session s's READY (or a
// RESUMED of it) before event n.
func (cr *concRig) knew(s *GatewaySession, n int) bool {
	for _, c := range cr.WS.Conns {
		if cr.Gateway.SessionOn(c) != s {
			continue
		}
		for _, e := range c.Events {
			if e.N < n && e.Kind == "recv" && strings.Contains(e.Text, `"session_id":"`+s.ID+`"`) {
				return true
			}
		}
	}
	return false
}

func endAt(c *Conn) time.Time {
	for _, e := range c.Events {
		if e.Kind == "close" || e.Kind == "error" {
			return e.At
		}
	}
	return time.Time{}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// explain lists the collisions (which frame hit which writer) and failed calls.
func (cr *concRig) explain() (out []string) {
	for _, c := range cr.WS.Conns {
		var held *Frame
		fs := cr.Gateway.FramesOn(c)
		for _, e := range c.Events {
			if e.Kind != "collision" {
				continue
			}
			for i := range fs {
				if !fs[i].At.After(e.At) {
					held = &fs[i]
				}
			}
			line := fmt.Sprintf("collision at %s on %s: op %d could not be sent", cr.rel(e.At), c.ID, opOf(e.Text))
			if held != nil {
				line += fmt.Sprintf(" while op %d (%s, %s) held the writer", held.Op, viaName(held.Via), cr.rel(held.At))
			}
			out = append(out, line)
		}
	}
	for _, c := range cr.Calls {
		if c.Err != nil {
			out = append(out, fmt.Sprintf("failed call %s at %s: %s", describeCall(c), cr.rel(c.At), firstLine(c.Err.Error())))
		}
	}
	for _, l := range cr.Logs {
		if l.Level >= extism.LogLevelWarn {
			out = append(out, fmt.Sprintf("plugin %s at %s in %s: %s", l.Level, cr.rel(l.At), l.Func, l.Msg))
		}
	}
	return out
}

func viaName(r *Result) string {
	if r == nil {
		return "no call"
	}
	return describeCall(*r)
}

// describeCall names a call with its schedule id or connection, if any.
func describeCall(r Result) string {
	var in struct {
		ScheduleID   string `json:"scheduleId"`
		ConnectionID string `json:"connectionId"`
		Message      string `json:"message"`
		State        string `json:"state"`
	}
	_ = json.Unmarshal(r.Input, &in)
	switch {
	case in.ScheduleID != "":
		return r.Func + " " + in.ScheduleID
	case in.Message != "":
		m := in.Message
		if len(m) > 40 {
			m = m[:40] + "…"
		}
		return r.Func + " " + m
	case in.State != "":
		return r.Func + " " + in.State
	}
	return r.Func
}

// digest fingerprints the interleaving: every call and every frame in order.
func (cr *concRig) digest() string {
	var b strings.Builder
	for _, c := range cr.Calls {
		fmt.Fprintf(&b, "%s %d %s %v|", c.At.Format(time.RFC3339Nano), len(c.Input), c.Func, c.Err != nil)
	}
	for _, f := range cr.Gateway.Frames {
		fmt.Fprintf(&b, "%s %s %s|", f.At.Format(time.RFC3339Nano), f.Conn.ID, f.Raw)
	}
	return fmt.Sprintf("%d calls, %d frames, %x", len(cr.Calls), len(cr.Gateway.Frames), fnv64(b.String()))
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// concSeeds is the number of seeds per scenario: CONC_SEEDS, else the default
// (a quarter of it with -short).
func concSeeds(t *testing.T) int {
	if v := os.Getenv("CONC_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("CONC_SEEDS=%q: want a number of seeds", v)
		}
		return n
	}
	if testing.Short() {
		return concDefaultSeeds / 4
	}
	return concDefaultSeeds
}

// concRegressions reads the regression seeds per scenario.
func concRegressions(t *testing.T) map[string][]int64 {
	out := map[string][]int64{}
	f, err := os.Open(concSeedFile)
	if os.IsNotExist(err) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		seed, err := strconv.ParseInt(fs[len(fs)-1], 10, 64)
		if len(fs) != 2 || err != nil {
			t.Fatalf("%s:%d: want `scenario seed`, got %q", concSeedFile, n, line)
		}
		out[fs[0]] = append(out[fs[0]], seed)
	}
	return out
}

// concTotals are summed over all scenarios for the summary line.
var concTotals struct {
	sync.Mutex
	seeds, failed, violations, collisions, calls int

	classes map[string]int // violations by class (the text before the first ':')
}

// TestConcurrent runs every scenario over many seeds (CONC_SEEDS), the
// regression seeds first. CONC_SEED=n runs only seed n, with logs and timeline.
func TestConcurrent(t *testing.T) {
	sharedRuntime(t)
	n := concSeeds(t)
	regress := concRegressions(t)
	only := os.Getenv("CONC_SEED")
	show := 4 // failing seeds printed in full per scenario (CONC_SHOW)
	if v, err := strconv.Atoi(os.Getenv("CONC_SHOW")); err == nil {
		show = v
	}
	t.Cleanup(func() {
		concTotals.Lock()
		defer concTotals.Unlock()
		if concTotals.seeds > 0 {
			var classes []string
			for c, n := range concTotals.classes {
				classes = append(classes, fmt.Sprintf("%s %d", c, n))
			}
			slices.Sort(classes)
			reportf("concurrency: %d interleavings (%d plugin calls), %d collisions (gorilla panics), %d invariant violations in %d failing seeds (%s)",
				concTotals.seeds, concTotals.calls, concTotals.collisions, concTotals.violations, concTotals.failed, strings.Join(classes, ", "))
		}
	})
	for _, sc := range concScenarios {
		t.Run(sc.name, func(t *testing.T) {
			var seeds []int64
			if only != "" {
				s, err := strconv.ParseInt(only, 10, 64)
				if err != nil {
					t.Fatalf("CONC_SEED=%q", only)
				}
				seeds = []int64{s}
			} else {
				t.Parallel()
				seeds = append(seeds, regress[sc.name]...)
				for s := int64(1); s <= int64(sc.seeds(n)); s++ {
					seeds = append(seeds, s)
				}
			}
			var failed, viols, colls, calls, shown int
			var failing []string
			for _, seed := range seeds {
				res := runConc(t, sc, seed, only != "")
				colls += res.collisions
				calls += res.calls
				if len(res.viol) == 0 {
					continue
				}
				failed++
				viols += len(res.viol)
				failing = append(failing, strconv.FormatInt(seed, 10))
				concTotals.Lock()
				if concTotals.classes == nil {
					concTotals.classes = map[string]int{}
				}
				for _, v := range res.viol {
					class, _, _ := strings.Cut(v, ":")
					concTotals.classes[class]++
				}
				concTotals.Unlock()
				if shown++; shown <= show || only != "" {
					t.Errorf("%s", res.report())
				}
			}
			if failed > show && only == "" {
				t.Errorf("%s: %d of %d seeds failed (first %d shown; CONC_SHOW=n for more)", sc.name, failed, len(seeds), show)
			}
			t.Logf("%s: %d seeds, %d plugin calls, %d collisions, %d violations in %d seeds", sc.name, len(seeds), calls, colls, viols, failed)
			if len(failing) > 0 {
				t.Logf("%s failing seeds: %s", sc.name, strings.Join(failing, " "))
			}
			concTotals.Lock()
			concTotals.seeds += len(seeds)
			concTotals.failed += failed
			concTotals.violations += viols
			concTotals.collisions += colls
			concTotals.calls += calls
			concTotals.Unlock()
		})
	}
}

// report is the failure message of one seed.
func (res concResult) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s seed %d: %d invariant violation(s)\n", res.scenario, res.seed, len(res.viol))
	for i, v := range res.viol {
		if i == 8 {
			fmt.Fprintf(&b, "  … %d more\n", len(res.viol)-8)
			break
		}
		fmt.Fprintf(&b, "  - %s\n", v)
	}
	for i, c := range res.context {
		if i == 8 {
			fmt.Fprintf(&b, "    … %d more\n", len(res.context)-8)
			break
		}
		fmt.Fprintf(&b, "    %s\n", c)
	}
	fmt.Fprintf(&b, "  replay: CONC_SEED=%d go test -run 'TestConcurrent/%s$' -v   (keep it: add `%s %d` to harness/%s)",
		res.seed, res.scenario, res.scenario, res.seed, concSeedFile)
	return b.String()
}

// TestConcurrentDeterminism: a seed is one interleaving, bit for bit.
func TestConcurrentDeterminism(t *testing.T) {
	sharedRuntime(t)
	for _, sc := range concScenarios {
		for _, seed := range []int64{3, 11} {
			a, b := runConc(t, sc, seed, false), runConc(t, sc, seed, false)
			if a.digest != b.digest || strings.Join(a.viol, "\n") != strings.Join(b.viol, "\n") {
				t.Errorf("%s seed %d ran twice differently:\n  %s\n  %s", sc.name, seed, a.digest, b.digest)
			}
		}
	}
}

// secs returns one of xs seconds, chosen by the scenario RNG.
func secs(cr *concRig, xs ...int) time.Duration { return time.Duration(pick(cr, xs...)) * time.Second }
