package harness

// The checks of the fault matrix, the fuzz targets and the leak scan, fed
// states with one violation of each kind: each must be reported (so none of
// them can pass vacuously).

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	extism "github.com/extism/go-sdk"
	"github.com/navidrome/navidrome/plugins/host"
)

// fakeHostCall records a synthetic host call with its JSON request.
func (h *Harness) fakeHostCall(name string, req any) {
	b, _ := json.Marshal(req)
	h.HostCalls = append(h.HostCalls, HostCall{N: len(h.HostCalls) + 1, Name: name, Export: "nd_test", Request: b})
}

func TestScanLeaksDetects(t *testing.T) {
	c := NewClock(t0)
	h := &Harness{T: t, Clock: c, Sched: NewScheduler(c, newIDSource(1)), HTTP: &HTTP{clock: c}}
	h.WS = NewWebSocket(c, nil, nil, nil)
	tok := "tok-SECRET"
	send := func(frame string) {
		h.fakeHostCall("websocket_sendtext", map[string]string{"connectionId": "1:alice", "message": frame})
	}
	httpReq := func(url, auth, body string) {
		h.fakeHostCall("http_send", map[string]any{"request": host.HTTPRequest{Method: "POST", URL: url,
			Headers: map[string]string{"Authorization": auth}, Body: []byte(body)}})
	}
	// Allowed: the token in Identify's d.token and in Discord's Authorization header.
	send(`{"op":2,"d":{"token":"tok-SECRET","intents":0}}`)
	send(`{"op":3,"d":{"activities":[{"details_url":"https://open.spotify.com/track/x","assets":{"large_image":"mp:external/a"}}]}}`)
	httpReq("https://discord.com/api/v9/applications/1/external-assets", tok, `{"urls":["https://music.example.com/a.jpg"]}`)
	h.fakeHostCall("websocket_connect", map[string]any{"url": sliceGateway})
	if s := h.ScanLeaks([]string{tok}, []string{"CANARY"}); len(s.Findings) != 0 || s.Frames != 2 || s.Requests != 1 || s.URLs != 3 {
		t.Fatalf("clean traffic: findings %q, counts %s", s.Findings, s)
	}
	// One violation of each kind.
	h.Logs = []LogLine{{Level: extism.LogLevelInfo, Msg: "identify with tok-SECRET"}}
	h.Calls = []Result{{Func: "f", Err: errors.New("bad token tok-SECRET")}}
	send(`{"op":1,"d":"tok-SECRET"}`)
	send(`{"op":3,"d":{"activities":[{"details_url":"http://open.spotify.com/x"}]}}`)
	send(`{"op":3,"d":{"activities":[{"state_url":"https://10.0.0.1/x"}]}}`)
	send(`{"op":3,"d":{"activities":[{"assets":{"large_url":"https://example.com/x?u=alice&t=a&s=b"}}]}}`)
	send(`{"op":3,"d":{"activities":[{"assets":{"large_image":"https://example.com/raw.jpg"}}]}}`)
	send(`{"op":3,"d":{"activities":[{"details":"CANARY"}]}}`)
	send(`{"op":3,"d":` + strings.Repeat(" ", MaxFrameBytes) + `{}}`)
	send(`not json`)
	httpReq("https://discord.com/api/v9/applications/1/external-assets", tok, `{"urls":["http://localhost:4533/share/img/x"]}`)
	httpReq("https://discord.com/api/v9/applications/1/external-assets", tok, `{"urls":["https://nas.local/x"]}`)
	httpReq("https://uguu.se/upload", tok, "")
	httpReq("https://labs.api.listenbrainz.org/x?apiKey=k", "", "")
	h.fakeHostCall("websocket_connect", map[string]any{"url": "wss://evil.example.com/?tok-SECRET"})
	h.fakeHostCall("cache_setstring", map[string]any{"key": "k", "value": "tok-SECRET"})
	want := []string{"log line", "error text", "outside the d.token", "details_url", "state_url", "assets.large_url", "assets.large_image",
		`carries "CANARY"`, "exceeds", "not a JSON gateway payload", "localhost", "nas.local", "outside Discord's Authorization",
		"apiKey", "not wss:// on a Discord host", "token in the gateway URL", "token in the request"}
	s := h.ScanLeaks([]string{tok}, []string{"CANARY"})
	for _, w := range want {
		if !slices.ContainsFunc(s.Findings, func(f string) bool { return strings.Contains(f, w) }) {
			t.Errorf("no finding containing %q in %q", w, s.Findings)
		}
	}
	if len(s.Findings) != len(want) {
		t.Errorf("want %d findings, got %d:\n%s", len(want), len(s.Findings), strings.Join(s.Findings, "\n"))
	}
}

func TestBadExternalURL(t *testing.T) {
	for u, want := range map[string]string{
		"https://music.example.com/a.jpg?size=300":    "",
		"https://8.8.8.8/x":                           "",
		"http://music.example.com/a.jpg":              "not https",
		"https://localhost/x":                         "private",
		"https://127.0.0.1:4533/x":                    "private",
		"https://[fd00::1]/x":                         "private",
		"https://100.64.1.1/x":                        "private",
		"https://[::ffff:192.168.0.1]/x":              "private",
		"https://host.internal/x":                     "private",
		"https://a:b@example.com/x":                   "user info",
		"https://example.com/x?id=1&t=tok":            "credential parameter t=",
		"https://example.com/x?jwt=x":                 "credential parameter jwt=",
		"https:///x":                                  "no host",
		"mp:external/abc":                             "not https",
		"https://example.com/rest/stream?id=1&p=enc:": "credential parameter p=",
	} {
		if got := BadExternalURL(u); (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("BadExternalURL(%q) = %q, want %q", u, got, want)
		}
	}
}

