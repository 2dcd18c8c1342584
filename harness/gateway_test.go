package harness

// Black-box Discord gateway scenarios against the real plugin.wasm: one test per
// behaviour of the plugin's gateway contract (reconnects, resumes, close codes,
// heartbeats, rate limits, idle close, status). Every test also checks the
// invariants in checkInvariants when it ends. HARNESS_DUMP=1 prints the plugin's
// logs and the frame timeline of passing tests too.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/navidrome/navidrome/plugins/capabilities"
	"github.com/navidrome/navidrome/plugins/host"
)

const resumeGateway = "wss://gateway-us-east1-b.discord.gg/?v=10&encoding=json"

type account struct{ name, token string }

var (
	alice = account{"alice", sliceToken}
	bob   = account{"bob", "tok-bob-SECRET"}
)

// closeReasons are the texts Discord sends with its close codes.
var closeReasons = map[int32]string{1006: "unexpected EOF", 4004: "Authentication failed.", 4008: "Rate limited.", 4009: "Session timed out."}

// rig is the plugin loaded with the presence config plus scenario helpers.
type rig struct {
	*Harness
	t       testing.TB
	users   []account
	playing map[string]playStart // per user: the title playing and since when
	// tracks overrides the track reported for a title (default: a one-hour
	// track by "Artist" on "Album").
	tracks map[string]capabilities.TrackInfo
	// scanned: scanAll already ran (newRig's cleanup runs it otherwise).
	scanned bool
}

type playStart struct {
	title string
	at    time.Time
}

// newRig loads the plugin for users (default alice) with the vertical-slice
// config plus extra keys, and registers the invariant checks and, on failure,
// the log and frame-timeline dumps.
func newRig(t *testing.T, extra map[string]any, users ...account) *rig {
	t.Helper()
	r := loadRig(t, extra, nil, users...)
	t.Cleanup(func() {
		r.checkInvariants()
		if !r.scanned {
			r.scanAll()
		}
		if t.Failed() || os.Getenv("HARNESS_DUMP") != "" {
			r.DumpLogs()
			r.DumpTimeline()
		}
	})
	return r
}

// loadRig loads the plugin for users (default alice) with the vertical-slice
// config plus extra keys; setup (optional) runs before nd_on_init.
func loadRig(t testing.TB, extra map[string]any, setup func(*Harness), users ...account) *rig {
	t.Helper()
	if len(users) == 0 {
		users = []account{alice}
	}
	var list []map[string]string
	var granted []host.User
	for _, u := range users {
		list = append(list, map[string]string{"username": u.name, "token": u.token})
		granted = append(granted, host.User{UserName: u.name})
	}
	raw := map[string]any{"clientid": sliceClientID, "users": list}
	maps.Copy(raw, extra)
	js, _ := json.Marshal(raw)
	cfg, err := ConfigFromJSON(string(js))
	if err != nil {
		t.Fatal(err)
	}
	var setups []func(*Harness)
	if setup != nil {
		setups = append(setups, setup)
	}
	return &rig{Harness: loadConfigured(t, cfg, granted, setups...), t: t, users: users, playing: map[string]playStart{}}
}

// report sends a playback report for a one-hour track named title; the
// position counts from the first report of that title.
func (r *rig) report(u account, state, title string) Result {
	now := r.Clock.Now()
	if p := r.playing[u.name]; p.title != title {
		r.playing[u.name] = playStart{title, now}
	}
	artists := []capabilities.ArtistRef{{ID: "a1", Name: "Artist"}}
	track := capabilities.TrackInfo{ID: "id-" + title, Title: title, Artist: "Artist", Album: "Album", AlbumArtist: "Artist",
		Artists: artists, AlbumArtists: artists, Duration: 3600}
	if tr, ok := r.tracks[title]; ok {
		track = tr
	}
	return r.Call("nd_scrobbler_playback_report", capabilities.PlaybackReportRequest{Username: u.name, Track: track, State: state,
		PositionMs: now.Sub(r.playing[u.name].at).Milliseconds(), PlaybackRate: 1, PlayerId: "p1", PlayerName: "NavidromeUI",
		Timestamp: now.Unix()}, nil)
}

func (r *rig) play(u account, title string) Result { return r.report(u, "playing", title) }

func (r *rig) authorized(u account) string {
	return string(r.Call("nd_scrobbler_is_authorized", capabilities.IsAuthorizedRequest{Username: u.name}, new(bool)).Output)
}

// connects counts websocket_connect calls, failed ones included.
func (r *rig) connects() (n int) {
	for _, o := range r.WS.Ops {
		if o.Kind == "connect" {
			n++
		}
	}
	return n
}

// ready plays title for u and expects one new socket to the default gateway
// that Identifies with u's token and, after READY, shows title.
func (r *rig) ready(t *testing.T, u account, title string) *Conn {
	t.Helper()
	n := len(r.WS.Conns)
	r.play(u, title)
	if len(r.WS.Conns) != n+1 {
		t.Fatalf("playing %q: want exactly one new gateway connection, got %d; ops %+v", title, len(r.WS.Conns)-n, r.WS.Ops)
	}
	c := r.WS.Conns[n]
	r.expectIdentify(t, c, u, title)
	return c
}

// expectIdentify checks that c went to the default gateway, Identified with
// u's token (no Resume), and then showed title.
func (r *rig) expectIdentify(t *testing.T, c *Conn, u account, title string) {
	t.Helper()
	if c.URL != sliceGateway {
		t.Errorf("connection %s: url %q, want %q", c.ID, c.URL, sliceGateway)
	}
	fs := r.Gateway.FramesOn(c)
	if len(fs) == 0 || fs[0].Op != 2 || authOf(fs[0]).Token != u.token {
		t.Fatalf("connection %s: first frame must be Identify with %s's token, got %v", c.ID, u.name, fs)
	}
	if rs := r.Gateway.FramesOn(c, 6); len(rs) != 0 {
		t.Errorf("connection %s: Resume sent on an identified socket: %v", c.ID, rs)
	}
	if _, got := r.shown(t, c); got != title {
		t.Errorf("connection %s: after READY the presence shows %q, want %q; op 3 frames: %v", c.ID, got, title, r.Gateway.FramesOn(c, 3))
	}
}

