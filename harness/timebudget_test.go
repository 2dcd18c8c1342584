package harness

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Navidrome gives a call 30 s and runs playback reports through one worker for the
// whole server, so a report that waits on slow services delays every scrobbler. A
// report makes no HTTP request: images and links are looked up in a call of their own
// (the `en` timer), which sends the new track within 2 s with what it found by then and
// waits on HTTP for at most 10 s in all.
const (
	enrichBudget = 10 * time.Second
	lookupWait   = 2 * time.Second
)

var allEnrichment = map[string]any{"caaenabled": true, "uguuenabled": true, "spotifylinks": true}

// httpWaits sums, per export call, how long its HTTP requests kept it waiting (a
// hanging service: the request's timeout), and counts the requests.
func (r *rig) httpWaits() (worst time.Duration, worstCall string, reportRequests int) {
	per := map[*Result]time.Duration{}
	for _, c := range r.HTTP.Calls {
		if c.Via == nil {
			continue
		}
		per[c.Via] += c.Waited
		if c.Via.Func == "nd_scrobbler_playback_report" {
			reportRequests++
		}
	}
	perFunc := map[string]time.Duration{}
	for res, d := range per {
		perFunc[res.Func] = max(perFunc[res.Func], d)
		if d > worst {
			worst, worstCall = d, fmt.Sprintf("%s at %s (%s)", res.Func, res.At.Format("15:04:05"), res.Input)
		}
	}
	r.t.Logf("longest HTTP wait per export: %v", perFunc)
	return worst, worstCall, reportRequests
}

// Every service times out (Cover Art Archive, uguu, ListenBrainz, Discord's image
// registration) while tracks change.
func TestTimeBudgetEveryServiceHangs(t *testing.T) {
	r := newRig(t, allEnrichment)
	r.tracks = enrichTracks
	enrichRoutes(r.Harness)
	r.HTTP.Routes = []Route{{Prefix: "https://", Hang: true}}
	c := r.ready(t, alice, "Karma Police")
	r.Advance(30 * time.Second)
	n, at := len(r.Gateway.FramesOn(c, 3)), r.Clock.Now()
	r.play(alice, "Lucky")
	r.Advance(time.Minute)
	fs := r.Gateway.FramesOn(c, 3)
	if len(fs) <= n {
		t.Fatalf("Lucky never shown")
	}
	if _, title := presenceOf(t, fs[n]); title != "Lucky" || fs[n].At.Sub(at) > lookupWait {
		t.Errorf("shows %q %s after the report, want Lucky within %s", title, fs[n].At.Sub(at), lookupWait)
	}
	asked := len(r.HTTP.Calls)
	worst, call, fromReports := r.httpWaits()
	t.Logf("longest HTTP wait of one call: %s (%s); %d requests in all, %d from reports", worst, call, len(r.HTTP.Calls), fromReports)
	if worst > enrichBudget {
		t.Errorf("one call waited %s on HTTP, budget %s: %s", worst, enrichBudget, call)
	}
	if fromReports != 0 {
		t.Errorf("playback reports made %d HTTP requests, want none", fromReports)
	}
	// A service that just failed is remembered: the next track does not wait on it again.
	before := len(r.HTTP.Calls)
	r.play(alice, "Karma Police")
	r.Advance(time.Minute)
	for _, hc := range r.HTTP.Calls[before:] {
		if strings.HasPrefix(hc.Request.URL, "https://coverartarchive.org/") {
			t.Errorf("the Cover Art Archive timed out a minute ago and is asked again: %s", hc.Request.URL)
		}
	}
	if asked == 0 {
		t.Errorf("no lookups at all: the scenario tests nothing")
	}
}

// Services answer: the new track goes out once, at once, with its cover and link, sent
// by the lookups' own call rather than the report's.
func TestTimeBudgetEnrichmentUpdatesOnce(t *testing.T) {
	r := newRig(t, allEnrichment)
	r.tracks = enrichTracks
	enrichRoutes(r.Harness)
	c := r.ready(t, alice, "Lucky")
	r.Advance(30 * time.Second)
	n := len(r.Gateway.FramesOn(c, 3))
	r.play(alice, "Karma Police")
	r.Advance(time.Minute)
	fs := r.Gateway.FramesOn(c, 3)[n:]
	if len(fs) != 1 {
		t.Fatalf("want one update, got %d: %v", len(fs), fs)
	}
	if fs[0].Via == nil || fs[0].Via.Func != "nd_scheduler_callback" {
		t.Errorf("the update must come from the lookups' timer, came from %v", fs[0].Via)
	}
	if !strings.Contains(fs[0].Raw, "mp:external/") || !strings.Contains(fs[0].Raw, "open.spotify.com/track/4wlLbLeDWbA6TzwZFp1UaK") {
		t.Errorf("the update lacks the cover or the Spotify link: %s", fs[0].Raw)
	}
	for _, f := range fs {
		if _, title := presenceOf(t, f); title != "Karma Police" {
			t.Errorf("shows %q, want Karma Police", title)
		}
	}
}
