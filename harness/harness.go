// Package harness loads a Navidrome plugin (.wasm + manifest.json) the way
// Navidrome v0.63.2 does — extism go-sdk v1.7.1 on wazero v1.12.0, Navidrome's
// own host-function bindings (plugins/host) — and backs the host services with
// deterministic fakes driven by a virtual clock. Nothing runs in the
// background: plugin calls, timers and websocket deliveries happen only when
// the test calls Call, Pump or Advance.
package harness

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"testing"
	"time"
	"unsafe"

	extism "github.com/extism/go-sdk"
	"github.com/navidrome/navidrome/plugins/host"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// Options configure Load. Zero values take the defaults noted.
type Options struct {
	WasmPath     string            // default $PLUGIN_WASM, else ../dist/plugin.wasm
	ManifestPath string            // default $PLUGIN_MANIFEST, else ../manifest.json
	Config       map[string]string // the §1.6 string map (see ConfigFromJSON)
	Users        []host.User       // users_getusers result
	Start        time.Time         // virtual clock start; default 2026-07-01 12:00:00 UTC
	LogLevel     extism.LogLevel   // default LogLevelTrace (capture everything)
	Setup        func(*Harness)    // runs after the fakes exist, before nd_on_init
	// Runtime is a plugin already compiled (Compile) to share; nil compiles
	// one for this harness alone (closed when the test ends). WasmPath,
	// ManifestPath and LogLevel only apply when compiling.
	Runtime *Runtime
}

// LogLine is one message the plugin logged through the kernel's log_* imports.
type LogLine struct {
	At    time.Time
	Level extism.LogLevel
	Func  string // export whose instance logged it
	Msg   string
}

// Result is the outcome of one export call, interpreted as manager_call.go does.
type Result struct {
	Func   string
	At     time.Time
	Nested bool // ran inside another call (websocket_closeconnection → on_close)
	Input  []byte
	RC     uint32
	Output []byte
	Err    error
	Trap   bool          // the wasm call itself failed (trap, timeout), not an error_set
	Pages  uint32        // plugin linear memory after the call, in 64 KiB pages (0: unknown)
	Wall   time.Duration // real time spent in the export, nested calls included (report only)
}

// Harness is one loaded plugin plus its fakes.
type Harness struct {
	T            testing.TB
	Manifest     *Manifest
	Config       Config
	Clock        *Clock
	Sched        *Scheduler
	WS           *WebSocket
	Gateway      *Gateway
	Cache        *Cache
	HTTP         *HTTP
	Artwork      *Artwork
	Users        *Users
	Subsonic     *Subsonic
	Imports      []Import
	Exports      map[string]string // export name → signature
	Capabilities []string
	Logs         []LogLine
	Calls        []Result   // completed calls, nested ones before their caller
	HostCalls    []HostCall // every host function call the plugin made
	// Fault, when set, injects one fault at a numbered host call (faults.go).
	Fault *FaultPlan

	// Sim, when set (NewSim), runs the harness in concurrent mode.
	Sim *Sim

	rt   *Runtime
	main callStack // calls in flight outside concurrent-mode tasks
}

// callStack is the export calls in flight on one thread of execution (the
// test's, or one concurrent-mode task's), innermost last.
type callStack struct{ calls []*Result }

// stackOf returns the call stack of the task ctx runs in (the harness's own
// outside concurrent mode).
func (h *Harness) stackOf(ctx context.Context) *callStack {
	if t := taskOf(ctx); t != nil {
		return &t.stack
	}
	return &h.main
}

const notImplementedCode uint32 = 0xFFFFFFFE

// sdkLine matches go-sdk's own runtime messages (plugin.go, runtime.go), which
// reach the same logger as the plugin's log_* calls but are not the plugin's.
var sdkLine = regexp.MustCompile(`^(Calling function : |Initializing runtime for |Calling (_initialize|__wasm_call_ctors)$|` +
	`No runtime detected$|(WASI|Haskell) runtime detected$|(Reactor|Command) module detected$|\S+ function found with type )`)

// pumpLimit bounds one Pump, so a plugin that keeps re-arming zero-delay
// timers or ping-pongs with the gateway fails instead of hanging.
const pumpLimit = 10000

func envOr(v, env, def string) string {
	if v != "" {
		return v
	}
	if e := os.Getenv(env); e != "" {
		return e
	}
	return def
}