// expectResume checks that next replaced old: a new id on url whose first
// frame is Resume of sess at seq, with no Identify, and the gateway accepted it.
func (r *rig) expectResume(t *testing.T, old, next *Conn, url string, sess *GatewaySession, seq int) {
	t.Helper()
	if next.ID == old.ID {
		t.Errorf("new socket reuses connection id %q", old.ID)
	}
	if next.URL != url {
		t.Errorf("reconnect url %q, want %q", next.URL, url)
	}
	fs := r.Gateway.FramesOn(next)
	if len(fs) == 0 || fs[0].Op != 6 {
		t.Fatalf("first frame on the new socket must be Resume (op 6), got %v", fs)
	}
	if d := authOf(fs[0]); d.Token != sess.Token || d.SessionID != sess.ID || d.Seq == nil || *d.Seq != seq {
		t.Errorf("resume payload %s, want session_id %q seq %d and the user's token", fs[0].Raw, sess.ID, seq)
	}
	if ids := r.Gateway.FramesOn(next, 2); len(ids) != 0 {
		t.Errorf("Identify sent on the resume socket: %v", ids)
	}
	if r.Gateway.SessionOn(next) != sess {
		t.Errorf("the gateway did not resume session %s on %s", sess.ID, next.ID)
	}
}

// expectClientClose checks that the plugin itself closed c with code.
func (r *rig) expectClientClose(t *testing.T, c *Conn, code int32) time.Time {
	t.Helper()
	for _, e := range c.Events {
		if e.Kind == "close" {
			if c.ClosedBy != "client" || e.Code != code {
				t.Errorf("connection %s closed by %s with %d, want closed by the plugin with %d", c.ID, c.ClosedBy, e.Code, code)
			}
			return e.At
		}
	}
	t.Errorf("connection %s: the plugin did not close it (want code %d); events %v", c.ID, code, c.Events)
	return time.Time{}
}

// awaitConn returns connection number n (0-based), advancing in 1 s steps for
// at most limit until it exists.
func (r *rig) awaitConn(t *testing.T, n int, limit time.Duration) *Conn {
	t.Helper()
	for start := r.Clock.Now(); len(r.WS.Conns) <= n; r.Advance(time.Second) {
		if r.Clock.Now().Sub(start) >= limit {
			t.Fatalf("no new gateway connection within %s; ops %+v", limit, r.WS.Ops)
		}
	}
	return r.WS.Conns[n]
}

// newOnce returns the one active one-time schedule created since scheduler op
// number mark.
func (r *rig) newOnce(t *testing.T, mark int) Schedule {
	t.Helper()
	var out []Schedule
	for _, o := range r.Sched.Ops[mark:] {
		if s, ok := r.Sched.Get(o.Result); ok && o.Kind == "once" {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		t.Fatalf("want exactly one new one-time schedule, got %+v; ops %+v", out, r.Sched.Ops[mark:])
	}
	return out[0]
}

// closeByServer has the gateway close c with code and expects no reconnect at
// once but one new one-time schedule (the backoff), which it returns.
func (r *rig) closeByServer(t *testing.T, c *Conn, code int32) Schedule {
	t.Helper()
	mark, n := len(r.Sched.Ops), len(r.WS.Conns)
	r.WS.ServerClose(c, code, closeReasons[code])
	r.Pump()
	if len(r.WS.Conns) != n {
		t.Fatalf("close %d: reconnected at once, want a backoff first: %s", code, r.WS.Conns[n].URL)
	}
	return r.newOnce(t, mark)
}

// serverClose is closeByServer, then runs the backoff and returns it and the
// new connection, opened when it fired.
func (r *rig) serverClose(t *testing.T, c *Conn, code int32) (Schedule, *Conn) {
	t.Helper()
	n := len(r.WS.Conns)
	s := r.closeByServer(t, c, code)
	r.Advance(s.Next.Sub(r.Clock.Now()))
	return s, r.awaitConn(t, n, 0)
}

// steady advances d and checks the heartbeat schedules: exactly one recurring
// schedule, beats only on c, c open.
func (r *rig) steady(t *testing.T, c *Conn, d time.Duration) {
	t.Helper()
	before := len(r.Gateway.FramesOn(c, 1))
	r.Advance(d)
	var rec []Schedule
	for _, s := range r.Sched.Active() {
		if s.Recurring {
			rec = append(rec, s)
		}
	}
	if len(rec) != 1 {
		t.Errorf("want exactly one recurring (heartbeat) schedule, got %+v", rec)
	}
	if !c.Open || len(r.Gateway.FramesOn(c, 1)) == before {
		t.Errorf("connection %s: open=%v, no heartbeat in %s", c.ID, c.Open, d)
	}
	for _, f := range r.Gateway.Frames {
		if f.Conn != c && f.At.After(c.Opened) && f.Conn.Opened.Before(c.Opened) {
			t.Errorf("frame on an old connection %s after %s opened: %s", f.Conn.ID, c.ID, f.Raw)
		}
	}
}

// shown returns the status and title of c's last op 3 ("" title: cleared).
func (r *rig) shown(t *testing.T, c *Conn) (status, title string) {
	t.Helper()
	fs := r.Gateway.FramesOn(c, 3)
	if len(fs) == 0 {
		return "", ""
	}
	return presenceOf(t, fs[len(fs)-1])
}

func presenceOf(t testing.TB, f Frame) (status, title string) {
	t.Helper()
	var p struct {
		Status     string     `json:"status"`
		Activities []activity `json:"activities"`
	}
	if err := f.Decode(&p); err != nil {
		t.Fatalf("op 3 d: %v: %s", err, f.Raw)
	}
	if len(p.Activities) > 0 {
		title = p.Activities[0].Details
	}
	return p.Status, title
}

// auth is the d of Identify (op 2) and Resume (op 6).
type auth struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Seq       *int   `json:"seq"`
}

