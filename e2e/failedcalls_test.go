package e2e

// Navidrome runs plugin calls concurrently and, when one fails (the plugin traps, returns an
// error, or a host call panics, such as gorilla's "concurrent write to websocket
// connection"), it recovers and only logs the failure. Every scenario therefore ends by
// reading Navidrome's log for those lines: a failed call is a lost heartbeat, presence
// update or reconnect, whatever the fake Discord happened to see.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// failedCallMessages are the messages Navidrome v0.63.2 logs when a call into a plugin
// fails, with where they are written (each is the `msg` of a logrus line).
var failedCallMessages = []struct{ Msg, Source string }{
	// A timer or recurring schedule's nd_scheduler_callback.
	{"Scheduler callback failed", "plugins/host_scheduler.go:201"},
	// nd_websocket_on_* from a connection's read loop: "WebSocket "+callbackName+" callback failed".
	{"WebSocket text message callback failed", "plugins/host_websocket.go:344"},
	{"WebSocket binary message callback failed", "plugins/host_websocket.go:344"},
	{"WebSocket error callback failed", "plugins/host_websocket.go:344"},
	{"WebSocket close callback failed", "plugins/host_websocket.go:344"},
	// Scrobbler calls (logged with scrobbler=<plugin id>, not plugin=).
	{"Error sending PlaybackSession", "core/scrobbler/nowplaying_worker.go:74"},    // nd_scrobbler_now_playing
	{"Error sending PlaybackReport", "core/scrobbler/playbackreport_worker.go:60"}, // nd_scrobbler_playback_report
	{"Error sending Scrobble", "core/scrobbler/play_tracker.go:480"},
	{"Could not send scrobble. Will be retried", "core/scrobbler/buffered_scrobbler.go:162"}, // nd_scrobbler_scrobble
	{"Error sending scrobble to service. Discarding", "core/scrobbler/buffered_scrobbler.go:167"},
	// nd_on_init.
	{"Plugin init function failed", "plugins/capability_lifecycle.go:33"},
	// A task-queue worker callback (the plugin uses no task queue; listed for completeness).
	{"Task execution failed", "plugins/host_taskqueue.go:457"},
	// Not logged at all: a failed nd_scrobbler_is_authorized only makes IsAuthorized false
	// (plugins/scrobbler_adapter.go:77), and the report is then not sent to the plugin.
}

// failedCallErrors are the error texts callPluginFunction (plugins/manager_call.go:71 and
// :80) wraps a failed call in: any line carrying them is a failed call too, whatever logged
// it (its own "Plugin call failed" line is at trace level, not shown at debug).
var failedCallErrors = regexp.MustCompile(`(?i)plugin call failed|plugin call exited with code`)

var failedCallLine = func() *regexp.Regexp {
	var alts []string
	for _, m := range failedCallMessages {
		alts = append(alts, regexp.QuoteMeta(m.Msg))
	}
	return regexp.MustCompile(`msg="(` + strings.Join(alts, "|") + `)"`)
}()

// wasmTrace is the stack trace wazero appends to a trap's error text.
var wasmTrace = regexp.MustCompile(`\\nwasm stack trace:(\\n\\t[^\\"]+)+`)

// failedCalls returns Navidrome's log lines about failed plugin calls, and their count by
// message.
func failedCalls(log string) (lines []string, byMsg map[string]int) {
	byMsg = map[string]int{}
	for _, l := range strings.Split(log, "\n") {
		if m := failedCallLine.FindStringSubmatch(l); m != nil {
			byMsg[m[1]]++
			lines = append(lines, l)
		} else if failedCallErrors.MatchString(l) {
			byMsg["(other line with a failed call's error)"]++
			lines = append(lines, l)
		}
	}
	return lines, byMsg
}

// failedCallsReport describes failed calls for a test failure: how many of each message and
// the first few lines, token redacted ("" if there are none).
func failedCallsReport(log string, quote int) string {
	lines, byMsg := failedCalls(log)
	if len(lines) == 0 {
		return ""
	}
	var counts []string
	for msg, n := range byMsg {
		counts = append(counts, fmt.Sprintf("%d× %q", n, msg))
	}
	sort.Strings(counts)
	var b strings.Builder
	fmt.Fprintf(&b, "%d failed plugin calls in Navidrome's log (want 0): %s; the first %d:\n",
		len(lines), strings.Join(counts, ", "), min(quote, len(lines)))
	for _, l := range lines[:min(quote, len(lines))] {
		b.WriteString("  " + wasmTrace.ReplaceAllString(redact(l), `\n(wasm stack trace cut)`) + "\n")
	}
	return b.String()
}

// checkNoFailedCalls fails the test if Navidrome logged any failed plugin call.
func checkNoFailedCalls(t *testing.T, log string) {
	t.Helper()
	if r := failedCallsReport(log, 5); r != "" {
		t.Error(r)
	} else {
		t.Logf("no failed plugin call in Navidrome's log")
	}
}
