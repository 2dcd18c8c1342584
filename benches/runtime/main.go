// Command runtime measures plugin modules in Navidrome's runtime as the harness
// reproduces it (extism go-sdk v1.7.1 on wazero v1.12.0, Navidrome's host
// functions over in-process fakes, a fresh instance per call): compile time,
// instantiation, and instantiate+call for the exports Navidrome calls most,
// with Go-side allocations, wasm memory after the call and, from a counting
// twin of each module, the host calls each call makes. Everything is
// deterministic (virtual clock, fakes, no network) and bounded by -scale.
//
//	runtime -modules modules.json -manifest ../../manifest.json -out results.json
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"runtime"
	"slices"
	"time"
	"unsafe"

	extism "github.com/extism/go-sdk"
	"github.com/navidrome/navidrome/plugins/capabilities"
	"github.com/tetratelabs/wazero"

	"ndpresence/harness"
)

// logLevel is Navidrome's default (info): the plugin skips formatting debug lines.
const logLevel = extism.LogLevelInfo

// Module is one wasm file to measure (from -modules).
type Module struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Kind  string `json:"kind"` // ours | step | floor | baseline
	Wasm  string `json:"wasm"`
	Twin  string `json:"twin"` // counting twin (optional)
}

// Stat summarises samples in nanoseconds.
type Stat struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P10    float64 `json:"p10"`
	P25    float64 `json:"p25"`
	P75    float64 `json:"p75"`
	P90    float64 `json:"p90"`
	Min    float64 `json:"min"`
}