func authOf(f Frame) (d auth) {
	_ = f.Decode(&d)
	return d
}

func (r *rig) activeIDs() []string {
	var ids []string
	for _, s := range r.Sched.Active() {
		ids = append(ids, fmt.Sprintf("%s@%s", s.ID, s.Next.Format(time.TimeOnly)))
	}
	return ids
}

// checkInvariants holds in every scenario: no trap, no failed callback, no
// token in logs or errors, a new id for every socket, no failed send/close,
// and heartbeats only on schedule or in answer to op 1, carrying the last s.
func (r *rig) checkInvariants() {
	t := r.t
	for _, c := range r.Calls {
		if c.Trap || c.Err != nil && (strings.HasPrefix(c.Func, "nd_websocket_") || c.Func == "nd_scheduler_callback") {
			t.Errorf("%s at %s failed (trap=%v): %v", c.Func, c.At.Format(time.TimeOnly), c.Trap, c.Err)
		}
	}
	for _, u := range r.users {
		r.AssertNoSecret(u.token)
	}
	seen := map[string]bool{}
	for _, c := range r.WS.Conns {
		if seen[c.ID] {
			t.Errorf("connection id %q used for two sockets", c.ID)
		}
		seen[c.ID] = true
	}
	for _, o := range r.WS.Ops {
		if o.Err != "" && !(o.Kind == "connect" && strings.HasPrefix(o.Err, "failed to connect: ")) {
			t.Errorf("websocket_%s %s at %s: %s", o.Kind, o.ID, o.At.Format(time.TimeOnly), o.Err)
		}
	}
	r.checkBeatSeq()
	r.checkBeatOrigin()
}

