package harness

import (
	"context"
	"fmt"
	"sort"
	"strings"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Import is one function the wasm imports, with the signature it declares and
// the one the host provides ("" when nothing provides it).
type Import struct {
	Module, Name string
	Sig          string
	Provided     string
}

func (i Import) String() string { return i.Module + "." + i.Name + " " + i.Sig }

// kernelSigs is the extism:host/env module built by go-sdk v1.7.1
// (instantiateEnvModule in host.go).
var kernelSigs = map[string]string{
	"alloc": "(i64)->(i64)", "free": "(i64)->()", "length": "(i64)->(i64)", "length_unsafe": "(i64)->(i64)",
	"load_u8": "(i64)->(i32)", "load_u64": "(i64)->(i64)", "store_u8": "(i64,i32)->()", "store_u64": "(i64,i64)->()",
	"input_length": "()->(i64)", "input_offset": "()->(i64)", "input_load_u8": "(i64)->(i32)", "input_load_u64": "(i64)->(i64)",
	"input_set": "(i64,i64)->()", "output_set": "(i64,i64)->()", "output_length": "()->(i64)", "output_offset": "()->(i64)",
	"error_set": "(i64)->()", "error_get": "()->(i64)", "reset": "()->()", "memory_bytes": "()->(i64)",
	"config_get": "(i64)->(i64)", "var_get": "(i64)->(i64)", "var_set": "(i64,i64)->()",
	"http_request": "(i64,i64)->(i64)", "http_status_code": "()->(i32)", "http_headers": "()->(i64)",
	"get_log_level": "()->(i32)", "log_trace": "(i64)->()", "log_debug": "(i64)->()", "log_info": "(i64)->()",
	"log_warn": "(i64)->()", "log_error": "(i64)->()",
}

func sig(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ",")
	}
	return "(" + names(params) + ")->(" + names(results) + ")"
}

// checkImports compiles the wasm in a throwaway runtime and matches every
// import against what Navidrome's runtime would provide: the extism kernel,
// WASI preview1 and the granted extism:host/user functions. Instantiation
// fails on any mismatch, so a mismatch is a load error. It also returns the
// exported function signatures.
func checkImports(ctx context.Context, wasm []byte, user []extism.HostFunction) ([]Import, map[string]string, error) {
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		return nil, nil, fmt.Errorf("compiling plugin: %w", err)
	}
	provided := map[string]map[string]string{"extism:host/env": kernelSigs, "extism:host/user": {}, "wasi_snapshot_preview1": {}}
	for _, f := range user {
		provided[f.Namespace][f.Name] = sig(f.Params, f.Returns)
	}
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	for name, d := range r.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		provided[wasi_snapshot_preview1.ModuleName][name] = sig(d.ParamTypes(), d.ResultTypes())
	}

	var imports []Import
	var bad []string
	for _, d := range cm.ImportedFunctions() {
		mod, name, _ := d.Import()
		im := Import{Module: mod, Name: name, Sig: sig(d.ParamTypes(), d.ResultTypes()), Provided: provided[mod][name]}
		imports = append(imports, im)
		if im.Provided != im.Sig {
			bad = append(bad, fmt.Sprintf("%s.%s %s (host provides %q)", mod, name, im.Sig, im.Provided))
		}
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		bad = append(bad, fmt.Sprintf("memory %s.%s (nothing exports a memory)", mod, name))
	}
	exports := map[string]string{}
	for name, d := range cm.ExportedFunctions() {
		exports[name] = sig(d.ParamTypes(), d.ResultTypes())
	}
	sort.Slice(imports, func(i, j int) bool { return imports[i].String() < imports[j].String() })
	if len(bad) > 0 {
		return imports, exports, fmt.Errorf("unsatisfied imports (instantiation would fail): %s", strings.Join(bad, "; "))
	}
	return imports, exports, nil
}
