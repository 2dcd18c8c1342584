package main

import (
	"fmt"
	"os"
	"testing"
)

// fatal is what tb.Fatalf panics with; runOne recovers it into an error.
type fatal struct{ msg string }

// tb satisfies testing.TB for harness.Load outside `go test`: the harness only
// logs, reports errors and registers cleanups. Methods it does not override
// would hit the nil embedded TB and panic, which runOne reports as a failure.
type tb struct {
	testing.TB
	name     string
	verbose  bool
	errors   []string
	cleanups []func()
}

func newTB(name string, verbose bool) *tb { return &tb{name: name, verbose: verbose} }

func (t *tb) Helper()      {}
func (t *tb) Name() string { return t.name }
func (t *tb) Failed() bool { return len(t.errors) > 0 }
func (t *tb) Log(a ...any) { t.Logf("%s", fmt.Sprint(a...)) }
func (t *tb) Logf(f string, a ...any) {
	if t.verbose {
		fmt.Fprintf(os.Stderr, "    [%s] %s\n", t.name, fmt.Sprintf(f, a...))
	}
}
func (t *tb) Error(a ...any)            { t.Errorf("%s", fmt.Sprint(a...)) }
func (t *tb) Errorf(f string, a ...any) { t.errors = append(t.errors, fmt.Sprintf(f, a...)) }
func (t *tb) Fatal(a ...any)            { t.Fatalf("%s", fmt.Sprint(a...)) }
func (t *tb) Fatalf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (t *tb) FailNow()                  { panic(fatal{"FailNow"}) }
func (t *tb) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }

// close runs the cleanups in reverse order, as testing does.
func (t *tb) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}