// checkBeatSeq: every heartbeat is exactly {"op":1,"d":s} with s the last
// sequence number the user's session delivered (null right after Identify).
func (r *rig) checkBeatSeq() {
	type ev struct {
		c *Conn
		e Event
	}
	var evs []ev
	for _, c := range r.WS.Conns {
		for _, e := range c.Events {
			evs = append(evs, ev{c, e})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].e.N < evs[j].e.N })
	last := map[string]string{} // chain (token) → last s
	for _, x := range evs {
		var f map[string]json.RawMessage
		if json.Unmarshal([]byte(x.e.Text), &f) != nil {
			continue
		}
		chain := r.tokenOn(x.c)
		switch op := string(f["op"]); {
		case x.e.Kind == "recv" && op == "0" && string(f["s"]) != "null":
			last[chain] = string(f["s"])
		case x.e.Kind == "send" && op == "2":
			delete(last, chain)
		case x.e.Kind == "send" && op == "1":
			want := cmpOr(last[chain], "null")
			if len(f) != 2 || string(f["d"]) != want {
				r.t.Errorf("heartbeat at %s on %s is %s, want {\"op\":1,\"d\":%s}", x.e.At.Format(time.TimeOnly), x.c.ID, x.e.Text, want)
			}
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// tokenOn returns the token c identified or resumed with, else its id.
func (r *rig) tokenOn(c *Conn) string {
	for _, e := range c.Sent() {
		var f struct {
			Op int  `json:"op"`
			D  auth `json:"d"`
		}
		if json.Unmarshal([]byte(e.Text), &f) == nil && (f.Op == 2 || f.Op == 6) {
			return f.D.Token
		}
	}
	return c.ID
}

// checkBeatOrigin: a heartbeat is sent either while handling an op 1 from the
// server on that socket, or by a heartbeat schedule (one-time within the
// interval, or "@every <interval>s"); per socket the first scheduled beat
// comes within [0, interval] of Hello, the next ones one interval apart.
func (r *rig) checkBeatOrigin() {
	interval := time.Duration(r.Gateway.HeartbeatMs) * time.Millisecond
	every := fmt.Sprintf("@every %ds", r.Gateway.HeartbeatMs/1000)
	prev := map[*Conn]time.Time{}
	for _, f := range r.Gateway.Frames {
		if f.Op != 1 {
			continue
		}
		v := f.Via
		var in struct {
			ConnectionID string `json:"connectionId"`
			Message      string `json:"message"`
			ScheduleID   string `json:"scheduleId"`
		}
		if v != nil {
			_ = json.Unmarshal(v.Input, &in)
		}
		switch {
		case v != nil && v.Func == "nd_websocket_on_text_message" && in.ConnectionID == f.Conn.ID && opOf(in.Message) == 1:
			continue
		case v != nil && v.Func == "nd_scheduler_callback":
			if o := r.schedOp(in.ScheduleID, f.At); !(o.Kind == "recurring" && o.Cron == every || o.Kind == "once" && o.Delay <= int32(interval/time.Second)) {
				r.t.Errorf("heartbeat at %s on %s sent by schedule %+v, which is not a heartbeat schedule", f.At.Format(time.TimeOnly), f.Conn.ID, o)
			}
		default:
			r.t.Errorf("heartbeat at %s on %s sent outside the schedule and not in answer to op 1 (by %+v)", f.At.Format(time.TimeOnly), f.Conn.ID, v)
			continue
		}
		from, lo, hi := prev[f.Conn], interval-2*time.Second, interval
		if from.IsZero() {
			from, lo = r.helloAt(f.Conn), 0
		}
		if gap := f.At.Sub(from); gap < lo || gap > hi {
			r.t.Errorf("scheduled heartbeat at %s on %s comes %s after the previous beat (or Hello), want [%s, %s]", f.At.Format(time.TimeOnly), f.Conn.ID, gap, lo, hi)
		}
		prev[f.Conn] = f.At
	}
}

func opOf(frame string) int {
	var f struct {
		Op int `json:"op"`
	}
	if json.Unmarshal([]byte(frame), &f) != nil {
		return -1
	}
	return f.Op
}

func (r *rig) helloAt(c *Conn) time.Time {
	for _, e := range c.Events {
		if e.Kind == "recv" && opOf(e.Text) == 10 {
			return e.At
		}
	}
	return c.Opened
}

// schedOp returns the scheduler call that created id most recently before at.
func (r *rig) schedOp(id string, at time.Time) (found SchedOp) {
	for _, o := range r.Sched.Ops {
		if o.Result == id && o.Kind != "cancel" && !o.At.After(at) {
			found = o
		}
	}
	return found
}

// settled loads the plugin for alice, shows "Song" and runs 50 s: past the
// first heartbeat, with the recurring heartbeat schedule running.
func settled(t *testing.T) (*rig, *Conn) {
	t.Helper()
	r := newRig(t, nil)
	c := r.ready(t, alice, "Song")
	r.Advance(50 * time.Second)
	return r, c
}

func TestGatewayHeartbeatRequest(t *testing.T) {
	r := newRig(t, nil)
	c := r.ready(t, alice, "Song")
	r.Gateway.Dispatch(c, "READY_SUPPLEMENTAL", `{"guilds":[]}`)
	r.Pump()
	for _, at := range []time.Duration{0, 70 * time.Second} { // before the first beat, and between regular beats
		r.Advance(at)
		before, n := r.activeIDs(), len(r.Gateway.Frames)
		r.Gateway.RequestHeartbeat(c)
		r.Pump()
		got := r.Gateway.Frames[n:]
		if len(got) != 1 || !isHeartbeat(got[0], r.Gateway.SessionOn(c).Seq) || got[0].Via == nil || got[0].Via.Func != "nd_websocket_on_text_message" {
			t.Errorf("op 1 at +%s: want exactly one immediate {\"op\":1,\"d\":%d} from the op 1 callback, got %v", at, r.Gateway.SessionOn(c).Seq, got)
		}
		if after := r.activeIDs(); !slices.Equal(before, after) {
			t.Errorf("op 1 changed the schedules: %v → %v", before, after)
		}
	}
	r.steady(t, c, 2*time.Minute) // regular beats go on (timing: checkBeatOrigin)
}

func TestGatewayReconnectResume(t *testing.T) {
	for _, tc := range []struct{ name, inject string }{{"op7", `{"op":7,"d":null}`}, {"op9_true", `{"op":9,"d":true}`}} {
		t.Run(tc.name, func(t *testing.T) {
			r, c1 := settled(t)
			r.Gateway.Dispatch(c1, "READY_SUPPLEMENTAL", `{"guilds":[]}`)
			r.Pump()
			sess, old := r.Gateway.SessionOn(c1), r.Sched.Active()
			seq := sess.Seq
			r.Gateway.Inject(c1, tc.inject)
			r.Pump()
			c2 := r.awaitConn(t, 1, 0)
			r.expectClientClose(t, c1, 4000)
			r.expectResume(t, c1, c2, resumeGateway, sess, seq)

			for _, s := range old {
				if cur, ok := r.Sched.Get(s.ID); ok && cur.Created.Equal(s.Created) {
					t.Errorf("schedule %s of the old socket still active after the reconnect", s.ID)
				}
			}
			r.steady(t, c2, 2*time.Minute)
			// What went out on the old socket may never have arrived: the presence is sent
			// once more on the resumed one (when the rate budget allows), and only once.
			if fs := r.Gateway.FramesOn(c2, 3); len(fs) != 1 {
				t.Errorf("want the presence sent exactly once after RESUMED, got %v", fs)
			}
			if len(r.WS.Conns) != 2 {
				t.Errorf("want 2 connections in all, got %d", len(r.WS.Conns))
			}
		})
	}
}

func TestGatewayInvalidSessionIdentify(t *testing.T) {
	r, c1 := settled(t)
	mark, at := len(r.Sched.Ops), r.Clock.Now()
	r.Gateway.InvalidSession(c1, false)
	r.Pump()
	r.expectClientClose(t, c1, 4000)
	if len(r.WS.Conns) != 1 {
		t.Fatalf("op 9 false: reconnected at once, want a 1–5 s wait")
	}
	if s := r.newOnce(t, mark); s.Delay < 1 || s.Delay > 5 {
		t.Errorf("op 9 false: wait of %d s, want 1–5 s", s.Delay)
	}
	c2 := r.awaitConn(t, 1, 6*time.Second)
	if wait := c2.Opened.Sub(at); wait < time.Second || wait > 5*time.Second {
		t.Errorf("reconnected %s after op 9 false, want 1–5 s", wait)
	}
	r.expectIdentify(t, c2, alice, "Song")
	r.steady(t, c2, 2*time.Minute)
}

func TestGatewayZombie(t *testing.T) {
	r := newRig(t, nil)
	c1 := r.ready(t, alice, "Song")
	sess := r.Gateway.SessionOn(c1)
	r.Gateway.NoAck[c1] = true
	for i := 0; len(r.Gateway.FramesOn(c1, 1)) == 0; i++ {
		if i > 42 {
			t.Fatal("no first heartbeat within 42 s of Hello")
		}
		r.Advance(time.Second)
	}
	beat := r.Gateway.FramesOn(c1, 1)[0].At
	c2 := r.awaitConn(t, 1, 43*time.Second)
	closed := r.expectClientClose(t, c1, 4000)
	if gap := closed.Sub(beat); gap < 40*time.Second || gap > 42*time.Second {
		t.Errorf("zombie close %s after the unanswered beat, want it at the next scheduled beat (~41 s)", gap)
	}
	if n := len(r.Gateway.FramesOn(c1, 1)); n != 1 {
		t.Errorf("want exactly one (unanswered) heartbeat on the zombie socket, got %d", n)
	}
	r.expectResume(t, c1, c2, resumeGateway, sess, 1)
	r.steady(t, c2, 2*time.Minute)
}

func TestGatewayAbnormalCloseBackoff(t *testing.T) {
	r, c1 := settled(t)
	sess := r.Gateway.SessionOn(c1)
	s, c2 := r.serverClose(t, c1, 1006)
	if s.Delay < 1 || s.Delay > 2 {
		t.Errorf("first reconnect after 1006 waits %d s, want 1–2 s", s.Delay)
	}
	r.expectResume(t, c1, c2, resumeGateway, sess, 1)
	r.Advance(50 * time.Second)

	// Dials fail: the backoff grows (never below half the previous delay, the
	// bottom of its jitter window), stays ≤ 60 s, and slows attempts down.
	r.Gateway.DialError = errors.New("dial tcp 162.159.135.234:443: connect: connection refused")
	s = r.closeByServer(t, c2, 1006)
	var delays []int32
	var tries []time.Time
	for i := 0; i < 10; i++ {
		delays = append(delays, s.Delay)
		mark, n := len(r.Sched.Ops), r.connects()
		r.Advance(s.Next.Sub(r.Clock.Now()))
		if r.connects() != n+1 {
			t.Fatalf("attempt %d: want exactly one connect when the backoff fires, got %d", i+1, r.connects()-n)
		}
		tries = append(tries, r.Clock.Now())
		s = r.newOnce(t, mark)
	}
	t.Logf("backoff delays (s) after failed dials: %v", delays)
	if delays[0] < 1 || delays[0] > 2 {
		t.Errorf("first delay %d s, want 1–2 s (the backoff resets after RESUMED)", delays[0])
	}
	for i, d := range delays {
		if d > 60 || i > 0 && 2*d < delays[i-1] {
			t.Errorf("delay %d is %d s after %d s: want ≤ 60 s and ≥ half the previous", i+1, d, delays[max(i-1, 0)])
		}
	}
	for i := 4; i < len(tries); i++ {
		n := 0
		for _, at := range tries[i:] {
			if at.Sub(tries[i]) < time.Minute {
				n++
			}
		}
		if n > 5 {
			t.Errorf("%d attempts in the minute from %s, want ≤ 5 after the first few", n, tries[i].Format(time.TimeOnly))
		}
	}

	// The network is back: the next attempt connects and the presence is live.
	r.Gateway.DialError = nil
	n := len(r.WS.Conns)
	r.Advance(s.Next.Sub(r.Clock.Now()))
	c3 := r.awaitConn(t, n, 0)
	if fs := r.Gateway.FramesOn(c3); len(fs) == 0 || fs[0].Op == 2 {
		r.expectIdentify(t, c3, alice, "Song")
	} else if r.Gateway.SessionOn(c3) != sess {
		t.Errorf("recovery: want Identify or a Resume of %s, got %v", sess.ID, fs)
	}
	r.steady(t, c3, 2*time.Minute)
}

func TestGatewayAuthFailed(t *testing.T) {
	r := newRig(t, nil)
	r.Gateway.RejectTokens[alice.token] = true
	r.play(alice, "Song")
	if len(r.WS.Conns) != 1 || len(r.Gateway.FramesOn(r.WS.Conns[0], 2)) != 1 || r.WS.Conns[0].ClosedBy != "server" {
		t.Fatalf("want one socket that Identified and was closed with 4004; events %v", r.WS.Conns)
	}
	r.Advance(time.Hour)
	r.expectStopped(t, alice, 1, 0)
	var errs []string
	for _, l := range r.Logs {
		if l.Level == extism.LogLevelError {
			errs = append(errs, l.Msg)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "4004") || !strings.Contains(strings.ToLower(errs[0]), "token") || !strings.Contains(strings.ToLower(errs[0]), "invalid") {
		t.Errorf("want exactly one ERROR log line naming 4004 and the invalid token, got %q", errs)
	}
}

// expectStopped checks that u is done for: neither time nor a further playing
// report brings a connect or a schedule (is_authorized still answers by the
// config, as the spec has it); conns and
// scheds are the totals expected (other users' included).
func (r *rig) expectStopped(t *testing.T, u account, conns, scheds int) {
	t.Helper()
	for i, step := range []string{"after 4004", "after a further playing report"} {
		if i == 1 {
			r.play(u, "Another Song")
			r.Advance(time.Minute)
		}
		// Still configured, so still authorized (spec: `users` decides): the stop is the
		// connection's, and the events it is then sent do nothing.
		if got := r.authorized(u); got != "true" {
			t.Errorf("%s: is_authorized(%s) = %q, want true", step, u.name, got)
		}
		if n, act := r.connects(), r.Sched.Active(); n != conns || len(act) != scheds {
			t.Errorf("%s: %d connect(s) and schedules %+v, want %d and %d schedule(s)", step, n, act, conns, scheds)
		}
	}
}

func TestGatewayRateLimitedClose(t *testing.T) {
	r, c1 := settled(t)
	sess, at := r.Gateway.SessionOn(c1), r.Clock.Now()
	s, c2 := r.serverClose(t, c1, 4008)
	t.Logf("4008: reconnect after %d s", s.Delay)
	if waited := c2.Opened.Sub(at); s.Delay < 30 || waited < 30*time.Second {
		t.Errorf("4008: reconnected after %s (schedule of %d s), want ≥ 30 s", waited, s.Delay)
	}
	r.expectResume(t, c1, c2, resumeGateway, sess, 1)
	r.steady(t, c2, 2*time.Minute)
}

func TestGatewaySessionTimeout(t *testing.T) {
	r, c1 := settled(t)
	s, c2 := r.serverClose(t, c1, 4009)
	t.Logf("4009: reconnect after %d s", s.Delay)
	r.expectIdentify(t, c2, alice, "Song")
	r.steady(t, c2, 2*time.Minute)
}

func TestGatewayBigReady(t *testing.T) {
	r := newRig(t, nil)
	r.Gateway.ReadyJunk = 2 << 20
	r.Gateway.ResumeURL = "wss://gateway-us-west1-c.discord.gg"
	c1 := r.ready(t, alice, "Song")
	for _, c := range r.Calls { // report only: memory after the call (linear memory never shrinks) and time
		if c.Func == "nd_websocket_on_text_message" {
			t.Logf("on_text_message with %d bytes of input: plugin memory %d pages (%d KiB) after the call, wall time %s", len(c.Input), c.Pages, c.Pages*64, c.Wall)
		}
	}
	sess := r.Gateway.SessionOn(c1)
	r.Gateway.Reconnect(c1)
	r.Pump()
	// Asked to reconnect before any heartbeat ACK: not a stable session, so backoff.
	c2 := r.awaitConn(t, 1, 2*time.Second)
	r.expectClientClose(t, c1, 4000)
	r.expectResume(t, c1, c2, "wss://gateway-us-west1-c.discord.gg/?v=10&encoding=json", sess, 1)
}

func TestGatewayStorm(t *testing.T) {
	r := newRig(t, nil)
	c := r.ready(t, alice, "Track 00")
	for i := 1; i <= 50; i++ {
		r.Advance(200 * time.Millisecond)
		r.play(alice, fmt.Sprintf("Track %02d", i))
	}
	last, final := r.Clock.Now(), -1
	for s := 0; s <= 60; s++ { // find the second the final track appears, then watch a minute
		if s > 0 {
			r.Advance(time.Second)
		}
		for i, f := range r.Gateway.FramesOn(c, 3) {
			if _, title := presenceOf(t, f); final < 0 && title == "Track 50" {
				final = i
			}
		}
	}
	ops3 := r.Gateway.FramesOn(c, 3)
	perMin, per20 := r.Gateway.MaxInWindow(c, time.Minute), r.Gateway.MaxInWindow(c, 20*time.Second, 3)
	latency := "never"
	if final >= 0 {
		latency = ops3[final].At.Sub(last).String()
	}
	t.Logf("storm: %d op 3 in all (max %d in any 20 s), max %d frames in any 60 s; final track shown %s after the last change",
		len(ops3), per20, perMin, latency)
	if per20 > 5 || perMin > 120 || len(r.WS.Conns) != 1 {
		t.Errorf("limits: %d op 3 in 20 s (max 5), %d frames in 60 s (max 120), %d connections (want 1)", per20, perMin, len(r.WS.Conns))
	}
	switch {
	case final < 0:
		t.Errorf("the final track never showed within 60 s; op 3 frames: %v", ops3)
	case ops3[final].At.Sub(last) > 5*time.Second:
		t.Errorf("the final track showed %s after the last change, want ≤ 5 s", ops3[final].At.Sub(last))
	case final != len(ops3)-1:
		t.Errorf("op 3 sent after the final track: %v", ops3[final+1:])
	}
}

// A new session's first update goes out from a gateway callback (READY), long
// after the last report: it must count at the time it is sent, so that track
// changes right after it stay within 5 updates per 20 s on the new socket.
func TestGatewayStormAfterNewSession(t *testing.T) {
	r, c1 := settled(t)
	r.Gateway.InvalidSession(c1, false)
	r.Pump()
	c2 := r.awaitConn(t, 1, 6*time.Second)
	r.expectIdentify(t, c2, alice, "Song")
	for i := 1; i <= 30; i++ {
		r.Advance(time.Second)
		r.play(alice, fmt.Sprintf("Track %02d", i))
	}
	r.Advance(time.Minute)
	if per20 := r.Gateway.MaxInWindow(c2, 20*time.Second, 3); per20 > maxPresencePer20s {
		t.Errorf("%d presence updates within 20 s on the new socket, max %d: %v", per20, maxPresencePer20s, r.Gateway.FramesOn(c2, 3))
	}
	if _, title := r.shown(t, c2); title != "Track 30" {
		t.Errorf("shows %q, want the last track", title)
	}
}

func TestGatewayIdleClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		idle time.Duration
	}{{"default_10min", nil, 10 * time.Minute}, {"idleminutes_2", map[string]any{"idleminutes": 2}, 2 * time.Minute}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.cfg)
			c1, stop := r.stopAndClear(t)
			for c1.Open && r.Clock.Now().Sub(stop) < tc.idle+2*time.Minute {
				r.Advance(10 * time.Second)
			}
			closed := r.expectClientClose(t, c1, 1000)
			if idle := closed.Sub(stop); idle < tc.idle || idle > tc.idle+70*time.Second {
				t.Errorf("idle close %s after stopped, want %s (+ up to a minute)", idle, tc.idle)
			}
			r.Advance(2 * time.Minute)
			if act := r.Sched.Active(); len(act) != 0 {
				t.Errorf("schedules left with no socket: %+v", act)
			}
			n := len(r.WS.Conns)
			r.play(alice, "Next")
			r.expectIdentify(t, r.awaitConn(t, n, 0), alice, "Next")
		})
	}
	t.Run("playing_keeps_socket", func(t *testing.T) {
		r := newRig(t, nil)
		c1, _ := r.stopAndClear(t)
		r.Advance(5 * time.Minute)
		r.play(alice, "Next")
		for i := 0; i < 15; i++ {
			r.Advance(time.Minute)
			r.play(alice, "Next")
		}
		if _, title := r.shown(t, c1); !c1.Open || len(r.WS.Conns) != 1 || title != "Next" {
			t.Errorf("want the one socket kept and showing Next: open=%v conns=%d shown=%q", c1.Open, len(r.WS.Conns), title)
		}
	})
}

