package harness

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/navidrome/navidrome/plugins/capabilities"
)

// Navidrome 0.60–0.61 call only nd_scrobbler_now_playing (no playback reports, no time):
// the same plugin shows the track without timestamps after a short wait for a report
// that does not come, and clears it 5 s after the track's end.
func TestOldHostNowPlayingFallback(t *testing.T) {
	r := newRig(t, nil)
	nowPlaying := func(title string, duration float32, position int32) {
		track := capabilities.TrackInfo{ID: "id-" + title, Title: title, Artist: "Artist", Album: "Album", Duration: duration}
		r.Call("nd_scrobbler_now_playing", capabilities.NowPlayingRequest{Username: alice.name, Track: track, Position: position}, nil)
	}
	nowPlaying("Old Song", 30, 10)
	if len(r.WS.Conns) != 0 {
		t.Fatalf("connected before the wait for a playback report: %+v", r.WS.Ops)
	}
	c := r.awaitConn(t, 0, 5*time.Second)
	r.Pump()
	fs := r.Gateway.FramesOn(c, 3)
	if len(fs) != 1 {
		t.Fatalf("want one presence after READY, got %v", fs)
	}
	var p struct {
		Activities []struct {
			Details    string          `json:"details"`
			Timestamps json.RawMessage `json:"timestamps"`
		} `json:"activities"`
	}
	if err := json.Unmarshal(fs[0].D, &p); err != nil || len(p.Activities) != 1 || p.Activities[0].Details != "Old Song" {
		t.Fatalf("presence %s: %v", fs[0].D, err)
	}
	if p.Activities[0].Timestamps != nil {
		t.Errorf("old hosts give no time, yet the activity has timestamps %s", p.Activities[0].Timestamps)
	}
	// 20 s were left, plus 5 s: not cleared before, cleared after.
	r.Advance(18 * time.Second)
	if _, title := r.shown(t, c); title != "Old Song" {
		t.Errorf("cleared before the track's end: %q", title)
	}
	r.Advance(10 * time.Second)
	if _, title := r.shown(t, c); title != "" {
		t.Errorf("still showing %q after the track's end", title)
	}
	// A newer host sends playback reports too: its now-playing calls then do nothing.
	r.play(alice, "New Song")
	r.Advance(5 * time.Second)
	n := len(r.Gateway.FramesOn(c, 3))
	nowPlaying("Dup", 300, 0)
	r.Advance(5 * time.Second)
	if got := r.Gateway.FramesOn(c, 3); len(got) != n {
		t.Errorf("now-playing on a host that sends reports changed the presence: %v", got[n:])
	}
}
