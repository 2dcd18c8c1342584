package harness

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/navidrome/navidrome/plugins/capabilities"
	"github.com/navidrome/navidrome/plugins/host"
	"github.com/navidrome/navidrome/plugins/types"
)

const (
	sliceClientID = "123456789012345678"
	sliceToken    = "tok-alice-SECRET"
	sliceGateway  = "wss://gateway.discord.gg/?v=10&encoding=json"
)

// loadPresencePlugin loads the plugin with the vertical-slice configuration.
func loadPresencePlugin(t *testing.T) *Harness {
	t.Helper()
	cfg, err := ConfigFromJSON(`{"clientid":"` + sliceClientID + `","users":[{"username":"alice","token":"` + sliceToken + `"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"token":"tok-alice-SECRET","username":"alice"}]`; cfg["users"] != want {
		t.Fatalf("config users = %s, want %s", cfg["users"], want)
	}
	return loadConfigured(t, cfg, []host.User{{UserName: "alice", Name: "Alice"}})
}

// loadConfigured loads the plugin with a §1.6 config map and the granted
// users; /api/gateway answers like Discord in case the plugin asks.
// setup (optional) runs before nd_on_init, after the gateway route is added.
func loadConfigured(t testing.TB, cfg map[string]string, users []host.User, setup ...func(*Harness)) *Harness {
	t.Helper()
	return Load(t, Options{
		Config:  cfg,
		Users:   users,
		Runtime: sharedRuntime(t),
		Setup: func(h *Harness) {
			h.HTTP.Routes = append(h.HTTP.Routes, Route{Method: "GET", Prefix: "https://discord.com/api/gateway",
				Resp: host.HTTPResponse{StatusCode: 200, Headers: map[string]string{"Content-Type": "application/json"},
					Body: []byte(`{"url":"wss://gateway.discord.gg"}`)}})
			for _, f := range setup {
				f(h)
			}
		},
	})
}

func testTrack() capabilities.TrackInfo {
	artists := []types.ArtistRef{{ID: "a1", Name: "Test Artist"}}
	return capabilities.TrackInfo{ID: "track1", Title: "Test Song", Artist: "Test Artist", Album: "Test Album",
		AlbumArtist: "Test Artist", Artists: artists, AlbumArtists: artists, Duration: 180}
}

func playbackReport(h *Harness, state string, positionMs int64) capabilities.PlaybackReportRequest {
	return capabilities.PlaybackReportRequest{Username: "alice", Track: testTrack(), State: state, PositionMs: positionMs,
		PlaybackRate: 1, PlayerId: "p1", PlayerName: "NavidromeUI", Timestamp: h.Clock.Now().Unix()}
}

// presenceUpdate is op 3's d, with pointers where absence must be detected.
type presenceUpdate struct {
	Activities json.RawMessage `json:"activities"`
	Status     string          `json:"status"`
	AFK        *bool           `json:"afk"`
}

type activity struct {
	Name          string `json:"name"`
	Type          *int   `json:"type"`
	Details       string `json:"details"`
	State         string `json:"state"`
	ApplicationID string `json:"application_id"`
	Timestamps    *struct {
		Start *int64 `json:"start"`
		End   *int64 `json:"end"`
	} `json:"timestamps"`
}

func decodePresence(t *testing.T, f Frame) (presenceUpdate, []activity) {
	t.Helper()
	var p presenceUpdate
	if err := f.Decode(&p); err != nil {
		t.Fatalf("op 3 d: %v: %s", err, f.Raw)
	}
	var acts []activity
	if err := json.Unmarshal(p.Activities, &acts); err != nil || acts == nil {
		t.Fatalf("op 3 d.activities is not an array (%v): %s", err, f.Raw)
	}
	if p.Status != "online" || p.AFK == nil || *p.AFK {
		t.Errorf("op 3 status/afk: want \"online\"/false, got %q/%v: %s", p.Status, p.AFK, f.Raw)
	}
	return p, acts
}

// isHeartbeat reports whether f is exactly {"op":1,"d":seq}.
func isHeartbeat(f Frame, seq int) bool {
	var got map[string]any
	if json.Unmarshal([]byte(f.Raw), &got) != nil {
		return false
	}
	return reflect.DeepEqual(got, map[string]any{"op": float64(1), "d": float64(seq)})
}

func TestVerticalSlice(t *testing.T) {
	h := loadPresencePlugin(t)
	t.Cleanup(h.DumpLogs)
	var (
		conn      *Conn
		reportTS  int64
		firstBeat Schedule
		readyAt   int // index in conn frames where READY handling started
	)
	frames := func() []Frame { return h.Gateway.FramesOn(conn) }
	connects := func() (n int) { // websocket_connect calls, failed ones included
		for _, o := range h.WS.Ops {
			if o.Kind == "connect" {
				n++
			}
		}
		return n
	}
	need := func(t *testing.T) {
		if conn == nil {
			t.Fatal("no gateway connection (earlier step failed)")
		}
	}

	t.Run("1_is_authorized", func(t *testing.T) {
		for user, want := range map[string]string{"alice": "true", "bob": "false"} {
			r := h.Call("nd_scrobbler_is_authorized", capabilities.IsAuthorizedRequest{Username: user}, new(bool))
			if r.Err != nil || string(r.Output) != want {
				t.Errorf("is_authorized(%s) = %q, err %v; want output exactly %s", user, r.Output, r.Err, want)
			}
		}
	})

	t.Run("2_playing_connects", func(t *testing.T) {
		reportTS = h.Clock.Now().Unix()
		if r := h.CallNoPump("nd_scrobbler_playback_report", playbackReport(h, "playing", 10000), nil); r.Err != nil {
			t.Errorf("playback_report: %v", r.Err)
		}
		// The report asks for the reconnect timer at 0 s, which dials.
		for h.Clock.RunDue() {
		}
		if connects() != 1 || len(h.WS.Conns) != 1 {
			t.Fatalf("want exactly 1 successful connect, got %d call(s): %+v", connects(), h.WS.Ops)
		}
		conn = h.WS.Conns[0]
		if conn.URL != sliceGateway {
			t.Errorf("connect url = %q, want %q", conn.URL, sliceGateway)
		}
		if n := len(conn.Sent()); n != 0 {
			t.Errorf("plugin sent %d frame(s) before Hello: %v", n, conn.Sent())
		}
	})

	t.Run("3_hello_identify_ready_presence", func(t *testing.T) {
		need(t)
		opsBefore := len(h.Sched.Ops)
		if !h.DeliverOne() {
			t.Fatal("no Hello queued")
		}
		fs := frames()
		if len(fs) == 0 || fs[0].Op != 2 {
			t.Fatalf("first frame after Hello must be Identify (op 2), got %v", fs)
		}
		var id struct {
			Token      string `json:"token"`
			Intents    *int   `json:"intents"`
			Properties struct {
				OS      string `json:"os"`
				Browser string `json:"browser"`
			} `json:"properties"`
		}
		if err := fs[0].Decode(&id); err != nil {
			t.Fatalf("identify d: %v", err)
		}
		if id.Token != sliceToken || id.Intents == nil || *id.Intents != 0 || id.Properties.OS != "Linux" || id.Properties.Browser != "Discord Client" {
			t.Errorf("identify mismatch: %s", fs[0].Raw)
		}
		for _, op := range h.Sched.Ops[opsBefore:] {
			if s, ok := h.Sched.Get(op.Result); ok && op.Kind == "once" && s.Delay >= 0 && s.Delay <= 41 {
				firstBeat = s
				break
			}
		}
		if firstBeat.ID == "" {
			t.Errorf("no one-time schedule with delaySeconds in [0,41] after Hello; ops: %+v", h.Sched.Ops[opsBefore:])
		}

		readyAt = len(frames())
		if !h.DeliverOne() {
			t.Fatal("no READY queued after Identify")
		}
		if len(frames()) == readyAt {
			h.Pump() // allow a same-instant deferred send
		}
		fs = frames()[readyAt:]
		if len(fs) == 0 || fs[0].Op != 3 {
			t.Fatalf("next frame after READY must be op 3, got %v", fs)
		}
		_, acts := decodePresence(t, fs[0])
		if len(acts) != 1 {
			t.Fatalf("want exactly 1 activity, got %d: %s", len(acts), fs[0].Raw)
		}
		a := acts[0]
		start := reportTS*1000 - 10000
		if a.Name != "Navidrome" || a.Type == nil || *a.Type != 2 || a.Details != "Test Song" || a.State != "Test Artist" ||
			a.ApplicationID != sliceClientID || a.Timestamps == nil || a.Timestamps.Start == nil || *a.Timestamps.Start != start ||
			a.Timestamps.End == nil || *a.Timestamps.End != start+180000 {
			t.Errorf("activity mismatch (want start %d end %d): %s", start, start+180000, fs[0].Raw)
		}
	})

	t.Run("4_heartbeats", func(t *testing.T) {
		need(t)
		if firstBeat.ID == "" {
			t.Fatal("no first-beat schedule (step 3)")
		}
		beats := func() []Frame { return h.Gateway.FramesOn(conn, 1) }
		h.Advance(firstBeat.Next.Sub(h.Clock.Now()))
		bs := beats()
		if len(bs) == 0 || !isHeartbeat(bs[0], 1) {
			t.Errorf(`want a first heartbeat {"op":1,"d":1} by %s, got %v`, firstBeat.Next.Format(time.TimeOnly), bs)
		}
		recurring := false
		for _, s := range h.Sched.Active() {
			recurring = recurring || (s.Recurring && s.Cron == "@every 41s")
		}
		if !recurring {
			t.Errorf("no recurring @every 41s schedule; active: %+v", h.Sched.Active())
		}
		n := len(bs)
		h.Advance(41 * time.Second)
		if bs = beats(); len(bs) != n+1 || !isHeartbeat(bs[n], 1) {
			t.Errorf(`want exactly one more heartbeat {"op":1,"d":1} after 41 s, got %v`, bs[n:])
		}
		if connects() != 1 || !conn.Open {
			t.Errorf("want the single gateway connection still open; connects: %d, events: %v", connects(), conn.Events)
		}
	})

	t.Run("5_stopped_clears_after_10s", func(t *testing.T) {
		need(t)
		before := len(frames())
		elapsed := (h.Clock.Now().Unix() - reportTS) * 1000
		if r := h.Call("nd_scrobbler_playback_report", playbackReport(h, "stopped", 10000+elapsed), nil); r.Err != nil {
			t.Errorf("playback_report stopped: %v", r.Err)
		}
		if fs := frames()[before:]; len(fs) != 0 {
			t.Errorf("plugin sent immediately on stopped: %v", fs)
		}
		h.Advance(10 * time.Second)
		var clear *Frame
		for _, f := range frames()[before:] {
			if f.Op == 3 {
				clear = &f
			}
		}
		if clear == nil {
			t.Error("no op 3 within 10 s of stopped")
		} else if _, acts := decodePresence(t, *clear); len(acts) != 0 {
			t.Errorf("want d.activities == [], got %s", clear.Raw)
		}
		if !conn.Open || connects() != 1 {
			t.Errorf("socket must stay open after stopped; connects: %d, events: %v", connects(), conn.Events)
		}
	})

	t.Run("6_no_token_leak", func(t *testing.T) {
		h.AssertNoSecret(sliceToken)
		h.AssertNoLeaks([]string{sliceToken}, nil)
	})
}