// stopAndClear shows a song, stops it and expects the clear within the 5 s
// grace with the socket still open.
func (r *rig) stopAndClear(t *testing.T) (*Conn, time.Time) {
	t.Helper()
	c := r.ready(t, alice, "Song")
	r.Advance(30 * time.Second)
	stop := r.Clock.Now()
	r.report(alice, "stopped", "Song")
	r.Advance(5 * time.Second)
	if fs := r.Gateway.FramesOn(c, 3); len(fs) != 2 || !c.Open {
		t.Fatalf("want the clear within 5 s of stopped and the socket open (open=%v): %v", c.Open, fs)
	}
	if _, title := r.shown(t, c); title != "" {
		t.Fatalf("the last op 3 after stopped still shows %q", title)
	}
	return c, stop
}

func TestGatewayStatus(t *testing.T) {
	session := func(id, status string) string {
		return fmt.Sprintf(`{"session_id":%q,"client_info":{"version":0,"os":"windows","client":"desktop"},"status":%q,"activities":[],"hidden_activities":[]}`, id, status)
	}
	list := func(s ...string) string { return "[" + strings.Join(s, ",") + "]" }
	for _, tc := range []struct {
		name, status, sessions, want string
	}{
		{"no_other_session", "", "", "online"},
		{"other_session_dnd", "", list(session("other-1", "dnd")), "dnd"},
		{"all_and_own_ignored", "", list(session("all", "dnd"), session("SELF", "idle")), "online"},
		{"auto_learns_idle", "auto", list(session("all", "dnd"), session("other-1", "idle")), "idle"},
		{"config_online", "online", list(session("other-1", "dnd")), "online"},
		{"config_idle", "idle", list(session("other-1", "dnd")), "idle"},
		{"config_dnd", "dnd", "", "dnd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg map[string]any
			if tc.status != "" {
				cfg = map[string]any{"status": tc.status}
			}
			r := newRig(t, cfg)
			r.Gateway.ReadySessions = func(self string) string { return strings.ReplaceAll(cmpOr(tc.sessions, "[]"), "SELF", self) }
			c := r.ready(t, alice, "Song")
			if got, _ := r.shown(t, c); got != tc.want {
				t.Errorf("status %q, want %q; READY sessions %s", got, tc.want, tc.sessions)
			}
		})
	}
	t.Run("sessions_replace", func(t *testing.T) {
		r := newRig(t, nil)
		c := r.ready(t, alice, "Song")
		self := r.Gateway.SessionOn(c).ID
		for i, step := range []struct{ sessions, want string }{
			{list(session("other-2", "idle"), session("all", "dnd")), "idle"},
			{list(session(self, "dnd"), session("all", "dnd")), "online"},
			{list(session("other-3", "dnd")), "dnd"},
		} {
			r.Gateway.Dispatch(c, "SESSIONS_REPLACE", step.sessions)
			r.Advance(30 * time.Second)
			title := fmt.Sprintf("Song %d", i+1)
			r.play(alice, title)
			if got, shown := r.shown(t, c); got != step.want || shown != title {
				t.Errorf("after SESSIONS_REPLACE %s: presence %q with status %q, want %q with %q", step.sessions, shown, got, title, step.want)
			}
		}
	})
}

