package harness

import (
	"slices"
	"strings"
	"time"

	extism "github.com/extism/go-sdk"
)

// FaultKind is what goes wrong at one host call (see Harness.Fault).
type FaultKind string

const (
	// FaultError: the service fails; Navidrome's binding answers
	// {"error":"harness: injected fault …"} and nothing is done (a send not
	// sent, a schedule not created, a cache entry not written).
	FaultError FaultKind = "error"
	// FaultLost: the service acts, but the plugin gets response handle 0, an
	// empty body — what Navidrome's generated bindings return when writing the
	// response into plugin memory fails. The only non-JSON answer the wire allows.
	FaultLost FaultKind = "lost"
	// FaultEmpty: a value-returning service answers an empty value (cache: the
	// entry is gone; artwork: ""; http: 200 with no headers and no body;
	// subsonicapi: no content type, no data).
	FaultEmpty FaultKind = "empty"
	// FaultGarbage: a value-returning service answers a garbage value (cache:
	// GarbageText; artwork: GarbageURL; http: 200, garbage body and headers;
	// subsonicapi: GarbageContentType and a garbage body).
	FaultGarbage FaultKind = "garbage"
	// FaultDrop: the server drops every open gateway socket (1006) just as
	// this host call is made; the call itself goes through.
	FaultDrop FaultKind = "drop"
)

// FaultKinds lists every kind, in matrix order.
var FaultKinds = []FaultKind{FaultError, FaultLost, FaultEmpty, FaultGarbage, FaultDrop}

// valueServices are the host functions whose answers carry a value
// FaultEmpty and FaultGarbage can replace.
var valueServices = []string{"cache_getstring", "http_send", "artwork_gettrackurl", "artwork_getalbumurl",
	"artwork_getartisturl", "artwork_getplaylisturl", "subsonicapi_callraw"}

// Applies reports whether kind can be injected at call c.
func (k FaultKind) Applies(c HostCall) bool {
	switch k {
	case FaultEmpty, FaultGarbage:
		return slices.Contains(valueServices, c.Name)
	case FaultDrop:
		return c.Open > 0
	case FaultError:
		// Navidrome's Config service has no error path (its methods return none).
		return !strings.HasPrefix(c.Name, "config_")
	}
	return true
}

// HostCall records one call the plugin made to a Navidrome host function.
type HostCall struct {
	N       int // 1-based, in the order of all host calls of the harness
	Name    string
	Export  string // export call in flight
	At      time.Time
	Open    int // gateway sockets open when it was made
	Request []byte
	Fault   FaultKind
}

// FaultPlan injects one fault at host call number At (1-based).
type FaultPlan struct {
	At   int
	Kind FaultKind

	Hit      *HostCall // the faulted call, once made
	Call     *Result   // the export call it was made in (completed copy)
	Reported bool      // that call logged WARN/ERROR after the fault, or returned an error
	inFlight *Result
	logMark  int
}

// hostCall records a host call and returns the fault to apply to it.
func (h *Harness) hostCall(name string, req []byte) FaultKind {
	c := HostCall{N: len(h.HostCalls) + 1, Name: name, At: h.Clock.Now(), Open: len(h.WS.Active()), Request: req}
	if cur := h.Current(); cur != nil {
		c.Export = cur.Func
	}
	if f := h.Fault; f != nil && f.Hit == nil && c.N == f.At && f.Kind.Applies(c) {
		c.Fault = f.Kind
		f.inFlight, f.logMark = h.Current(), len(h.Logs)
	}
	h.HostCalls = append(h.HostCalls, c)
	if c.Fault != "" {
		h.Fault.Hit = &c
	}
	return c.Fault
}

func (h *Harness) hostCallN() int { return len(h.HostCalls) }

// settleFault completes the plan once the export call the fault hit returns.
func (h *Harness) settleFault(r *Result) {
	f := h.Fault
	if f == nil || f.inFlight != r {
		return
	}
	f.inFlight = nil
	done := *r
	f.Call = &done
	f.Reported = r.Err != nil
	for _, l := range h.Logs[f.logMark:] {
		f.Reported = f.Reported || l.Level >= extism.LogLevelWarn
	}
}
