package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/navidrome/navidrome/plugins/capabilities"
	"github.com/navidrome/navidrome/plugins/host"
)

var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// recTB captures Errorf calls so tests can check that a fake reports them.
type recTB struct {
	testing.TB
	errs []string
}

func (r *recTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recTB) Helper() {}

// callLog is an invokeFunc that records calls and runs an optional hook.
type callLog struct {
	calls []string
	hook  func(fn string, input any)
}

func (c *callLog) invoke(_ context.Context, fn string, input any) error {
	c.calls = append(c.calls, fmt.Sprintf("%s %+v", fn, input))
	if c.hook != nil {
		c.hook(fn, input)
	}
	return nil
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestClockFiresInTimeOrder(t *testing.T) {
	c := NewClock(t0)
	var got []string
	mark := func(s string) func() {
		return func() { got = append(got, fmt.Sprintf("%s@%ds", s, int(c.Now().Sub(t0).Seconds()))) }
	}
	c.At(t0.Add(5*time.Second), mark("b"))
	c.At(t0.Add(2*time.Second), func() {
		mark("a")()
		c.At(t0.Add(3*time.Second), mark("a2")) // created by a callback, due inside this Advance
	})
	c.At(t0.Add(5*time.Second), mark("c")) // tie with b: creation order
	stopped := c.At(t0.Add(4*time.Second), mark("x"))
	stopped.Stop()
	c.At(t0.Add(20*time.Second), mark("late"))
	c.Advance(10 * time.Second)
	if want := "a@2s a2@3s b@5s c@5s"; strings.Join(got, " ") != want {
		t.Errorf("fired %v, want %s", got, want)
	}
	if !c.Now().Equal(t0.Add(10 * time.Second)) {
		t.Errorf("now = %v", c.Now())
	}
	if p := c.Pending(); len(p) != 1 || !p[0].Equal(t0.Add(20*time.Second)) {
		t.Errorf("pending = %v", p)
	}
}

func newTestScheduler() (*Scheduler, *Clock, *callLog) {
	c := NewClock(t0)
	s := NewScheduler(c, newIDSource(1))
	cl := &callLog{}
	s.call = cl.invoke
	return s, c, cl
}

func TestSchedulerCronForms(t *testing.T) {
	s, _, _ := newTestScheduler()
	ctx := context.Background()
	for _, ok := range []string{"@every 41s", "41s", "@every 1m30s"} {
		if _, err := s.ScheduleRecurring(ctx, ok, "", ""); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	_, err := s.ScheduleRecurring(ctx, "*/5 * * * *", "", "")
	wantErr(t, err, `failed to schedule task: harness: only @every/duration schedules are simulated, got "*/5 * * * *"`)
	_, err = s.ScheduleRecurring(ctx, "bogus", "", "")
	if err == nil || !strings.HasPrefix(err.Error(), "failed to schedule task: ") {
		t.Errorf("bogus cron: %v", err)
	}
	// robfig/cron truncates @every to whole seconds (min 1 s).
	id, _ := s.ScheduleRecurring(ctx, "@every 41.25s", "", "frac")
	if e, _ := s.Get(id); !e.Next.Equal(t0.Add(41 * time.Second)) {
		t.Errorf("@every 41.25s next = %v", e.Next)
	}
}

func TestSchedulerIDsAndErrors(t *testing.T) {
	s, _, _ := newTestScheduler()
	ctx := context.Background()
	id, err := s.ScheduleOneTime(ctx, 5, "p", "")
	if err != nil || len(id) != 22 {
		t.Errorf("random id %q, %v", id, err)
	}
	_, err = s.ScheduleRecurring(ctx, "@every 5s", "p", id)
	wantErr(t, err, fmt.Sprintf("schedule ID %q already exists", id))
	wantErr(t, s.CancelSchedule(ctx, "nope"), `schedule ID "nope" not found`)
	if err := s.CancelSchedule(ctx, id); err != nil || len(s.Active()) != 0 {
		t.Errorf("cancel: %v, active %v", err, s.Active())
	}
	if len(s.Ops) != 4 || s.Ops[1].Err == "" || s.Ops[3].Result != id {
		t.Errorf("ops not recorded: %+v", s.Ops)
	}
}

func TestSchedulerOneTimeLifecycle(t *testing.T) {
	s, c, cl := newTestScheduler()
	ctx := context.Background()
	var inCallback []string
	cl.hook = func(fn string, input any) {
		req := input.(capabilities.SchedulerCallbackRequest)
		_, stillThere := s.Get(req.ScheduleID)
		_, err := s.ScheduleOneTime(ctx, 1, "again", req.ScheduleID)
		inCallback = append(inCallback, fmt.Sprintf("%s present=%v err=%v", req.ScheduleID, stillThere, err))
	}
	s.ScheduleOneTime(ctx, 0, "now", "zero")
	s.ScheduleOneTime(ctx, 3, "later", "beat")
	if !c.RunDue() || c.RunDue() { // delay 0: due at once, exactly one
		t.Fatal("delay 0 must be due immediately")
	}
	c.Advance(3 * time.Second)
	want := []string{
		`zero present=true err=schedule ID "zero" already exists`,
		`beat present=true err=schedule ID "beat" already exists`,
	}
	if strings.Join(inCallback, "|") != strings.Join(want, "|") {
		t.Errorf("callbacks saw %v", inCallback)
	}
	if len(s.Active()) != 0 {
		t.Errorf("one-time ids must be gone after their callback: %v", s.Active())
	}
	if !strings.Contains(cl.calls[1], "ScheduleID:beat Payload:later IsRecurring:false") {
		t.Errorf("callback input %v", cl.calls)
	}
}

func TestSchedulerCancelThenRescheduleInsideCallbackIsLost(t *testing.T) {
	s, c, cl := newTestScheduler()
	ctx := context.Background()
	cl.hook = func(string, any) {
		if len(cl.calls) == 1 {
			s.CancelSchedule(ctx, "x")
			s.ScheduleOneTime(ctx, 5, "second", "x")
		}
	}
	s.ScheduleOneTime(ctx, 1, "first", "x")
	c.Advance(10 * time.Second)
	if len(cl.calls) != 1 || len(s.Missed) != 1 || len(s.Active()) != 0 {
		t.Errorf("calls %v missed %v active %v", cl.calls, s.Missed, s.Active())
	}
}

func TestSchedulerRecurring(t *testing.T) {
	s, c, cl := newTestScheduler()
	ctx := context.Background()
	s.ScheduleRecurring(ctx, "@every 41s", "hb", "hb")
	c.Advance(100 * time.Second)
	if len(cl.calls) != 2 || !strings.Contains(cl.calls[0], "IsRecurring:true") {
		t.Errorf("calls %v", cl.calls)
	}
	if e, _ := s.Get("hb"); e.Fired != 2 || !e.Next.Equal(t0.Add(123*time.Second)) {
		t.Errorf("entry %+v", e)
	}
	s.CancelSchedule(ctx, "hb")
	c.Advance(100 * time.Second)
	if len(cl.calls) != 2 {
		t.Errorf("fired after cancel: %v", cl.calls)
	}
}

func TestCacheTTLTouchAndTypes(t *testing.T) {
	c := NewClock(t0)
	k := NewCache(c)
	ctx := context.Background()
	k.SetString(ctx, "s", "v", 10)
	k.SetInt(ctx, "i", 7, 0)
	c.Advance(8 * time.Second)
	if v, ok, _ := k.GetString(ctx, "s"); !ok || v != "v" {
		t.Fatal("s missing at 8 s")
	}
	c.Advance(8 * time.Second) // 16 s: alive only because the read at 8 s touched it
	if _, ok, _ := k.GetInt(ctx, "s"); ok {
		t.Error("typed get of a string must be not found")
	}
	c.Advance(10 * time.Second) // the mismatched get still touched: expires at 26 s
	if ok, _ := k.Has(ctx, "s"); !ok {
		t.Error("s must survive until 26 s")
	}
	c.Advance(10*time.Second + time.Millisecond)
	if ok, _ := k.Has(ctx, "s"); ok {
		t.Error("s must expire after 10 s idle")
	}
	if e, ok := k.Dump()["i"]; !ok || e.TTL != 24*time.Hour {
		t.Errorf("ttl 0 must mean 24 h: %+v", e)
	}
}

func TestConfigFromJSON(t *testing.T) {
	cfg, err := ConfigFromJSON(`{"clientid":"123","users":[{"username":"alice","token":"t1"}],"spotifylinks":true,"n":3,"x":null}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"clientid": "123", "users": `[{"token":"t1","username":"alice"}]`, "spotifylinks": "true", "n": "3", "x": "null"}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("got %v", cfg)
	}
	if n, ok := Config(cfg).GetInt(context.Background(), "n"); !ok || n != 3 {
		t.Error("GetInt")
	}
	if keys := Config(cfg).Keys(context.Background(), "s"); fmt.Sprint(keys) != "[spotifylinks]" {
		t.Errorf("keys %v", keys)
	}
}

func TestHostPatterns(t *testing.T) {
	w := NewWebSocket(NewClock(t0), newIDSource(1), []string{"gateway.discord.gg", "*.discord.gg"}, nil)
	for host, want := range map[string]bool{
		"gateway.discord.gg": true, "gateway.discord.gg:443": true, "gateway-us-east1-b.discord.gg": true,
		"discord.gg": false, "gateway.Discord.gg": false, "evil.com": false, "discord.gg.evil.com": false,
	} {
		if got := w.hostAllowed(host); got != want {
			t.Errorf("%s: allowed=%v want %v", host, got, want)
		}
	}
	if NewWebSocket(nil, nil, nil, nil).hostAllowed("gateway.discord.gg") {
		t.Error("empty requiredHosts must allow nothing for websockets")
	}
	h := &HTTP{clock: NewClock(t0)}
	for host, want := range map[string]bool{"discord.com": true, "127.0.0.1:80": false, "localhost": false, "[::1]:8080": false, "10.1.2.3": false} {
		if got := h.checkHost(host) == nil; got != want {
			t.Errorf("http %s: allowed=%v want %v", host, got, want)
		}
	}
}

// wsRig is a websocket fake + gateway without a plugin; callbacks are logged.
func wsRig(t *testing.T) (*WebSocket, *Gateway, *callLog, *recTB) {
	tb := &recTB{TB: t}
	c := NewClock(t0)
	g := NewGateway(tb, c)
	w := NewWebSocket(c, newIDSource(1), []string{"*.discord.gg"}, g)
	g.ws = w
	cl := &callLog{}
	w.call = cl.invoke
	return w, g, cl, tb
}

func TestWebSocketConnectAndSend(t *testing.T) {
	w, g, cl, tb := wsRig(t)
	ctx := context.Background()
	_, err := w.Connect(ctx, "https://gateway.discord.gg", nil, "a")
	wantErr(t, err, "invalid URL scheme: must be ws:// or wss://")
	_, err = w.Connect(ctx, "wss://discord.gg/", nil, "a")
	wantErr(t, err, `host "discord.gg" is not allowed`)
	id, err := w.Connect(ctx, "wss://gateway.discord.gg/?v=10&encoding=json", nil, "")
	if err != nil || len(id) != 22 {
		t.Fatalf("connect: %q %v", id, err)
	}
	_, err = w.Connect(ctx, "wss://gateway.discord.gg", nil, id)
	wantErr(t, err, fmt.Sprintf("connection ID %q already exists", id))
	wantErr(t, w.SendText(ctx, "nope", "{}"), `connection ID "nope" not found`)
	if len(cl.calls) != 0 || w.Pending() != 1 {
		t.Fatalf("hello must be queued, not delivered: %v", cl.calls)
	}
	w.Deliver(ctx)
	if !strings.Contains(cl.calls[0], `"op":10`) {
		t.Errorf("hello: %v", cl.calls)
	}
	w.SendText(ctx, id, `{"op":2,"d":{"token":"t"}}`)
	w.SendText(ctx, id, `{"op":1,"d":null}`)
	w.SendText(ctx, id, `not json`)
	w.SendText(ctx, id, `{"op":3,"d":"`+strings.Repeat("x", MaxFrameBytes)+`"}`)
	if len(tb.errs) != 2 {
		t.Errorf("want 2 gateway errors (invalid JSON, oversize), got %v", tb.errs)
	}
	for w.Deliver(ctx) {
	}
	if !strings.Contains(cl.calls[1], `"t":"READY","s":1`) || !strings.Contains(cl.calls[2], `{"op":11}`) {
		t.Errorf("READY then ACK expected: %v", cl.calls[1:])
	}
	if n := len(g.FramesOn(w.Conn(id))); n != 3 || g.MaxInWindow(w.Conn(id), time.Minute) != 3 || g.MaxInWindow(w.Conn(id), time.Minute, 3) != 1 {
		t.Errorf("frames %d", n)
	}
}

func TestWebSocketClientCloseRunsOnCloseSynchronously(t *testing.T) {
	w, _, cl, _ := wsRig(t)
	ctx := context.Background()
	id, _ := w.Connect(ctx, "wss://gateway.discord.gg", nil, "c1")
	var during error
	cl.hook = func(fn string, _ any) { during = w.SendText(ctx, "c1", "{}") }
	if err := w.CloseConnection(ctx, id, 4000, "zombie"); err != nil {
		t.Fatal(err)
	}
	if len(cl.calls) != 1 || !strings.Contains(cl.calls[0], "nd_websocket_on_close {ConnectionID:c1 Code:4000 Reason:zombie}") {
		t.Errorf("on_close: %v", cl.calls)
	}
	wantErr(t, during, `connection ID "c1" not found`) // removed before the callback
	if w.Pending() != 0 || w.Deliver(ctx) {
		t.Error("queued Hello must be dropped after a client close")
	}
	wantErr(t, w.CloseConnection(ctx, id, 1000, ""), `connection ID "c1" not found`)
}

func TestWebSocketServerClose(t *testing.T) {
	w, _, cl, _ := wsRig(t)
	ctx := context.Background()
	for _, tc := range []struct {
		code   int32
		reason string
		want   string
	}{
		{4004, "Authentication failed.", "nd_websocket_on_error {ConnectionID:c Error:websocket: close 4004: Authentication failed.}"},
		{1006, "unexpected EOF", "nd_websocket_on_error {ConnectionID:c Error:websocket: close 1006 (abnormal closure): unexpected EOF}"},
		{1000, "bye", "nd_websocket_on_close {ConnectionID:c Code:1000 Reason:bye}"},
	} {
		cl.calls = nil
		w.Connect(ctx, "wss://gateway.discord.gg", nil, "c")
		conn := w.Conn("c")
		var reconnect error
		cl.hook = func(fn string, _ any) {
			if fn != "nd_websocket_on_text_message" {
				_, reconnect = w.Connect(ctx, "wss://gateway.discord.gg", nil, "c")
			}
		}
		w.ServerClose(conn, tc.code, tc.reason)
		for w.Deliver(ctx) {
		}
		if len(cl.calls) != 2 || cl.calls[1] != tc.want {
			t.Errorf("%d: calls %v", tc.code, cl.calls)
		}
		wantErr(t, reconnect, `connection ID "c" already exists`) // id lingers during the callback
		if conn.Open || !conn.Ended || conn.ClosedBy != "server" || len(w.Active()) != 0 {
			t.Errorf("%d: conn not cleaned up: %+v", tc.code, conn)
		}
	}
}

func TestAssertNoSecret(t *testing.T) {
	tb := &recTB{TB: t}
	c := NewClock(t0)
	h := &Harness{T: tb, Clock: c, Sched: NewScheduler(c, newIDSource(1)), WS: NewWebSocket(c, nil, nil, nil), HTTP: &HTTP{clock: c}}
	h.Logs = []LogLine{{Msg: "identify with tok-SECRET"}}
	h.Calls = []Result{{Func: "f", Err: fmt.Errorf("bad token tok-SECRET")}}
	h.HTTP.Calls = []HTTPCall{{Request: hostReq("https://discord.com/api/v9/x", "tok-SECRET")}, {Request: hostReq("https://uguu.se/upload", "tok-SECRET")}}
	h.AssertNoSecret("tok-SECRET")
	if len(tb.errs) != 3 {
		t.Errorf("want 3 leaks (log, error, uguu request), got %v", tb.errs)
	}
}

func hostReq(url, auth string) (r host.HTTPRequest) {
	r.URL, r.Headers = url, map[string]string{"Authorization": auth}
	return r
}

// gatewayRig is wsRig with a helper that sends a frame and delivers the answers.
func gatewayRig(t *testing.T) (*WebSocket, *Gateway, *recTB, func(id, frame string) []string) {
	w, g, cl, tb := wsRig(t)
	ctx := context.Background()
	return w, g, tb, func(id, frame string) []string {
		if frame != "" {
			w.SendText(ctx, id, frame)
		}
		cl.calls = nil
		for w.Deliver(ctx) {
		}
		return cl.calls
	}
}

func TestGatewaySessions(t *testing.T) {
	w, g, tb, send := gatewayRig(t)
	ctx := context.Background()
	open := func(id string) string {
		w.Connect(ctx, "wss://gateway.discord.gg/?v=10&encoding=json", nil, id)
		send(id, "") // Hello
		return id
	}
	has := func(calls []string, want string) bool { return strings.Contains(strings.Join(calls, "\n"), want) }
	a := open("a")
	if got := send(a, `{"op":3,"d":{}}`); !has(got, "close 4003: Not authenticated.") {
		t.Errorf("op 3 before Identify: %v", got)
	}
	a = open("a2")
	if got := send(a, `{"op":2,"d":{"token":"t1"}}`); !has(got, `"t":"READY","s":1`) || !has(got, `"session_id":"sess-1"`) {
		t.Errorf("identify: %v", got)
	}
	g.Dispatch(w.Conn(a), "X", `{}`)
	if got := send(a, `{"op":2,"d":{"token":"t1"}}`); !has(got, "close 4005") {
		t.Errorf("second identify: %v", got)
	}
	var resumed string
	for i, tc := range []struct{ frame, want string }{
		{`{"op":6,"d":{"token":"t1","session_id":"sess-1","seq":3}}`, `{"op":9,"d":false`}, // seq from the future
		{`{"op":6,"d":{"token":"t2","session_id":"sess-1","seq":2}}`, `{"op":9,"d":false`}, // someone else's session
		{`{"op":6,"d":{"token":"t1","session_id":"sess-1","seq":2}}`, `"t":"RESUMED","s":3`},
	} {
		resumed = open(fmt.Sprint("r", i))
		if got := send(resumed, tc.frame); !has(got, tc.want) {
			t.Errorf("%s: got %v, want %s", tc.frame, got, tc.want)
		}
	}
	if g.SessionOn(w.Conn(resumed)) != g.SessionOn(w.Conn(a)) {
		t.Error("resumed socket not attached to the session")
	}
	w.CloseConnection(ctx, resumed, 1000, "")
	if got := send(open("b"), `{"op":6,"d":{"token":"t1","session_id":"sess-1","seq":3}}`); !has(got, `{"op":9,"d":false`) {
		t.Errorf("resume after the client closed with 1000: %v", got)
	}
	g.RejectTokens["bad"] = true
	if got := send(open("c"), `{"op":2,"d":{"token":"bad"}}`); !has(got, "close 4004: Authentication failed.") {
		t.Errorf("rejected token: %v", got)
	}
	g.NoAck[w.Conn("c")] = true
	if len(tb.errs) != 0 {
		t.Errorf("gateway errors: %v", tb.errs)
	}
}

func TestReadyJunk(t *testing.T) {
	w, g, _, send := gatewayRig(t)
	g.ReadyJunk = 2 << 20
	w.Connect(context.Background(), "wss://gateway.discord.gg", nil, "a")
	send("a", "")
	send("a", `{"op":2,"d":{"token":"t"}}`)
	ev := w.Conn("a").Events
	msg := ev[len(ev)-1].Text
	var ready struct {
		D map[string]json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal([]byte(msg), &ready); err != nil || len(msg) < 2<<20 {
		t.Fatalf("READY of %d bytes is not JSON: %v", len(msg), err)
	}
	if string(ready.D["session_id"]) != `"sess-1"` || string(ready.D["resume_gateway_url"]) != `"wss://gateway-us-east1-b.discord.gg"` {
		t.Errorf("top-level fields: %s %s", ready.D["session_id"], ready.D["resume_gateway_url"])
	}
	if i, j := strings.Index(msg, `"decoy-0"`), strings.LastIndex(msg, `"session_id":"sess-1"`); i < 0 || j < len(msg)-200 || !strings.Contains(msg, `\ud83c\udfb5`) {
		t.Errorf("decoys first, real fields at the end: decoy at %d, real at %d of %d", i, j, len(msg))
	}
}

func TestGatewaySlowAndStrict(t *testing.T) {
	w, g, cl, tb := wsRig(t)
	g.via = func() *Result { return nil }
	ctx := context.Background()
	c := g.clock
	g.ReplyDelay, g.AckDelay, g.HeartbeatGrace = 5*time.Second, 30*time.Second, 20*time.Second
	deliver := func() []string {
		cl.calls = nil
		for w.Deliver(ctx) {
		}
		return cl.calls
	}
	advance := func(d time.Duration) []string {
		c.Advance(d)
		return deliver()
	}
	has := func(calls []string, want string) bool { return strings.Contains(strings.Join(calls, "\n"), want) }
	id, _ := w.Connect(ctx, sliceGateway, nil, "a")
	if got := advance(4 * time.Second); len(got) != 0 {
		t.Errorf("Hello before ReplyDelay: %v", got)
	}
	if got := advance(time.Second); !has(got, `"op":10`) {
		t.Errorf("no Hello at ReplyDelay: %v", got)
	}
	w.SendText(ctx, id, `{"op":2,"d":{"token":"t"}}`)
	if got := advance(5 * time.Second); !has(got, `"t":"READY"`) {
		t.Errorf("no READY at ReplyDelay: %v", got)
	}
	w.SendText(ctx, id, `{"op":1,"d":1}`)
	if got := advance(29 * time.Second); len(got) != 0 {
		t.Errorf("ACK before AckDelay: %v", got)
	}
	if got := advance(time.Second); !has(got, `{"op":11}`) {
		t.Errorf("no ACK at AckDelay: %v", got)
	}
	// Last beat 30 s ago: the deadline is interval (41.25 s) + grace (20 s) after it.
	if got := advance(31 * time.Second); len(got) != 0 || len(g.Timeouts) != 0 {
		t.Errorf("closed before the heartbeat deadline: %v", got)
	}
	if got := advance(time.Second); !has(got, "close 4009: Session timed out.") || len(g.Timeouts) != 1 {
		t.Errorf("no 4009 after a missed heartbeat: %v (timeouts %d)", got, len(g.Timeouts))
	}
	if len(tb.errs) != 0 {
		t.Errorf("gateway errors: %v", tb.errs)
	}
}
