package harness

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	extism "github.com/extism/go-sdk"
	"github.com/navidrome/navidrome/plugins/host"
	"github.com/tetratelabs/wazero"
)

// Runtime is one plugin compiled once, as Navidrome compiles a plugin once per
// load and creates a fresh instance per call. The host functions are
// Navidrome's own Register* bindings over a switchboard that forwards each
// call to the fakes of the Harness making it (carried in the call's context),
// so any number of harnesses — one per test, fuzz iteration or fault-injection
// run, in parallel too — share one compilation. Every host function is also
// wrapped to record the call (HostCalls) and to inject the Harness's fault.
type Runtime struct {
	Manifest     *Manifest
	Imports      []Import
	Exports      map[string]string // export name → signature
	Capabilities []string
	compiled     *extism.CompiledPlugin
}

type harnessKey struct{}
type faultKey struct{}

// harnessOf returns the harness whose call is in flight on ctx.
func harnessOf(ctx context.Context) *Harness {
	h, ok := ctx.Value(harnessKey{}).(*Harness)
	if !ok {
		panic("harness: host function called outside a harness call")
	}
	return h
}

// faultOf returns the service-level fault to apply to the host call on ctx.
func faultOf(ctx context.Context) FaultKind {
	k, _ := ctx.Value(faultKey{}).(FaultKind)
	return k
}

// Compile reads the wasm and manifest (opts.WasmPath/ManifestPath, their
// environment variables, or the defaults), checks the imports against what
// Navidrome provides, compiles the plugin and validates its capabilities like
// Navidrome. The caller closes it. Any failure is fatal.
func Compile(t testing.TB, opts Options) *Runtime {
	t.Helper()
	wasmPath := envOr(opts.WasmPath, "PLUGIN_WASM", "../dist/plugin.wasm")
	manifestPath := envOr(opts.ManifestPath, "PLUGIN_MANIFEST", "../manifest.json")
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatalf("plugin wasm not available: %v (build it with ./build.sh or set PLUGIN_WASM)", err)
	}
	m, err := LoadManifest(manifestPath)
	if err != nil {
		t.Fatalf("manifest %s: %v (set PLUGIN_MANIFEST to override)", manifestPath, err)
	}
	rt := &Runtime{Manifest: m}
	hostFns, err := hostFunctions(m.Permissions)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	rt.Imports, rt.Exports, err = checkImports(context.Background(), wasm, hostFns)
	var list []string
	for _, im := range rt.Imports {
		list = append(list, im.String())
	}
	t.Logf("plugin imports (%d):\n  %s", len(list), strings.Join(list, "\n  "))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	for i, f := range hostFns {
		hostFns[i] = wrapHostFunction(f)
	}

	level := opts.LogLevel
	if level == 0 {
		level = extism.LogLevelTrace
	}
	extism.SetLogLevel(level) // process-wide in go-sdk, as in Navidrome
	// Instance() logs runtime detection through the std logger before a
	// per-instance logger can be set; keep that out of the test output.
	log.SetOutput(io.Discard)
	em := extism.Manifest{
		Wasm:    []extism.Wasm{extism.WasmData{Data: wasm, Name: "main"}},
		Timeout: 30000,
	}
	if p := m.Permissions.HTTP; p != nil && len(p.RequiredHosts) > 0 {
		em.AllowedHosts = p.RequiredHosts
	}
	ctx := context.Background()
	rt.compiled, err = extism.NewCompiledPlugin(ctx, em, extism.PluginConfig{
		EnableWasi:                true,
		EnableHttpResponseHeaders: true,
		RuntimeConfig:             wazero.NewRuntimeConfig().WithCloseOnContextDone(true),
	}, hostFns)
	if err != nil {
		t.Fatalf("compiling plugin: %v", err)
	}
	probe, err := rt.compiled.Instance(ctx, extism.PluginInstanceConfig{})
	if err != nil {
		rt.Close()
		t.Fatalf("creating instance: %v", err)
	}
	rt.Capabilities = detectCapabilities(probe.FunctionExists)
	probe.Close(ctx)
	if err := validateCapabilities(m.Permissions, rt.Capabilities); err != nil {
		rt.Close()
		t.Fatalf("manifest validation: %v", err)
	}
	return rt
}

// Close releases the compiled plugin.
func (rt *Runtime) Close() { rt.compiled.Close(context.Background()) }

// hostFunctions registers Navidrome's real bindings over the switchboard, only
// for the permissions the manifest declares (hostServices in
// manager_loader.go); Config always.
func hostFunctions(p *Permissions) ([]extism.HostFunction, error) {
	var sb switchboard
	fns := host.RegisterConfigHostFunctions(configBoard{})
	add := func(granted bool, f []extism.HostFunction) {
		if granted {
			fns = append(fns, f...)
		}
	}
	add(p.Scheduler != nil, host.RegisterSchedulerHostFunctions(sb))
	add(p.Websocket != nil, host.RegisterWebSocketHostFunctions(sb))
	add(p.Artwork != nil, host.RegisterArtworkHostFunctions(sb))
	add(p.Cache != nil, host.RegisterCacheHostFunctions(sb))
	add(p.Users != nil, host.RegisterUsersHostFunctions(sb))
	add(p.HTTP != nil, host.RegisterHTTPHostFunctions(sb))
	add(p.Subsonicapi != nil, host.RegisterSubsonicAPIHostFunctions(sb))
	for name, granted := range map[string]bool{"library": p.Library != nil,
		"kvstore": p.Kvstore != nil, "taskqueue": p.Taskqueue != nil, "matcher": p.Matcher != nil} {
		if granted {
			return nil, fmt.Errorf("permission %q has no fake in this harness", name)
		}
	}
	return fns, nil
}

// stackCallback reads the callback of a HostFunction (unexported in go-sdk
// v1.7.1) so it can be wrapped; it fails loudly if the SDK's layout changed.
func stackCallback(f *extism.HostFunction) extism.HostFunctionStackCallback {
	v := reflect.ValueOf(f).Elem().FieldByName("stackCallback")
	if !v.IsValid() || v.Type() != reflect.TypeFor[extism.HostFunctionStackCallback]() {
		panic("harness: extism.HostFunction has no stackCallback field (go-sdk layout changed)")
	}
	return *(*extism.HostFunctionStackCallback)(unsafe.Pointer(v.UnsafeAddr()))
}

// wrapHostFunction records each call in the harness making it and applies the
// harness's fault when its number comes up: FaultLost runs the real binding
// and then hands the plugin a 0 response handle (what Navidrome's generated
// code returns when writing the response into plugin memory fails), FaultDrop
// queues the server dropping every open socket first; the service-level kinds
// reach the switchboard through the context.
func wrapHostFunction(f extism.HostFunction) extism.HostFunction {
	inner := stackCallback(&f)
	name := f.Name
	w := extism.NewHostFunctionWithStack(name, func(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
		h := harnessOf(ctx)
		if t := taskOf(ctx); t != nil {
			t.hostYield(name) // concurrent mode: every host call is a switch point
		}
		req, _ := p.ReadBytes(stack[0])
		kind := h.hostCall(name, req)
		if kind == FaultDrop {
			for _, c := range h.WS.Active() {
				h.WS.ServerDrop(c)
			}
		}
		inner(context.WithValue(ctx, faultKey{}, kind), p, stack)
		if kind == FaultLost {
			stack[0] = 0
		}
	}, f.Params, f.Returns)
	w.SetNamespace(f.Namespace)
	return w
}
