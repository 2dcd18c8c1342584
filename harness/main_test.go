package harness

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
)

// One compilation of the plugin for the whole test binary: config is set per
// instance (Harness.run), fakes are found through the call's context, so every
// test, fuzz iteration and fault-injection run shares it, in parallel too.
var shared struct {
	sync.Mutex
	rt     *Runtime
	failed bool
}

func sharedRuntime(t testing.TB) *Runtime {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.rt == nil && !shared.failed {
		func() {
			defer func() { shared.failed = shared.rt == nil }()
			shared.rt = Compile(t, Options{})
		}()
	}
	if shared.rt == nil {
		t.Fatal("plugin not compiled (see the first test's failure)")
	}
	return shared.rt
}

// lockedScan is a LeakScan shared by parallel tests.
type lockedScan struct {
	sync.Mutex
	LeakScan
}

// report collects lines printed once after all tests (go test -v, or on failure).
var report struct {
	sync.Mutex
	lines []string
}

func reportf(format string, args ...any) {
	report.Lock()
	defer report.Unlock()
	report.lines = append(report.lines, fmt.Sprintf(format, args...))
}

func TestMain(m *testing.M) {
	// Every plugin call instantiates the module (a fresh ~1 MiB linear
	// memory): with the default GOGC the collector runs constantly; 400
	// halves the suite's run time. GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	code := m.Run()
	if shared.rt != nil {
		shared.rt.Close()
	}
	if scenarioScans.Host > 0 {
		reportf("scenario tests: leak scan %s", scenarioScans.LeakScan)
	}
	if fuzzScans.iterations > 0 {
		reportf("fuzz: %d iterations checked; leak scan %s", fuzzScans.iterations, fuzzScans.LeakScan)
	}
	if len(report.lines) > 0 {
		sort.Strings(report.lines)
		fmt.Printf("harness summary:\n  %s\n", strings.Join(report.lines, "\n  "))
	}
	os.Exit(code)
}

// caseTB runs a harness without failing the test: it collects errors, turns
// Fatal into a panic caught by runCase, and drops log output.
type caseTB struct {
	testing.TB
	errs []string
}

type fatalCase struct{ msg string }

func (c *caseTB) Errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}
func (c *caseTB) Error(args ...any)                 { c.errs = append(c.errs, fmt.Sprint(args...)) }
func (c *caseTB) Fatalf(format string, args ...any) { panic(fatalCase{fmt.Sprintf(format, args...)}) }
func (c *caseTB) Fatal(args ...any)                 { panic(fatalCase{fmt.Sprint(args...)}) }
func (c *caseTB) FailNow()                          { panic(fatalCase{"FailNow"}) }
func (c *caseTB) Failed() bool                      { return len(c.errs) > 0 }
func (c *caseTB) Logf(string, ...any)               {}
func (c *caseTB) Log(...any)                        {}
func (c *caseTB) Helper()                           {}

// runCase runs f, converting a Fatal or a Go panic into an error of ctb.
func runCase(ctb *caseTB, f func()) {
	defer func() {
		switch p := recover().(type) {
		case nil:
		case fatalCase:
			ctb.errs = append(ctb.errs, "fatal: "+p.msg)
		default:
			buf := make([]byte, 8<<10)
			buf = buf[:runtime.Stack(buf, false)]
			ctb.errs = append(ctb.errs, fmt.Sprintf("Go panic: %v\n%s", p, buf))
		}
	}()
	f()
}
