package harness

// Deterministic concurrent mode. Navidrome runs plugin calls concurrently: a
// goroutine per timer firing, one read loop per websocket connection, the
// scrobbler's workers. Sim reproduces that with real goroutines — one per
// plugin call or host activity (a "task") — of which exactly one runs at a
// time: a task gives control back only at a host-function boundary (every
// Navidrome host call goes through wrapHostFunction, which yields) or while a
// host service holds it for virtual time (a websocket write). Time is the
// harness's virtual clock; the scheduler always moves to the earliest wake-up
// (a task resuming, a clock timer, a queued websocket frame whose read loop is
// idle) and breaks ties with its seeded RNG, so one seed is one interleaving,
// reproduced bit for bit.

import (
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"time"
)

// Sim defaults.
const (
	DefaultMaxLatency = 3 * time.Millisecond  // host call latency, uniform in [0, max]
	DefaultWriteHold  = 20 * time.Millisecond // a websocket text send holds the writer this long
	// DefaultNetLatency bounds the latency of host calls that go over the
	// network (HTTP requests, a websocket dial with its TLS handshake).
	DefaultNetLatency = 250 * time.Millisecond
)

// netCalls are the host functions whose latency is DefaultNetLatency-sized.
var netCalls = map[string]bool{"http_send": true, "websocket_connect": true, "subsonicapi_callraw": true, "subsonicapi_call": true}

// Sim is the deterministic scheduler of a harness in concurrent mode (NewSim).
type Sim struct {
	h    *Harness
	Seed int64
	rng  *rand.Rand
	// MaxLatency bounds the seeded virtual latency of each host call;
	// WriteHold is how long a websocket send keeps the connection's writer
	// busy (another send on it meanwhile panics like gorilla).
	MaxLatency time.Duration
	NetLatency time.Duration // the same for network calls (netCalls)
	WriteHold  time.Duration

	tasks   []*task // live tasks (running, ready or sleeping), in creation order
	running *task
	back    chan struct{} // the running task parked or finished
	nextID  int

	// Counters.
	Spawned    int      // tasks started
	Switches   int      // scheduling decisions
	Collisions int      // sends that hit a busy writer (gorilla's panic)
	Panics     []string // Go panics outside plugin calls (harness bugs)
}

type task struct {
	id     int
	name   string
	wake   time.Time
	resume chan struct{}
	stack  callStack
	sim    *Sim
}

type taskKey struct{}

// taskOf returns the task a context belongs to (nil in sequential mode).
func taskOf(ctx context.Context) *task {
	t, _ := ctx.Value(taskKey{}).(*task)
	return t
}

// NewSim switches h to concurrent mode: from now on timer firings, websocket
// deliveries and Sim.Call run as tasks, driven only by Run. Sequential calls
// (Call, Pump, Advance) must not be used afterwards.
func NewSim(h *Harness, seed int64) *Sim {
	s := &Sim{h: h, Seed: seed, rng: rand.New(rand.NewSource(seed)), MaxLatency: DefaultMaxLatency, NetLatency: DefaultNetLatency,
		WriteHold: DefaultWriteHold, back: make(chan struct{})}
	h.Sim = s
	h.Sched.spawn = s.Go
	h.WS.sim = s
	return s
}

// Go starts body as a new task, ready at the current instant. It only
// registers it: the task first runs when Run picks it.
func (s *Sim) Go(name string, body func(ctx context.Context)) {
	s.nextID++
	s.Spawned++
	t := &task{id: s.nextID, name: name, wake: s.h.Clock.Now(), resume: make(chan struct{}), sim: s}
	s.tasks = append(s.tasks, t)
	go func() {
		<-t.resume
		defer func() {
			if p := recover(); p != nil {
				buf := make([]byte, 8<<10)
				buf = buf[:runtime.Stack(buf, false)]
				s.Panics = append(s.Panics, fmt.Sprintf("task %s: Go panic: %v\n%s", name, p, buf))
			}
			t.wake = time.Time{}
			s.back <- struct{}{}
		}()
		body(context.WithValue(context.Background(), taskKey{}, t))
	}()
}

// Call starts a task invoking export fn with input (the way a Navidrome worker
// goroutine calls the plugin).
func (s *Sim) Call(fn string, input any) {
	s.Go(fn, func(ctx context.Context) { s.h.invoke(ctx, fn, input, nil) })
}