func stat(ns []float64) Stat {
	if len(ns) == 0 {
		return Stat{}
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	q := func(p float64) float64 { return s[int(math.Round(p*float64(len(s)-1)))] }
	return Stat{N: len(s), Median: q(0.5), P10: q(0.1), P25: q(0.25), P75: q(0.75), P90: q(0.9), Min: s[0]}
}

// ScenResult is one export in one steady state.
type ScenResult struct {
	Label       string           `json:"label"`
	Export      string           `json:"export"`
	InputBytes  int              `json:"input_bytes"`
	Message     int              `json:"message_bytes,omitempty"` // websocket frame inside the input
	Total       Stat             `json:"total"`                   // instantiate + call + close, as Navidrome's callPluginFunction
	Call        Stat             `json:"call"`                    // the export alone (CallWithContext), host work included
	AllocBytes  float64          `json:"alloc_bytes"`
	Allocs      float64          `json:"allocs"`
	Pages       uint32           `json:"pages"`
	Ops         []int            `json:"ops"` // gateway ops sent by one call
	Frame       string           `json:"frame,omitempty"`
	Host        map[string]int64 `json:"host,omitempty"` // import → calls per call (counting twin)
	KernelCalls int64            `json:"kernel_calls"`
	UserCalls   int64            `json:"user_calls"`
	BytesIn     int64            `json:"bytes_in"`  // copied out of kernel memory (input, responses)
	BytesOut    int64            `json:"bytes_out"` // copied into kernel memory (requests, output)
	Counted     bool             `json:"counted"`
	Recorded    int              `json:"navidrome_calls_recorded"` // Navidrome host calls the harness recorded (cross-check of UserCalls)
}

// ModResult is everything measured for one module.
type ModResult struct {
	Module
	Bytes        int                    `json:"bytes"`
	InitialPages uint32                 `json:"initial_pages"`
	Compile      Stat                   `json:"compile"`
	Load         Stat                   `json:"load"` // harness.Compile: extism kernel + module, import check, probe instance
	Instantiate  Stat                   `json:"instantiate"`
	Scenarios    map[string]*ScenResult `json:"scenarios"`
	Errors       []string               `json:"errors,omitempty"`

	wasm  []byte
	loads []float64
}

var (
	flagModules  = flag.String("modules", "modules.json", "JSON list of modules")
	flagManifest = flag.String("manifest", "../../manifest.json", "plugin manifest")
	flagOut      = flag.String("out", "results.json", "where to write the results")
	flagScale    = flag.Float64("scale", 1, "iteration multiplier (0.1 for a smoke run)")
	flagVerbose  = flag.Bool("v", false, "show harness logs")
)

func iters(n int) int { return max(3, int(float64(n)**flagScale)) }

func main() {
	flag.Parse()
	var mods []Module
	b, err := os.ReadFile(*flagModules)
	if err == nil {
		err = json.Unmarshal(b, &mods)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "modules: %v\n", err)
		os.Exit(2)
	}
	// The plugin's own setup discovers the ids and the READY the others are fed.
	slices.SortStableFunc(mods, func(a, b Module) int { return boolInt(a.Kind != "ours") - boolInt(b.Kind != "ours") })
	var all []*ModResult
	for _, m := range mods {
		r := &ModResult{Module: m, Scenarios: map[string]*ScenResult{}}
		if b, err := os.ReadFile(m.Wasm); err != nil {
			r.Errors = append(r.Errors, err.Error())
		} else {
			r.wasm, r.Bytes = b, len(b)
		}
		all = append(all, r)
	}
	step := func(what string, f func()) {
		start := time.Now()
		f()
		fmt.Fprintf(os.Stderr, "  %-40s %6.1fs\n", what, time.Since(start).Seconds())
	}
	step("compile", func() { compileAll(all) })
	step("instantiate", func() { instantiateAll(all) })
	for _, sc := range scenarios {
		step(sc.label, func() { timeScenario(all, sc) })
	}
	step("host calls (counting twins)", func() {
		for _, r := range all {
			if r.Twin == "" || r.wasm == nil {
				continue
			}
			for _, k := range scenarioKeys(r.Kind) {
				countTwin(r, scenarioByKey(k))
			}
		}
	})
	failed := false
	for _, r := range all {
		r.Load = stat(r.loads)
		if rt := runtimes[r.Wasm]; rt != nil {
			rt.Close()
		}
		if rt := runtimes[r.Twin]; rt != nil {
			rt.Close()
		}
		for _, e := range r.Errors {
			fmt.Fprintf(os.Stderr, "  error: %s: %s\n", r.Name, e)
			failed = true
		}
	}
	b, _ = json.MarshalIndent(map[string]any{"go": runtime.Version(), "goarch": runtime.GOARCH, "scale": *flagScale, "modules": all}, "", " ")
	if err := os.WriteFile(*flagOut, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scenarioKeys are the scenarios each kind of module runs.
func scenarioKeys(kind string) []string {
	switch kind {
	case "ours", "floor":
		var all []string
		for _, s := range scenarios {
			all = append(all, s.key)
		}
		return all
	default: // step, baseline
		return []string{"empty", "playback_report"}
	}
}

func runs(r *ModResult, key string) bool {
	return r.wasm != nil && slices.Contains(scenarioKeys(r.Kind), key)
}

// subject is one module loaded in its own harness, ready for one scenario.
type subject struct {
	r      *ModResult
	t      *tb
	h      *harness.Harness
	snap   snapshot
	res    *ScenResult
	failed bool
	total  []float64
	wall   []float64
}

func (s *subject) fail(err error) {
	s.r.Errors = append(s.r.Errors, err.Error())
	s.failed = true
}

// open loads wasm for r in a fresh harness and, for a scenario, brings it to the
// scenario's state; Fatalf panics of the harness become errors.
func open(r *ModResult, wasm string, sc *scenario) (s *subject, err error) {
	name := r.Name
	if sc != nil {
		name += " " + sc.key
	}
	t := newTB(name, *flagVerbose)
	defer func() {
		if p := recover(); p != nil {
			t.close()
			s, err = nil, fmt.Errorf("%s: %v", name, p)
		}
	}()
	opts := options(wasm, *flagManifest)
	if opts.Runtime, err = runtimeFor(r, wasm); err != nil {
		t.close()
		return nil, err
	}
	h := harness.Load(t, opts)
	if sc != nil {
		switch r.Kind {
		case "ours", "step":
			err = prepare(h, sc.state)
		case "baseline":
			if sc.wantOp == 3 {
				err = connectBaseline(h)
			}
		}
	}
	if err == nil && t.Failed() {
		err = fmt.Errorf("harness: %v", t.errors)
	}
	if err != nil {
		t.close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &subject{r: r, t: t, h: h, snap: takeSnapshot(h)}, nil
}

// rounds runs one(s) n times for every subject, interleaved (the order rotates each
// round), so that load from elsewhere on the machine hits every module alike.
func rounds(subs []*subject, n int, one func(s *subject) error) {
	for i := 0; i < n; i++ {
		for j := range subs {
			s := subs[(i+j)%len(subs)]
			if s.failed {
				continue
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						s.fail(fmt.Errorf("panic: %v", p))
					}
				}()
				if err := one(s); err != nil {
					s.fail(err)
				}
			}()
		}
	}
}

// compileAll times wazero's compilation of each module alone (a new runtime each
// time, no compilation cache), interleaved, and reads its initial memory.
func compileAll(all []*ModResult) {
	ctx := context.Background()
	samples := map[*ModResult][]float64{}
	n := iters(10)
	for i := 0; i < n+2; i++ {
		for j := range all {
			r := all[(i+j)%len(all)]
			if r.wasm == nil {
				continue
			}
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
			start := time.Now()
			cm, err := rt.CompileModule(ctx, r.wasm)
			d := time.Since(start)
			if err != nil {
				r.Errors, r.wasm = append(r.Errors, "compile: "+err.Error()), nil
			} else {
				for _, mem := range cm.ExportedMemories() {
					r.InitialPages = mem.Min()
				}
			}
			rt.Close(ctx)
			if i >= 2 {
				samples[r] = append(samples[r], float64(d))
			}
		}
	}
	for r, s := range samples {
		r.Compile = stat(s)
	}
	// The harness's whole compile (Navidrome's load): extism's kernel and the
	// module, the import check and the probe instance; the last one is kept.
	for i := 0; i < 3; i++ {
		for j := range all {
			r := all[(i+j)%len(all)]
			if r.wasm == nil {
				continue
			}
			rt, d, err := compileRuntime(r.Wasm)
			if err != nil {
				r.Errors, r.wasm = append(r.Errors, err.Error()), nil
				continue
			}
			if old := runtimes[r.Wasm]; old != nil {
				old.Close()
			}
			runtimes[r.Wasm] = rt
			r.loads = append(r.loads, float64(d))
		}
	}
}

// instantiateAll times compiled.Instance + Close with the module config Navidrome
// uses per call (plugins/manager_plugin.go), interleaved across modules.
func instantiateAll(all []*ModResult) {
	var subs []*subject
	for _, r := range all {
		if r.wasm == nil {
			continue
		}
		s, err := open(r, r.Wasm, nil)
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
			continue
		}
		if compiledOf(runtimes[r.Wasm]) == nil {
			r.Errors = append(r.Errors, "instantiate: the harness no longer holds its compiled plugin in `compiled`")
			s.t.close()
			continue
		}
		subs = append(subs, s)
	}
	ctx := context.Background()
	one := func(s *subject) error {
		start := time.Now()
		inst, err := compiledOf(runtimes[s.r.Wasm]).Instance(ctx, extism.PluginInstanceConfig{
			ModuleConfig: wazero.NewModuleConfig().WithSysWalltime().WithRandSource(rand.Reader)})
		if err != nil {
			return fmt.Errorf("instance: %w", err)
		}
		inst.Close(ctx)
		s.total = append(s.total, float64(time.Since(start)))
		return nil
	}
	n := iters(400)
	rounds(subs, max(3, n/20), one)
	for _, s := range subs {
		s.total = s.total[:0]
	}
	runtime.GC()
	rounds(subs, n, one)
	for _, s := range subs {
		s.r.Instantiate = stat(s.total)
		s.t.close()
	}
}

