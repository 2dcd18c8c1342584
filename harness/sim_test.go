package harness

// The concurrent mode's fakes without a plugin: callbacks are Go functions
// running as tasks, so each host behaviour can be pinned down.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/navidrome/navidrome/plugins/capabilities"
)

// simHarness is a harness with fakes only; call handles every callback.
func simHarness(t *testing.T, seed int64, call invokeFunc) (*Harness, *Sim) {
	c := NewClock(t0)
	h := &Harness{T: t, Clock: c, Sched: NewScheduler(c, newIDSource(1)), Gateway: NewGateway(t, c), HTTP: &HTTP{clock: c}}
	h.WS = NewWebSocket(c, newIDSource(1), []string{"*.discord.gg"}, h.Gateway)
	h.Gateway.ws, h.Gateway.via = h.WS, h.Current
	h.Gateway.SendHello = false
	h.WS.call, h.Sched.call = call, call
	return h, NewSim(h, seed)
}

// Two sends on one connection at once: the second panics like gorilla, the
// first frame goes out, and the connection stays usable.
func TestSimConcurrentWrite(t *testing.T) {
	h, s := simHarness(t, 1, func(context.Context, string, any) error { return nil })
	id, err := h.WS.Connect(context.Background(), sliceGateway, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	var panics []string
	send := func(frame string) func(ctx context.Context) {
		return func(ctx context.Context) {
			defer func() {
				if p := recover(); p != nil {
					panics = append(panics, fmt.Sprint(p))
				}
			}()
			_ = h.WS.SendText(ctx, id, frame)
		}
	}
	s.Go("a", send(`{"op":1,"d":null}`))
	s.Go("b", send(`{"op":1,"d":null}`))
	s.Run(t0.Add(time.Second))
	if len(panics) != 1 || panics[0] != ConcurrentWrite || s.Collisions != 1 {
		t.Fatalf("panics %q, collisions %d; want one %q", panics, s.Collisions, ConcurrentWrite)
	}
	if n := len(h.Gateway.Frames); n != 1 {
		t.Fatalf("%d frames reached the gateway, want the first writer's only", n)
	}
	s.Go("c", send(`{"op":1,"d":null}`)) // after the hold: fine
	s.Run(t0.Add(2 * time.Second))
	if len(panics) != 1 || len(h.Gateway.Frames) != 2 {
		t.Fatalf("a later send: panics %q, %d frames", panics, len(h.Gateway.Frames))
	}
	// A close frame never collides (WriteControl), even during a held write.
	s.Go("d", send(`{"op":1,"d":null}`))
	s.Go("e", func(ctx context.Context) { _ = h.WS.CloseConnection(ctx, id, 1000, "bye") })
	s.Run(t0.Add(3 * time.Second))
	if len(panics) != 1 {
		t.Fatalf("close during a write: panics %q", panics)
	}
}

// One-time ids are freed only after their callback returns: re-scheduling the
// same id from inside fails, as in Navidrome.
func TestSimOneTimeIDFreedAfterCallback(t *testing.T) {
	var h *Harness
	var errs []string
	h, s := simHarness(t, 2, func(ctx context.Context, fn string, in any) error {
		req := in.(capabilities.SchedulerCallbackRequest)
		if _, err := h.Sched.ScheduleOneTime(ctx, 1, "", req.ScheduleID); err != nil {
			errs = append(errs, err.Error())
		}
		return nil
	})
	ctx := context.Background()
	if _, err := h.Sched.ScheduleOneTime(ctx, 1, "", "rc:1:alice"); err != nil {
		t.Fatal(err)
	}
	s.Run(t0.Add(1500 * time.Millisecond))
	if len(errs) != 1 || !strings.Contains(errs[0], `schedule ID "rc:1:alice" already exists`) {
		t.Fatalf("re-scheduling inside the callback: %q", errs)
	}
	if _, ok := h.Sched.Get("rc:1:alice"); ok {
		t.Fatal("the id outlived its callback")
	}
}

// A connection's read loop delivers in order, one callback at a time; two
// connections' loops run in parallel.
func TestSimReadLoops(t *testing.T) {
	var h *Harness
	var log []string
	h, s := simHarness(t, 3, func(ctx context.Context, fn string, in any) error {
		m, ok := in.(capabilities.OnTextMessageRequest)
		if !ok {
			return nil
		}
		log = append(log, "start "+m.ConnectionID+" "+m.Message)
		taskOf(ctx).sleep(h.Clock.Now().Add(100 * time.Millisecond)) // a slow callback
		log = append(log, "end "+m.ConnectionID+" "+m.Message)
		return nil
	})
	ctx := context.Background()
	a, _ := h.WS.Connect(ctx, sliceGateway, nil, "a")
	b, _ := h.WS.Connect(ctx, sliceGateway, nil, "b")
	for i := 1; i <= 3; i++ {
		h.WS.QueueText(h.WS.Conn(a), fmt.Sprint(i))
		h.WS.QueueText(h.WS.Conn(b), fmt.Sprint(i))
	}
	s.Run(t0.Add(time.Second))
	for _, id := range []string{a, b} {
		var mine []string
		for _, l := range log {
			if strings.Contains(l, " "+id+" ") {
				mine = append(mine, l)
			}
		}
		want := fmt.Sprintf("start %[1]s 1,end %[1]s 1,start %[1]s 2,end %[1]s 2,start %[1]s 3,end %[1]s 3", id)
		if strings.Join(mine, ",") != want {
			t.Errorf("connection %s: %v, want %s", id, mine, want)
		}
	}
	if !strings.HasPrefix(log[1], "start") {
		t.Errorf("the two connections did not overlap: %v", log)
	}
}