// Load builds the fakes over a compiled plugin (opts.Runtime, or one compiled
// now), runs opts.Setup and calls nd_on_init if exported. Any failure is fatal.
func Load(t testing.TB, opts Options) *Harness {
	t.Helper()
	rt := opts.Runtime
	if rt == nil {
		rt = Compile(t, opts)
		t.Cleanup(rt.Close)
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	}
	h := newHarness(t, rt.Manifest, opts)
	h.rt, h.Imports, h.Exports, h.Capabilities = rt, rt.Imports, rt.Exports, rt.Capabilities
	if opts.Setup != nil {
		opts.Setup(h)
	}
	if _, ok := h.Exports["nd_on_init"]; ok {
		h.Call("nd_on_init", struct{}{}, nil)
	}
	return h
}

func newHarness(t testing.TB, m *Manifest, opts Options) *Harness {
	clock := NewClock(opts.Start)
	ids := newIDSource(1)
	var wsHosts, httpHosts []string
	if m.Permissions.Websocket != nil {
		wsHosts = m.Permissions.Websocket.RequiredHosts
	}
	if m.Permissions.HTTP != nil {
		httpHosts = m.Permissions.HTTP.RequiredHosts
	}
	cfg := Config(opts.Config)
	if cfg == nil {
		cfg = Config{}
	}
	h := &Harness{
		T: t, Manifest: m, Config: cfg, Clock: clock,
		Sched:   NewScheduler(clock, ids),
		Gateway: NewGateway(t, clock),
		Cache:   NewCache(clock),
		HTTP:    &HTTP{clock: clock, hosts: httpHosts},
		Artwork: &Artwork{Base: "https://nd.example.org"},
		Users:   &Users{List: opts.Users},
	}
	h.Subsonic = &Subsonic{clock: clock, users: h.Users, Routes: map[string]SubsonicResponse{}}
	h.WS = NewWebSocket(clock, ids, wsHosts, h.Gateway)
	h.Gateway.ws = h.WS
	h.Gateway.via, h.HTTP.via = h.Current, h.Current
	callback := func(ctx context.Context, fn string, input any) error { return h.invoke(ctx, fn, input, nil).Err }
	h.Sched.call, h.WS.call = callback, callback
	clock.AfterFire = h.Pump
	return h
}

// Call invokes an export in a fresh instance, then pumps. out (a pointer) gets
// the decoded output; nil means "no output" (decoded into struct{} like
// Navidrome, so a non-object output is an error).
func (h *Harness) Call(fn string, input, out any) Result {
	r := h.CallNoPump(fn, input, out)
	h.Pump()
	return r
}

// CallNoPump is Call without the pump, to inspect state before the plugin
// sees any queued traffic.
func (h *Harness) CallNoPump(fn string, input, out any) Result {
	if len(h.main.calls) > 0 {
		h.T.Errorf("harness: top-level call %s made inside a plugin call", fn)
	}
	return h.invoke(context.Background(), fn, input, out)
}

// invoke is callPluginFunction: fresh instance, FunctionExists, JSON in,
// §2.6 interpretation of the result, instance closed afterwards.
func (h *Harness) invoke(ctx context.Context, fn string, input, out any) Result {
	r := Result{Func: fn, At: h.Clock.Now(), Nested: len(h.stackOf(ctx).calls) > 0}
	r.Err = h.run(ctx, &r, input, out)
	h.settleFault(&r)
	if r.Err != nil {
		h.T.Logf("call %s failed: %v", fn, r.Err)
	}
	h.Calls = append(h.Calls, r)
	return r
}

func (h *Harness) run(ctx context.Context, r *Result, input, out any) error {
	stack := h.stackOf(ctx)
	ctx = context.WithValue(ctx, harnessKey{}, h)
	var rnd io.Reader = rand.Reader
	if h.Sim != nil {
		rnd = h.Sim.randReader()
	}
	inst, err := h.rt.compiled.Instance(ctx, extism.PluginInstanceConfig{
		// Navidrome gives each instance the system wall clock (WithSysWalltime); here
		// it is the virtual clock, so time moves only when a test moves it.
		ModuleConfig: wazero.NewModuleConfig().WithWalltime(func() (int64, int32) {
			t := h.Clock.Now()
			return t.Unix(), int32(t.Nanosecond())
		}, sys.ClockResolution(time.Millisecond)).WithRandSource(rnd),
	})
	if err != nil {
		return fmt.Errorf("failed to create plugin: %w", err)
	}
	defer inst.Close(ctx)
	inst.Config = h.Config // the manifest config of this harness (Navidrome: of this load)
	inst.SetLogger(func(level extism.LogLevel, msg string) {
		if sdkLine.MatchString(msg) {
			return
		}
		h.Logs = append(h.Logs, LogLine{At: h.Clock.Now(), Level: level, Func: r.Func, Msg: msg})
	})
	if !inst.FunctionExists(r.Func) {
		return fmt.Errorf("function not found: %s", r.Func)
	}
	if raw, ok := input.(RawInput); ok {
		r.Input = raw
	} else if r.Input, err = json.Marshal(input); err != nil {
		return fmt.Errorf("failed to marshal input: %w", err)
	}
	stack.calls = append(stack.calls, r)
	start := time.Now()
	r.RC, r.Output, err = inst.CallWithContext(ctx, r.Func, r.Input)
	r.Wall = time.Since(start)
	r.Pages = memoryPages(inst)
	stack.calls = stack.calls[:len(stack.calls)-1]
	switch {
	case err != nil:
		// go-sdk reports an error_set as an error too; only a failure of
		// the wasm call itself (trap, timeout) is a trap.
		r.Trap = err.Error() != inst.GetError()
		return fmt.Errorf("plugin call failed: %w", err)
	case r.RC == notImplementedCode:
		return fmt.Errorf("function not implemented: %s", r.Func)
	case r.RC != 0:
		return fmt.Errorf("plugin call exited with code %d", r.RC)
	case len(r.Output) == 0:
		return nil
	case out == nil:
		out = &struct{}{}
	}
	return json.Unmarshal(r.Output, out)
}