// call restores the state, then makes one call exactly as Navidrome does (fresh
// instance, JSON input, §2.6 result rules); the harness's per-call records are
// dropped so that long runs do not accumulate 2 MiB inputs.
func call(h *harness.Harness, snap snapshot, export string, input any) (harness.Result, time.Duration) {
	snap.restore(h)
	h.Calls, h.Logs, h.HostCalls = h.Calls[:0], h.Logs[:0], h.HostCalls[:0]
	start := time.Now()
	var output any // whatever JSON the export answers (is_authorized: a bool)
	r := h.CallNoPump(export, input, &output)
	return r, time.Since(start)
}

// check verifies that a call succeeded and sent what the scenario expects, and the
// same ops as the first call (a steady state).
func check(s *subject, sc scenario, r harness.Result, before int) error {
	if r.Err != nil {
		return r.Err
	}
	var ops []int
	frames := s.h.Gateway.Frames
	for _, f := range frames[before:] {
		ops = append(ops, f.Op)
	}
	if s.res.Ops == nil {
		s.res.Ops = append([]int{}, ops...)
		s.res.Recorded = len(s.h.HostCalls)
		if len(ops) > 0 {
			s.res.Frame = frames[len(frames)-1].Raw
		}
	} else if !slices.Equal(ops, s.res.Ops) {
		return fmt.Errorf("%s: a call sent ops %v, the first sent %v: the state is not steady", sc.key, ops, s.res.Ops)
	}
	kind := s.r.Kind
	if kind != "floor" && sc.wantOp >= 0 && !slices.Contains(ops, sc.wantOp) {
		return fmt.Errorf("%s: want op %d sent, got %v", sc.key, sc.wantOp, ops)
	}
	if (kind == "ours" || kind == "step") && sc.wantOp < 0 && len(ops) > 0 {
		return fmt.Errorf("%s: want no frame, got ops %v", sc.key, ops)
	}
	if s.t.Failed() {
		return fmt.Errorf("%s: harness: %v", sc.key, s.t.errors)
	}
	return nil
}

