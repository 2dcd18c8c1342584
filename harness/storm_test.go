package harness

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Gateways that misbehave for hours. An account that starts new sessions in a loop
// is what Discord flags, so new sessions (Identify) have a hard budget per user and
// hour whatever the gateway answers; connections are bounded by the backoff.
const (
	identifiesPerHour = 6   // the plugin's budget (IDENTIFY_BURST, IDENTIFY_EVERY_MS in gateway/session.rs)
	connectsPerHour   = 130 // backoff at its cap waits 30–60 s between connections
	stormHours        = 3
)

// maxPerHour is the most of times inside any one-hour window.
func maxPerHour(times []time.Time) int {
	best := 0
	for i := range times {
		n := 0
		for _, t := range times[i:] {
			if t.Sub(times[i]) < time.Hour {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

type storm struct {
	identifies, connects      []time.Time
	identPerHour, connPerHour int
}

// runStorm plays a track for alice (a new one every 20 minutes, so something is always
// wanted) while the gateway misbehaves as setup makes it, for stormHours of virtual
// time in 1 s steps.
func runStorm(t *testing.T, setup func(r *rig)) (*rig, storm) {
	r := newRig(t, nil)
	setup(r)
	start := r.Clock.Now()
	for s := 0; s < stormHours*3600; s++ {
		if s%1200 == 0 {
			r.play(alice, fmt.Sprintf("Song %d", s/1200))
		}
		r.Advance(time.Second)
	}
	var st storm
	for _, id := range r.Gateway.Identifies {
		st.identifies = append(st.identifies, id.At)
	}
	for _, o := range r.WS.Ops {
		if o.Kind == "connect" && !o.At.Before(start) {
			st.connects = append(st.connects, o.At)
		}
	}
	st.identPerHour, st.connPerHour = maxPerHour(st.identifies), maxPerHour(st.connects)
	t.Logf("%d h: %d identifies (max %d in an hour), %d connections (max %d in an hour)",
		stormHours, len(st.identifies), st.identPerHour, len(st.connects), st.connPerHour)
	return r, st
}

func (st storm) within(t *testing.T, identPerHour, connPerHour int) {
	t.Helper()
	if st.identPerHour > identPerHour {
		t.Errorf("%d identifies within an hour, budget %d", st.identPerHour, identPerHour)
	}
	if st.connPerHour > connPerHour {
		t.Errorf("%d connections within an hour, max %d", st.connPerHour, connPerHour)
	}
}

// logCount counts log lines containing s.
func (r *rig) logCount(s string) (n int) {
	for _, l := range r.Logs {
		if strings.Contains(l.Msg, s) {
			n++
		}
	}
	return n
}

// Every Identify is answered with op 9 (d: false), as while Discord throttles new
// sessions: the budget caps identifies, with one line each time the plugin pauses and
// one when it tries again.
func TestStormInvalidSessionOnEveryIdentify(t *testing.T) {
	r, st := runStorm(t, func(r *rig) { r.Gateway.ThrottleIdentify = true })
	st.within(t, identifiesPerHour, connectsPerHour)
	stops, again := r.logCount("their budget (6 an hour) is spent"), r.logCount("trying a new Discord session again")
	if stops == 0 || again == 0 || stops < again || stops > again+1 || stops > 3*stormHours+1 {
		t.Errorf("want one line per pause of the budget and one per retry after it: %d pauses, %d retries", stops, again)
	}
	// Discord lets the account in again: the presence shows within the budget's wait.
	r.Gateway.ThrottleIdentify = false
	for i := 0; i < 3600 && len(r.Gateway.FramesOn(r.WS.Conns[len(r.WS.Conns)-1], 3)) == 0; i++ {
		r.Advance(time.Second)
	}
	if last := r.WS.Conns[len(r.WS.Conns)-1]; len(r.Gateway.FramesOn(last, 3)) == 0 {
		t.Errorf("no presence within an hour after Discord accepted identifies again")
	}
}

// Op 7 right after every READY and RESUMED: each reconnect resumes, so no new
// sessions; the connections are bounded by the backoff (no stable session in between).
func TestStormReconnectAfterEverySession(t *testing.T) {
	_, st := runStorm(t, func(r *rig) {
		r.Gateway.OnSession = func(c *Conn, _ bool) { r.Gateway.Reconnect(c) }
	})
	st.within(t, identifiesPerHour, connectsPerHour)
	if len(st.identifies) != 1 {
		t.Errorf("op 7 asks for a resume: want the one first Identify, got %d", len(st.identifies))
	}
}

// A close (4002) right after every RESUMED: the session resumes again and again, never
// stable; connections are bounded by the backoff.
func TestStormCloseAfterEveryResume(t *testing.T) {
	_, st := runStorm(t, func(r *rig) {
		r.Gateway.OnSession = func(c *Conn, resumed bool) {
			if resumed {
				r.WS.ServerClose(c, 4002, "Error while decoding payload.")
			} else {
				r.WS.ServerDrop(c)
			}
		}
	})
	st.within(t, identifiesPerHour, connectsPerHour)
}