func TestGatewayTwoUsers(t *testing.T) {
	r := newRig(t, nil, alice, bob)
	r.Gateway.RejectTokens[bob.token] = true
	ca := r.ready(t, alice, "Song A")
	r.play(bob, "Song B")
	if len(r.WS.Conns) != 2 || r.tokenOn(r.WS.Conns[1]) != bob.token || r.WS.Conns[1].ClosedBy != "server" {
		t.Fatalf("want bob's socket to Identify and be closed with 4004: %v", r.WS.Conns)
	}
	r.Advance(5 * time.Minute)
	if beats := r.Gateway.FramesOn(ca, 1); !ca.Open || len(beats) < 6 {
		t.Errorf("alice: open=%v, %d heartbeats in 5 min (want ≥ 6)", ca.Open, len(beats))
	}
	r.expectStopped(t, bob, 2, 1)
	if got := r.authorized(alice); got != "true" {
		t.Errorf("is_authorized(alice) = %q, want true", got)
	}
	r.steady(t, ca, 2*time.Minute)
	r.play(alice, "Song A2")
	if _, title := r.shown(t, ca); title != "Song A2" || len(r.WS.Conns) != 2 {
		t.Errorf("alice: shown %q on %d sockets, want Song A2 on her one socket", title, len(r.WS.Conns))
	}
}