func timeScenario(all []*ModResult, sc scenario) {
	var subs []*subject
	for _, r := range all {
		if !runs(r, sc.key) {
			continue
		}
		s, err := open(r, r.Wasm, &sc)
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
			continue
		}
		s.res = &ScenResult{Label: sc.label, Export: sc.export}
		r.Scenarios[sc.key] = s.res
		subs = append(subs, s)
	}
	input := sc.input() // after the plugin's setup: it may depend on what it found
	b, _ := json.Marshal(input)
	for _, s := range subs {
		s.res.InputBytes = len(b)
		if m, ok := input.(capabilities.OnTextMessageRequest); ok {
			s.res.Message = len(m.Message)
		}
	}
	timed := true
	one := func(s *subject) error {
		before := len(s.h.Gateway.Frames)
		r, d := call(s.h, s.snap, sc.export, input)
		if err := check(s, sc, r, before); err != nil {
			return err
		}
		if timed {
			s.total, s.wall = append(s.total, float64(d)), append(s.wall, float64(r.Wall))
			s.res.Pages = max(s.res.Pages, r.Pages)
		}
		return nil
	}
	n := iters(sc.iters)
	timed = false
	rounds(subs, max(3, n/20), one)
	timed = true
	runtime.GC()
	rounds(subs, n, one)
	// Go-side allocations of one call, apart from the timed rounds.
	k := max(3, n/10)
	for _, s := range subs {
		if s.failed {
			s.t.close()
			continue
		}
		s.res.Total, s.res.Call = stat(s.total), stat(s.wall)
		var a, z runtime.MemStats
		for i := 0; i < k; i++ {
			s.snap.restore(s.h)
			s.h.Calls, s.h.Logs, s.h.HostCalls = s.h.Calls[:0], s.h.Logs[:0], s.h.HostCalls[:0]
			runtime.ReadMemStats(&a)
			s.h.CallNoPump(sc.export, input, nil)
			runtime.ReadMemStats(&z)
			s.res.AllocBytes += float64(z.TotalAlloc-a.TotalAlloc) / float64(k)
			s.res.Allocs += float64(z.Mallocs-a.Mallocs) / float64(k)
		}
		s.t.close()
	}
}

// countTwin runs the scenario once more on the module's counting twin.
func countTwin(r *ModResult, sc scenario) {
	res := r.Scenarios[sc.key]
	if res == nil {
		return
	}
	s, err := open(r, r.Twin, &sc)
	if err != nil {
		r.Errors = append(r.Errors, "counting twin: "+err.Error())
		return
	}
	defer s.t.close()
	if err := countScenario(s.h, r.Twin, sc, res); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("counting twin %s: %v", sc.key, err))
	}
}

// runtimes are the harness's compiled plugins, one per wasm file, shared by
// every harness made for it (as Navidrome compiles once per load).
var (
	runtimes  = map[string]*harness.Runtime{}
	runtimeTB = newTB("compile", false)
)

// compileRuntime compiles wasm the way the harness does for Navidrome's loader.
func compileRuntime(wasm string) (rt *harness.Runtime, d time.Duration, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("compile %s: %v", wasm, p)
		}
	}()
	start := time.Now()
	rt = harness.Compile(runtimeTB, options(wasm, *flagManifest))
	return rt, time.Since(start), nil
}

func runtimeFor(r *ModResult, wasm string) (*harness.Runtime, error) {
	if rt := runtimes[wasm]; rt != nil {
		return rt, nil
	}
	rt, d, err := compileRuntime(wasm)
	if err != nil {
		return nil, err
	}
	if wasm == r.Wasm {
		r.loads = append(r.loads, float64(d))
	}
	runtimes[wasm] = rt
	return rt, nil
}

// compiledOf reaches the harness runtime's compiled plugin (unexported) to time
// instantiation alone; nil if the harness's layout changed.
func compiledOf(rt *harness.Runtime) *extism.CompiledPlugin {
	if rt == nil {
		return nil
	}
	f := reflect.ValueOf(rt).Elem().FieldByName("compiled")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*extism.CompiledPlugin]() {
		return nil
	}
	return *(**extism.CompiledPlugin)(unsafe.Pointer(f.UnsafeAddr()))
}
