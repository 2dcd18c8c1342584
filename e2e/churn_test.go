package e2e

// Connection churn in a real Navidrome v0.63.2: a gateway that asks for a heartbeat every
// second and drops the socket every few seconds (alternately close 4000 and a bare TCP
// drop, both leaving the session resumable, as after a Discord outage), while the player
// changes track every few seconds. Navidrome runs each scheduler firing, each connection's
// read loop and the now-playing and playback-report calls on goroutines of their own, so
// this is where concurrent sends on one socket and reused schedule ids show up.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	churnHelloMs    = 1000             // Hello's heartbeat_interval in this scenario
	churnFor        = 60 * time.Second // how long the gateway drops connections
	churnDropEvery  = 2 * time.Second  // pause between a resumed connection settling and its drop
	churnTrackEvery = 3 * time.Second  // pause between track changes
	// A heartbeat may come this much later than Hello's interval (1 s scheduler ticks, a
	// loaded 2-core machine); Discord closes a connection with 4009 after a longer silence.
	churnBeatGrace = 2 * time.Second
)

// reportPlayback sends one reportPlayback, as a player does, and returns its time window.
func reportPlayback(t *testing.T, p Subsonic, state string, tr *Track, positionMs int64) sent {
	t.Helper()
	from := time.Now()
	p.Call(t, "reportPlayback", url.Values{"mediaId": {tr.ID}, "mediaType": {"song"}, "state": {state},
		"positionMs": {fmt.Sprint(positionMs)}, "playbackRate": {"1"}})
	return sent{from, time.Now()}
}

func TestConnectionChurnNavidrome063(t *testing.T) {
	binary := requireEnv(t, "NDP_E2E_NAVIDROME")
	ndp := requireEnv(t, "NDP_E2E_PACKAGE")
	music := makeLibrary(t)
	fake := startFakeDiscord(t)
	fake.SetHelloInterval(churnHelloMs)
	fake.SetAskBetweenBeats(true)
	nd := startNavidrome(t, binary, music, ndp, fake.CAFile, port+3, shareURL)
	fake.Diagnose = func() string { return pluginProblems(nd.Log()) }
	nd.CreateAdmin(t)
	ui := Subsonic{n: nd, Client: webUI, UniqueID: "e2e-webui-tab-churn"}
	waitForLibrary(t, ui)
	configurePlugin(t, nd)

	// 1. The first track: one connection, Identify, the presence.
	current := trackA
	reportPlayback(t, ui, "starting", current, 0)
	fake.WaitFrame(t, 0, 30*time.Second, "presence of the first track", isPresence(shown(current.Title)))
	began := time.Now()

	// 2. For churnFor: the gateway drops the live connection each time it has settled
	// (resumed or identified, and a heartbeat carrying the session's last `s` arrived) and
	// churnDropEvery has passed, alternating close 4000 and a TCP drop; meanwhile the track
	// changes every churnTrackEvery, alternately as the web UI skips (stopped, starting,
	// playing) and as a player that only announces the next track (starting, playing);
	// the gateway also asks for a heartbeat (op 1) between beats every other second.
	var (
		mu       sync.Mutex
		unsettle []string // connections that never settled
		drops    int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := 0; time.Since(began) < churnFor; k++ {
			time.Sleep(churnDropEvery)
			n, ok := waitSettled(fake, 15*time.Second)
			if !ok {
				mu.Lock()
				unsettle = append(unsettle, fmt.Sprintf("connection %d at %s", n, time.Now().Format("15:04:05.000")))
				mu.Unlock()
				continue
			}
			fake.Drop([]string{"close 4000", "tcp"}[k%2])
			mu.Lock()
			drops++
			mu.Unlock()
		}
	}()
	playlist := []*Track{trackB, trackC, trackD, trackE, trackA}
	changes := 0
	for k := 0; time.Since(began) < churnFor; k++ {
		time.Sleep(churnTrackEvery)
		next := playlist[k%len(playlist)]
		if k%2 == 0 {
			reportPlayback(t, ui, "stopped", current, int64(churnTrackEvery/time.Millisecond))
		}
		reportPlayback(t, ui, "starting", next, 0)
		reportPlayback(t, ui, "playing", next, 0)
		current = next
		changes++
	}
	<-done

	// 3. The last change, a web-UI skip, once the gateway is calm: its title reaches the
	// live connection, and stays the last presence after the skip's stop grace (5 s).
	last := playlist[(changes+1)%len(playlist)]
	if last == current {
		last = playlist[(changes+2)%len(playlist)]
	}
	frames, _, _ := fake.Snapshot()
	reportPlayback(t, ui, "stopped", current, int64(churnTrackEvery/time.Millisecond))
	reportPlayback(t, ui, "starting", last, 0)
	reportPlayback(t, ui, "playing", last, 0)
	i := fake.WaitFrame(t, len(frames), 30*time.Second, "presence of the last track on the live connection", func(f Frame) bool {
		_, conns, _ := fake.Snapshot()
		return isPresence(shown(last.Title))(f) && f.Conn == len(conns)
	})
	time.Sleep(7 * time.Second)
	frames, conns, _ := fake.Snapshot()
	live := conns[len(conns)-1]
	if !live.Dropped.IsZero() || live.CloseCode != 0 || frames[i].Conn != live.N {
		t.Errorf("the last track's presence went to connection %d; the live one is %d (closed with %d, dropped %v)",
			frames[i].Conn, live.N, live.CloseCode, !live.Dropped.IsZero())
	}
	for _, f := range frames[i+1:] {
		if f.Op == 3 && !isPresence(shown(last.Title))(f) {
			t.Errorf("a presence update other than the last track's after it (want it to stay, with no clear after the skip's stop):\n%s",
				dumpFrames(frames[i:]))
			break
		}
	}

	mu.Lock()
	if len(unsettle) > 0 {
		t.Errorf("%d times the live connection did not settle within 15 s (resumed or identified, then a heartbeat "+
			"carrying the session's last s): %s", len(unsettle), strings.Join(unsettle, "; "))
	}
	nDrops := drops
	mu.Unlock()
	checkChurn(t, fake, nd, frames, conns, nDrops, time.Now())
	t.Logf("churn for %v: %d drops, %d track changes, %d connections, %d Identify, %d Resume, %d presence updates, %d heartbeats",
		time.Since(began).Round(time.Second), nDrops, changes+1, len(conns), countOp(frames, 2), countOp(frames, 6),
		countOp(frames, 3), countOp(frames, 1))
}