func TestGatewayStaleCallbacks(t *testing.T) {
	r, c1 := settled(t)
	oldScheds := r.Sched.Active()
	r.Gateway.Reconnect(c1)
	r.Pump()
	// Asked to reconnect before any heartbeat ACK: not a stable session, so backoff.
	c2 := r.awaitConn(t, 1, 2*time.Second)
	r.Advance(time.Second)
	stale := []struct {
		fn    string
		input any
	}{
		{"nd_websocket_on_text_message", capabilities.OnTextMessageRequest{ConnectionID: c1.ID, Message: `{"op":1,"d":null}`}},
		{"nd_websocket_on_text_message", capabilities.OnTextMessageRequest{ConnectionID: c1.ID, Message: `{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}`}},
		{"nd_websocket_on_text_message", capabilities.OnTextMessageRequest{ConnectionID: c1.ID, Message: `{"op":7,"d":null}`}},
		{"nd_websocket_on_text_message", capabilities.OnTextMessageRequest{ConnectionID: c1.ID, Message: `{"op":9,"d":false}`}},
		{"nd_websocket_on_text_message", capabilities.OnTextMessageRequest{ConnectionID: c1.ID, Message: `{"op":0,"t":"READY","s":9,"d":{"session_id":"other","resume_gateway_url":"wss://x.discord.gg"}}`}},
		{"nd_websocket_on_error", capabilities.OnErrorRequest{ConnectionID: c1.ID, Error: "websocket: close 1006 (abnormal closure): unexpected EOF"}},
		{"nd_websocket_on_error", capabilities.OnErrorRequest{ConnectionID: c1.ID, Error: "websocket: close 4004: Authentication failed."}},
		{"nd_websocket_on_close", capabilities.OnCloseRequest{ConnectionID: c1.ID, Code: 1000}},
		{"nd_websocket_on_close", capabilities.OnCloseRequest{ConnectionID: c1.ID, Code: 1001, Reason: "going away"}},
	}
	for _, s := range stale {
		before, frames, conns := r.activeIDs(), len(r.Gateway.Frames), r.connects()
		r.Call(s.fn, s.input, nil)
		if r.connects() != conns || len(r.Gateway.Frames) != frames || !slices.Equal(before, r.activeIDs()) || !c2.Open {
			t.Errorf("stale %s %+v changed something: connects %d→%d, new frames %v, schedules %v→%v, current open=%v",
				s.fn, s.input, conns, r.connects(), r.Gateway.Frames[frames:], before, r.activeIDs(), c2.Open)
		}
	}
	t.Run("stale_timers", func(t *testing.T) { // late firings of the old socket's schedules
		fired := 0
		defer func() { t.Logf("%d stale schedule callbacks", fired) }()
		for _, s := range oldScheds {
			if _, reused := r.Sched.Get(s.ID); reused {
				continue // the id is the current socket's now: not stale
			}
			fired++
			frames, conns := len(r.Gateway.Frames), r.connects()
			r.Call("nd_scheduler_callback", capabilities.SchedulerCallbackRequest{ScheduleID: s.ID, Payload: s.Payload, IsRecurring: s.Recurring}, nil)
			if r.connects() != conns || len(r.Gateway.Frames) != frames || !c2.Open {
				t.Errorf("late callback of old schedule %s changed something: new frames %v", s.ID, r.Gateway.Frames[frames:])
			}
		}
	})
	if got := r.authorized(alice); got != "true" {
		t.Errorf("a stale 4004 made alice unauthorized")
	}
	r.steady(t, c2, 2*time.Minute)
}