func TestFaultChecksDetect(t *testing.T) {
	r := loadRig(t, nil, nil)
	ctx := context.Background()
	// Clean: nothing to report.
	if ps := r.stateProblems(); len(ps) != 0 {
		t.Fatalf("fresh plugin: %v", ps)
	}
	r.Sched.ScheduleRecurring(ctx, "@every 41s", "", "hb:7:alice")
	r.Sched.ScheduleRecurring(ctx, "@every 41s", "", "hb:5:alice")
	r.Sched.ScheduleRecurring(ctx, "@every 41s", "", "hb:6:alice")
	r.Sched.ScheduleOneTime(ctx, 600, "", "rc:8:alice")
	r.Sched.ScheduleOneTime(ctx, 600, "", "rc:9:alice")
	r.WS.Connect(ctx, sliceGateway, nil, "5:alice")
	r.WS.Connect(ctx, sliceGateway, nil, "6:alice")
	for k, v := range map[string]string{"gw.alice": "1 4 - 41250 0 0 0 sess wss://x y", "want.alice": `[1.5]`,
		"cn.1.alice": "9 - 0 0 0 0 a b", "tx.1.alice": "1 x"} {
		r.Cache.SetString(ctx, k, v, 0)
	}
	want := []string{"2 open sockets", "open socket 5:alice is not the session's", "open socket 6:alice is not the session's",
		"recurring heartbeat hb:7:alice without a live connection", "3 recurring heartbeats for 2", "2 pending reconnects",
		"gw.alice", "want.alice", "cn.1.alice", "tx.1.alice"}
	ps := r.stateProblems()
	for _, w := range want {
		if !slices.ContainsFunc(ps, func(p problem) bool { return strings.Contains(p.msg, w) }) {
			t.Errorf("no problem containing %q in %v", w, ps)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("want %d problems, got %d: %v", len(want), len(ps), ps)
	}
	// Recovery: a gateway that cannot be reached never shows the presence.
	r2 := loadRig(t, nil, nil)
	r2.Gateway.DialError = errors.New("dial tcp: connection refused")
	if ps := r2.recoverAndCheck(alice, "Recovery"); !slices.ContainsFunc(ps, func(p problem) bool { return p.cat == "recovery" }) {
		t.Errorf("unreachable gateway: no recovery problem in %v", ps)
	}
	// Silence: a faulted call that neither logged WARN/ERROR nor failed.
	r3 := &Harness{Clock: NewClock(t0)}
	for _, tc := range []struct {
		logs     []LogLine
		err      error
		reported bool
	}{{nil, nil, false}, {[]LogLine{{Level: extism.LogLevelInfo}}, nil, false}, {[]LogLine{{Level: extism.LogLevelWarn}}, nil, true},
		{nil, errors.New("x"), true}} {
		call := &Result{Func: "nd_x"}
		r3.Logs, r3.Fault = nil, &FaultPlan{At: 1, Kind: FaultError, inFlight: call}
		r3.Logs = tc.logs
		call.Err = tc.err
		r3.settleFault(call)
		if r3.Fault.Reported != tc.reported {
			t.Errorf("logs %v err %v: reported %v, want %v", tc.logs, tc.err, r3.Fault.Reported, tc.reported)
		}
	}
}

func TestCheckFuzzDetects(t *testing.T) {
	fuzzScans.Lock()
	saved, savedN := fuzzScans.LeakScan, fuzzScans.iterations
	fuzzScans.Unlock()
	defer func() { fuzzScans.LeakScan, fuzzScans.iterations = saved, savedN }()
	tb := &recTB{TB: t}
	r := loadRig(tb, nil, nil)
	r.T = tb
	r.Calls = []Result{
		{Func: "nd_scrobbler_playback_report", Trap: true, Err: errors.New("wasm error: unreachable")},
		{Func: "nd_scrobbler_now_playing", Output: []byte("{not json")},
		{Func: "nd_scrobbler_is_authorized", Output: []byte("maybe")},
		{Func: "nd_scrobbler_is_authorized", Output: []byte("true")},
	}
	r.fakeHostCall("websocket_sendtext", map[string]string{"connectionId": "1:alice", "message": `{"op":3,"d":{"details":"SUBTOKEN123"}}`})
	checkFuzz(tb, r)
	for _, w := range []string{"trapped", "now_playing output is not JSON", "is_authorized output is not JSON", "exactly true or false", "SUBTOKEN123"} {
		if !slices.ContainsFunc(tb.errs, func(e string) bool { return strings.Contains(e, w) }) {
			t.Errorf("no error containing %q in %q", w, tb.errs)
		}
	}
	if len(tb.errs) != 5 {
		t.Errorf("want 5 errors, got %d: %q", len(tb.errs), tb.errs)
	}
}