// waitSettled waits until the newest connection is usable and known to be in step: it got
// the session's latest dispatch (READY or RESUMED) and then sent a heartbeat carrying that
// `s`. It returns the connection's number and whether it settled before timeout.
func waitSettled(fake *FakeDiscord, timeout time.Duration) (int, bool) {
	deadline := time.Now().Add(timeout)
	for {
		frames, conns, _ := fake.Snapshot()
		c := conns[len(conns)-1]
		if c.Dropped.IsZero() && c.CloseCode == 0 && len(c.Seqs) > 0 {
			latest := int64(0)
			for _, cc := range conns {
				for _, s := range cc.Seqs {
					latest = max(latest, s.S)
				}
			}
			if last := c.Seqs[len(c.Seqs)-1]; last.S == latest {
				for _, f := range frames {
					var d int64
					if f.Conn == c.N && f.Op == 1 && f.At.After(last.At) && json.Unmarshal(f.D, &d) == nil && d == latest {
						return c.N, true
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return c.N, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkChurn checks the whole churn: no schedule id reused, one Identify (plus one per
// Resume the fake refused), every other connection resumed the session on the resume host
// from its last `s`, one connection per drop, heartbeats without a long gap on any
// connection while it was live, and Discord's presence limit on each connection.
func checkChurn(t *testing.T, fake *FakeDiscord, nd *Navidrome, frames []Frame, conns []*Conn, drops int, now time.Time) {
	t.Helper()
	var exists []string
	for _, l := range strings.Split(nd.Log(), "\n") {
		if strings.Contains(l, "already exists") {
			exists = append(exists, "  "+redact(l))
		}
	}
	if len(exists) > 0 {
		t.Errorf("%d log lines with \"already exists\" (an id reused while still live; want none); the first %d:\n%s",
			len(exists), min(3, len(exists)), strings.Join(exists[:min(3, len(exists))], "\n"))
	}

	identifies, resumes := countOp(frames, 2), countOp(frames, 6)
	if want := 1 + fake.Invalidations(); identifies != want {
		t.Errorf("%d Identify and %d Resume frames over %d connections and %d drops (want %d Identify: the session "+
			"stays resumable; the fake refused %d Resumes)", identifies, resumes, len(conns), drops, want, fake.Invalidations())
	}
	if len(conns) != drops+1 {
		t.Errorf("%d gateway connections for %d drops (want one new connection per drop)", len(conns), drops)
	}
	// Each reconnect's first Identify-or-Resume frame.
	var bad []string
	for _, c := range conns[1:] {
		var first *Frame
		for k := range frames {
			if frames[k].Conn == c.N && (frames[k].Op == 2 || frames[k].Op == 6) {
				first = &frames[k]
				break
			}
		}
		if first == nil {
			bad = append(bad, fmt.Sprintf("connection %d (%s) sent neither Resume nor Identify", c.N, c.Host))
			continue
		}
		// The last `s` the fake sent in the session before this frame arrived.
		var last int64
		for _, cc := range conns {
			for _, s := range cc.Seqs {
				if s.At.Before(first.At) {
					last = max(last, s.S)
				}
			}
		}
		var d struct {
			Token     string `json:"token"`
			SessionID string `json:"session_id"`
			Seq       int64  `json:"seq"`
		}
		_ = json.Unmarshal(first.D, &d)
		if first.Op != 6 || c.Host != resumeHost || c.Query != "v=10&encoding=json" || d.Token != discordToken ||
			d.SessionID != "e2e-session" || d.Seq != last {
			bad = append(bad, fmt.Sprintf("connection %d to %s/?%s: op %d %s (want op 6 to %s, session e2e-session, seq %d)",
				c.N, c.Host, c.Query, first.Op, redact(first.Raw), resumeHost, last))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d reconnects did not resume the session; the first %d:\n  %s",
			len(bad), len(conns)-1, min(5, len(bad)), strings.Join(bad[:min(5, len(bad))], "\n  "))
	}

	// Heartbeats: on each connection, from its opening until its drop (or now), no silence
	// longer than the interval plus the grace.
	limit := churnHelloMs*time.Millisecond + churnBeatGrace
	var gaps []string
	beats := 0
	for _, c := range conns {
		end := now
		if !c.Dropped.IsZero() {
			end = c.Dropped
		}
		prev, what := c.Opened, "connecting"
		for _, f := range frames {
			if f.Conn != c.N || f.Op != 1 {
				continue
			}
			beats++
			if g := f.At.Sub(prev); g > limit {
				gaps = append(gaps, fmt.Sprintf("connection %d: %v from %s to the heartbeat at %s", c.N, g.Round(time.Millisecond), what, f.At.Format("15:04:05.000")))
			}
			prev, what = f.At, "the heartbeat at "+f.At.Format("15:04:05.000")
		}
		// (A connection the plugin closed itself has no known end: not checked past its last beat.)
		if g := end.Sub(prev); g > limit && (!c.Dropped.IsZero() || c.CloseCode == 0) {
			gaps = append(gaps, fmt.Sprintf("connection %d: %v from %s to its end at %s, with no heartbeat", c.N, g.Round(time.Millisecond), what, end.Format("15:04:05.000")))
		}
	}
	if len(gaps) > 0 {
		t.Errorf("%d heartbeat gaps longer than %v (Hello's %d ms + %v; Discord closes with 4009 on silence); the first %d:\n  %s",
			len(gaps), limit, churnHelloMs, churnBeatGrace, min(5, len(gaps)), strings.Join(gaps[:min(5, len(gaps))], "\n  "))
	}

	// Discord's presence limit, per connection: at most 5 op 3 in any 20 s.
	for _, c := range conns {
		var at []time.Time
		for _, f := range frames {
			if f.Conn == c.N && f.Op == 3 {
				at = append(at, f.At)
			}
		}
		for k := 5; k < len(at); k++ {
			if d := at[k].Sub(at[k-5]); d < 20*time.Second {
				t.Errorf("connection %d: 6 presence updates within %v (Discord allows 5 per 20 s)", c.N, d.Round(time.Millisecond))
				break
			}
		}
	}
	t.Logf("%d heartbeats in all; the longest allowed silence %v", beats, limit)
}