// At runs f (an external event: it must not call the plugin itself, only
// start tasks or queue traffic) when the clock reaches at.
func (s *Sim) At(at time.Time, f func()) { s.h.Clock.At(at, f) }

// sleep parks the running task t until the clock reaches until.
func (t *task) sleep(until time.Time) {
	s := t.sim
	if s.running != t {
		panic("harness: sleep from a task that is not running")
	}
	t.wake = until
	s.back <- struct{}{}
	<-t.resume
}

// hostYield is the switch point before every host call: the task sleeps for a
// seeded latency (possibly zero: it still lets every other task due now run
// first if the RNG says so).
func (t *task) hostYield(name string) {
	s := t.sim
	max := s.MaxLatency
	if netCalls[name] {
		max = s.NetLatency
	}
	var d time.Duration
	if max > 0 {
		d = time.Duration(s.rng.Int63n(int64(max) + 1))
	}
	t.sleep(s.h.Clock.Now().Add(d))
}

// candidate is one thing that can happen at the earliest instant.
type candidate struct {
	task  *task
	timer bool
	conn  *Conn // a websocket delivery on this connection
}

// Run drives the system until the clock reaches until (or nothing is left to
// do before it), then sets the clock to until.
func (s *Sim) Run(until time.Time) {
	clock := s.h.Clock
	for {
		at, ok := time.Time{}, false
		consider := func(t time.Time) {
			if !ok || t.Before(at) {
				at, ok = t, true
			}
		}
		for _, t := range s.tasks {
			consider(t.wake)
		}
		if next := clock.peek(); next != nil {
			consider(next.at)
		}
		ready := s.h.WS.deliverable()
		if len(ready) > 0 {
			consider(clock.Now())
		}
		if !ok || at.After(until) {
			break
		}
		if at.After(clock.now) {
			clock.now = at
		}
		var cands []candidate
		for _, t := range s.tasks {
			if !t.wake.After(clock.now) {
				cands = append(cands, candidate{task: t})
			}
		}
		if next := clock.peek(); next != nil && !next.at.After(clock.now) {
			cands = append(cands, candidate{timer: true})
		}
		for _, c := range ready {
			cands = append(cands, candidate{conn: c})
		}
		s.Switches++
		c := cands[s.rng.Intn(len(cands))]
		switch {
		case c.task != nil:
			s.resume(c.task)
		case c.timer:
			clock.popDue(clock.now).fire()
		default:
			s.h.WS.startDelivery(c.conn)
		}
	}
	if until.After(clock.now) {
		clock.now = until
	}
}

// resume runs t until it parks or finishes.
func (s *Sim) resume(t *task) {
	s.running = t
	t.resume <- struct{}{}
	<-s.back
	s.running = nil
	if t.wake.IsZero() { // finished
		for i, x := range s.tasks {
			if x == t {
				s.tasks = append(s.tasks[:i], s.tasks[i+1:]...)
				break
			}
		}
	}
}

// Drain lets the tasks still alive finish (no timer fires, no frame is
// delivered, the clock moves only to their wake-ups), so no goroutine or
// plugin instance outlives the simulation. Call it once the checks are done.
func (s *Sim) Drain() {
	for len(s.tasks) > 0 {
		t := s.tasks[0]
		for _, x := range s.tasks[1:] {
			if x.wake.Before(t.wake) {
				t = x
			}
		}
		if t.wake.After(s.h.Clock.now) {
			s.h.Clock.now = t.wake
		}
		s.resume(t)
	}
}

// Idle reports whether no task is alive and no websocket frame is waiting.
func (s *Sim) Idle() bool { return len(s.tasks) == 0 && len(s.h.WS.deliverable()) == 0 }

// randReader returns a deterministic random source for one plugin instance
// (WASI random_get), so the plugin's own randomness replays with the seed.
func (s *Sim) randReader() *rand.Rand { return rand.New(rand.NewSource(s.rng.Int63())) }

// peek returns the earliest live timer without removing it (nil if none).
func (c *Clock) peek() *timer {
	var best *timer
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		if best == nil || t.at.Before(best.at) || t.at.Equal(best.at) && t.seq < best.seq {
			best = t
		}
	}
	return best
}
