package harness

// Load: many users at once, and a slow gateway (TestGatewayStorm, 50 track
// changes in 10 s, is in gateway_test.go).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
)

// Discord's per-connection limits: 120 frames per 60 s, 5 presence updates
// per 20 s.
const (
	maxFramesPerMinute = 120
	maxPresencePer20s  = 5
)

// checkLimits checks Discord's per-connection rate limits on c.
func (r *rig) checkLimits(t *testing.T, c *Conn) {
	t.Helper()
	if n := r.Gateway.MaxInWindow(c, time.Minute); n > maxFramesPerMinute {
		t.Errorf("%s: %d frames in a minute, max %d", c.ID, n, maxFramesPerMinute)
	}
	if n := r.Gateway.MaxInWindow(c, 20*time.Second, 3); n > maxPresencePer20s {
		t.Errorf("%s: %d presence updates in 20 s, max %d", c.ID, n, maxPresencePer20s)
	}
}

func TestLoadTwentyUsers(t *testing.T) {
	var users []account
	for i := 1; i <= 20; i++ {
		users = append(users, account{fmt.Sprintf("user%02d", i), fmt.Sprintf("tok-user%02d-SECRET", i)})
	}
	r := newRig(t, nil, users...)
	r.Gateway.HeartbeatGrace = beatGrace
	final := map[string]string{}
	for step := 0; step <= 8; step++ { // all play at once, then each skips every 1–3 s
		for i, u := range users {
			if step == 0 || (step+i)%3 != 0 {
				final[u.name] = fmt.Sprintf("%s track %d", u.name, step)
				r.play(u, final[u.name])
			}
		}
		r.Advance(time.Duration(1+step%3) * time.Second)
	}
	r.Advance(3 * time.Minute)
	if len(r.WS.Conns) != len(users) {
		t.Errorf("%d sockets for %d users, want one each", len(r.WS.Conns), len(users))
	}
	presences := 0
	for _, u := range users {
		var mine []*Conn
		for _, c := range r.WS.Conns {
			if r.tokenOn(c) == u.token {
				mine = append(mine, c)
			}
		}
		if len(mine) != 1 {
			t.Errorf("%s: %d sockets identified with its token, want 1", u.name, len(mine))
			continue
		}
		c := mine[0]
		if ids := r.Gateway.FramesOn(c, 2); len(ids) != 1 || c.URL != sliceGateway {
			t.Errorf("%s: %d Identify on %s, want one on %s", u.name, len(ids), c.URL, sliceGateway)
		}
		if beats := r.Gateway.FramesOn(c, 1); !c.Open || len(beats) < 4 {
			t.Errorf("%s: open=%v, %d heartbeats in ~3.5 min, want ≥ 4", u.name, c.Open, len(beats))
		}
		r.checkLimits(t, c)
		if _, shown := r.shown(t, c); shown != final[u.name] {
			t.Errorf("%s shows %q, want its last track %q", u.name, shown, final[u.name])
		}
		presences += len(r.Gateway.FramesOn(c, 3))
	}
	if len(r.Gateway.Timeouts) != 0 {
		t.Errorf("%d sockets timed out for missing heartbeats", len(r.Gateway.Timeouts))
	}
	t.Logf("20 users: %d sockets, %d frames, %d presence updates, %d plugin calls", len(r.WS.Conns), len(r.Gateway.Frames), presences, len(r.Calls))
}

// TestLoadSlowGateway: Hello, READY and RESUMED come late and ACKs late but
// before the next beat: the presence still shows, no zombie reconnect; an ACK
// later than the next beat is a zombie (the control that the check can fail).
func TestLoadSlowGateway(t *testing.T) {
	for _, tc := range []struct {
		name         string
		reply, ack   time.Duration
		wantZombies  bool
		wantSocketsN int
	}{
		{"replies_5s_acks_5s", 5 * time.Second, 5 * time.Second, false, 1},
		{"replies_20s_acks_40s", 20 * time.Second, 40 * time.Second, false, 1},
		{"acks_after_next_beat", 0, 45 * time.Second, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.Gateway.ReplyDelay, r.Gateway.AckDelay = tc.reply, tc.ack
			r.Gateway.HeartbeatGrace = beatGrace
			r.play(alice, "Song")
			c := r.WS.Conns[0]
			if fs := r.Gateway.FramesOn(c); tc.reply > 0 && len(fs) != 0 {
				t.Errorf("frames before the (late) Hello: %v", fs)
			}
			r.Advance(tc.reply + time.Second) // Hello → Identify
			r.Advance(tc.reply + time.Second) // READY → presence
			if _, shown := r.shown(t, c); shown != "Song" {
				t.Errorf("after the late READY the presence shows %q, want Song", shown)
			}
			r.Advance(20 * time.Second)
			r.play(alice, "Next")
			r.Advance(4 * time.Minute)
			zombies := 0
			for _, l := range r.Logs {
				if l.Level >= extism.LogLevelWarn && strings.Contains(l.Msg, "no heartbeat ACK") {
					zombies++
				}
			}
			if got := zombies > 0; got != tc.wantZombies {
				t.Errorf("zombie reconnects: %d, want any: %v", zombies, tc.wantZombies)
			}
			if n := len(r.WS.Conns); tc.wantZombies && n < tc.wantSocketsN || !tc.wantZombies && n != tc.wantSocketsN {
				t.Errorf("%d sockets, want %d", n, tc.wantSocketsN)
			}
			last := r.live(alice)
			if last == nil {
				t.Fatal("no live socket at the end")
			}
			if _, shown := r.shown(t, last); !tc.wantZombies && shown != "Next" {
				t.Errorf("the live socket shows %q, want Next", shown)
			}
			r.checkLimits(t, last)
			if len(r.Gateway.Timeouts) != 0 {
				t.Errorf("%d sockets timed out for missing heartbeats", len(r.Gateway.Timeouts))
			}
		})
	}
}