// RawInput is passed to the export as is, without JSON encoding (fuzzing:
// bytes Navidrome would never send).
type RawInput []byte

// Current returns the innermost export call in flight (nil between calls); in
// concurrent mode, that of the task running now (exactly one runs at a time).
func (h *Harness) Current() *Result {
	stack := &h.main
	if h.Sim != nil && h.Sim.running != nil {
		stack = &h.Sim.running.stack
	}
	if len(stack.calls) == 0 {
		return nil
	}
	return stack.calls[len(stack.calls)-1]
}

// memoryPages reads the size of the plugin module's own linear memory (not the
// extism kernel's, which is what Plugin.Memory returns). go-sdk v1.7.1 wraps
// the wazero module in Plugin.Module() without exposing it, so the unexported
// field is read by reflection; 0 if the SDK's layout changed.
func memoryPages(inst *extism.Plugin) uint32 {
	f := reflect.ValueOf(inst.Module()).Elem().FieldByName("inner")
	if !f.IsValid() || f.Type() != reflect.TypeFor[api.Module]() {
		return 0
	}
	mod := *(*api.Module)(unsafe.Pointer(f.UnsafeAddr()))
	if mod == nil || mod.Memory() == nil {
		return 0
	}
	return mod.Memory().Size() / 65536
}

// Pump settles the system at the current instant: fires due timers (first)
// and delivers queued websocket events, one at a time, until neither is left.
func (h *Harness) Pump() {
	if len(h.main.calls) > 0 {
		h.T.Errorf("harness: pump requested inside a plugin call")
		return
	}
	if h.Sim != nil {
		h.T.Errorf("harness: sequential pump in concurrent mode (use Sim.Run)")
		return
	}
	for i := 0; h.Clock.RunDue() || h.WS.Deliver(context.Background()); i++ {
		if i == pumpLimit {
			h.T.Errorf("harness: pump did not settle after %d steps", pumpLimit)
			return
		}
	}
}

// DeliverOne delivers exactly one queued websocket event (no timers, no
// further pumping); false if nothing was queued.
func (h *Harness) DeliverOne() bool { return h.WS.Deliver(context.Background()) }

// Advance pumps, moves the clock by d firing due timers in order (each
// followed by a pump), then pumps at the new instant.
func (h *Harness) Advance(d time.Duration) {
	h.Pump()
	h.Clock.Advance(d)
	h.Pump()
}

// Failed returns the calls that ended in an error.
func (h *Harness) Failed() []Result {
	var out []Result
	for _, c := range h.Calls {
		if c.Err != nil {
			out = append(out, c)
		}
	}
	return out
}

// DumpTimeline writes every websocket event on every connection to the test
// log in the order they happened, connections numbered from 1.
func (h *Harness) DumpTimeline() {
	type row struct {
		n    int
		line string
	}
	var rows []row
	for i, c := range h.WS.Conns {
		h.T.Logf("conn #%d %s %s opened %s", i+1, c.ID, c.URL, c.Opened.Format("15:04:05.000"))
		for _, e := range c.Events {
			text := e.Text
			if len(text) > 240 {
				text = fmt.Sprintf("%s… (%d bytes)", text[:240], len(text))
			}
			rows = append(rows, row{e.N, fmt.Sprintf("%s #%d %s %d %s", e.At.Format("15:04:05.000"), i+1, e.Kind, e.Code, text)})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].n < rows[j].n })
	for _, r := range rows {
		h.T.Logf("%s", r.line)
	}
}

// DumpLogs writes the captured plugin log lines to the test log.
func (h *Harness) DumpLogs() {
	for _, l := range h.Logs {
		h.T.Logf("[%s %s %s] %s", l.At.Format("15:04:05"), l.Level, l.Func, l.Msg)
	}
}