// TestInvariantChecks feeds checkInvariants a scripted timeline (no plugin)
// with one violation of each kind and expects each to be reported.
func TestInvariantChecks(t *testing.T) {
	tb := &recTB{TB: t}
	c := NewClock(t0)
	h := &Harness{T: tb, Clock: c, Sched: NewScheduler(c, newIDSource(1)), Gateway: NewGateway(tb, c), HTTP: &HTTP{clock: c}}
	h.WS = NewWebSocket(c, newIDSource(1), []string{"*.discord.gg"}, h.Gateway)
	h.Gateway.ws, h.Gateway.via = h.WS, h.Current
	h.WS.call = func(context.Context, string, any) error { return nil }
	h.Sched.call = h.WS.call
	ctx := context.Background()
	id, _ := h.WS.Connect(ctx, sliceGateway, nil, "")
	send := func(via *Result, frame string) {
		h.main.calls = []*Result{via}
		h.WS.SendText(ctx, id, frame)
		h.main.calls = nil
		for h.WS.Deliver(ctx) {
		}
	}
	sched := func(kind string, delay int32, cron string) *Result {
		sid := kind + fmt.Sprint(len(h.Sched.Ops))
		if kind == "once" {
			h.Sched.ScheduleOneTime(ctx, delay, "", sid)
		} else {
			h.Sched.ScheduleRecurring(ctx, cron, "", sid)
		}
		return &Result{Func: "nd_scheduler_callback", Input: []byte(`{"scheduleId":"` + sid + `"}`)}
	}
	h.WS.Deliver(ctx) // Hello
	send(&Result{Func: "nd_websocket_on_text_message"}, `{"op":2,"d":{"token":"`+alice.token+`"}}`)
	send(sched("once", 10, ""), `{"op":1,"d":1}`)  // fine: first beat
	send(nil, `{"op":1,"d":1}`)                    // 1: outside any call
	send(sched("once", 300, ""), `{"op":1,"d":1}`) // 2: not a heartbeat schedule, 3: too soon after the last beat
	c.Advance(41 * time.Second)
	send(sched("recurring", 0, "@every 41s"), `{"op":1,"d":null}`)  // 4: wrong seq
	h.WS.Connect(ctx, sliceGateway, nil, id)                        // 8: an id in use: refused
	h.Logs = []LogLine{{Msg: "identify " + alice.token}}            // 5: leak
	h.Calls = []Result{{Func: "nd_websocket_on_error", Trap: true}} // 6: trap
	h.WS.SendText(ctx, "gone", "{}")                                // 7: send on an unknown id
	r := &rig{Harness: h, t: tb, users: []account{alice}}
	r.checkInvariants()
	want := []string{"trap=true", "secret leaked", "websocket_sendtext gone", "websocket_connect", "is {\"op\":1,\"d\":null}, want",
		"outside the schedule", "not a heartbeat schedule", "after the previous beat"}
	for _, w := range want {
		if !slices.ContainsFunc(tb.errs, func(e string) bool { return strings.Contains(e, w) }) {
			t.Errorf("no error containing %q in %q", w, tb.errs)
		}
	}
	if len(tb.errs) != len(want) {
		t.Errorf("want %d errors, got %d: %q", len(want), len(tb.errs), tb.errs)
	}
}
