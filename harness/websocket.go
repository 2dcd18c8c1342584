package harness

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/navidrome/navidrome/plugins/capabilities"
	"github.com/navidrome/navidrome/plugins/host"
)

// Event is one entry of a connection's timeline.
type Event struct {
	At   time.Time
	Kind string // "send" (plugin -> server), "recv" (delivered to the plugin), "close", "error"
	Text string // frame text, or the close reason / error text
	Code int32  // close code for "close"
	N    int    // position in the order of all events on all connections
}

func (e Event) String() string {
	if e.Code != 0 {
		return fmt.Sprintf("%s %s %d %s", e.At.Format(time.TimeOnly), e.Kind, e.Code, e.Text)
	}
	return fmt.Sprintf("%s %s %s", e.At.Format(time.TimeOnly), e.Kind, e.Text)
}

// Conn is one websocket connection the plugin opened (kept after it ends).
type Conn struct {
	ID       string
	URL      string
	Headers  map[string]string
	Opened   time.Time
	Events   []Event
	Open     bool   // registered in the host's connection table (sendable/closable by id)
	Ended    bool   // finished: nothing more is delivered
	ClosedBy string // "client" (websocket_closeconnection) or "server"
	OpenN    int    // the event order (Event.N) when it opened: later events have a larger N
	broken   bool   // the server's close was read; the id lingers until the callback returns
	reading  bool   // concurrent mode: the read loop's callback is in flight
	writing  bool   // concurrent mode: a text/binary write holds gorilla's writer
}

// Sent returns the frames the plugin sent on this connection.
func (c *Conn) Sent() []Event { return c.events("send") }

func (c *Conn) events(kind string) []Event {
	var out []Event
	for _, e := range c.Events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// Server is the scripted remote end (the fake Discord gateway).
type Server interface {
	Accept(c *Conn) error                  // dial; an error fails websocket_connect
	Receive(c *Conn, text string)          // a text frame the plugin sent
	Closed(c *Conn, code int32, by string) // the connection ended
}

type wsEvent struct {
	conn   *Conn
	text   string
	closed bool // a close / read error ends the reader
	code   int32
	reason string
}

// WSOp records one websocket host call.
type WSOp struct {
	At   time.Time
	Kind string // "connect", "sendtext", "sendbinary", "close"
	ID   string
	URL  string
	Code int32
	Err  string
}

// WebSocket fakes host.WebSocketService like plugins/host_websocket.go at
// v0.63.2. Incoming traffic is queued and delivered only by Deliver (the
// harness pump), one event at a time, never nested inside another call.
type WebSocket struct {
	clock  *Clock
	ids    *idSource
	call   invokeFunc
	hosts  []string // manifest permissions.websocket.requiredHosts
	server Server
	active map[string]*Conn
	queue  []wsEvent
	Conns  []*Conn // every connection ever opened, in order
	Ops    []WSOp
	events int
	sim    *Sim // concurrent mode (NewSim), else nil
}

// ConcurrentWrite is gorilla's panic text when two goroutines write a message
// on one connection at once (conn.go flushFrame, v1.5.3).
const ConcurrentWrite = "concurrent write to websocket connection"

var _ host.WebSocketService = (*WebSocket)(nil)

func NewWebSocket(clock *Clock, ids *idSource, requiredHosts []string, server Server) *WebSocket {
	return &WebSocket{clock: clock, ids: ids, hosts: requiredHosts, server: server, active: map[string]*Conn{}}
}

func (w *WebSocket) op(o WSOp, err error) error {
	o.At = w.clock.Now()
	if err != nil {
		o.Err = err.Error()
	}
	w.Ops = append(w.Ops, o)
	return err
}

func (w *WebSocket) Connect(_ context.Context, rawURL string, headers map[string]string, connectionID string) (string, error) {
	id, err := w.connect(rawURL, headers, connectionID)
	return id, w.op(WSOp{Kind: "connect", ID: connectionID, URL: rawURL}, err)
}

func (w *WebSocket) connect(rawURL string, headers map[string]string, id string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Errorf("invalid URL scheme: must be ws:// or wss://")
	}
	if !w.hostAllowed(u.Host) {
		return "", fmt.Errorf("host %q is not allowed", u.Host)
	}
	if id == "" {
		id = w.ids.next()
	}
	if _, exists := w.active[id]; exists {
		return "", fmt.Errorf("connection ID %q already exists", id)
	}
	c := &Conn{ID: id, URL: rawURL, Headers: headers, Opened: w.clock.Now(), Open: true, OpenN: w.events}
	if err := w.server.Accept(c); err != nil {
		return "", fmt.Errorf("failed to connect: %w", err)
	}
	w.active[id] = c
	w.Conns = append(w.Conns, c)
	return id, nil
}

// hostAllowed strips the port after the LAST ':' (as isHostAllowed does) and
// matches requiredHosts; an empty list allows nothing.
func (w *WebSocket) hostAllowed(hostport string) bool {
	if i := strings.LastIndex(hostport, ":"); i != -1 {
		hostport = hostport[:i]
	}
	for _, p := range w.hosts {
		if matchHostPattern(p, hostport) {
			return true
		}
	}
	return false
}

// matchHostPattern reproduces Navidrome's rule: "*" matches all, exact match
// (case-sensitive), "*.x" matches any host ending in ".x" (not "x" itself).
func matchHostPattern(pattern, host string) bool {
	if pattern == "*" || pattern == host {
		return true
	}
	return strings.HasPrefix(pattern, "*.") && strings.HasSuffix(host, pattern[1:])
}

func (w *WebSocket) lookup(id string) (*Conn, error) {
	c, ok := w.active[id]
	if !ok {
		return nil, fmt.Errorf("connection ID %q not found", id)
	}
	return c, nil
}

func (w *WebSocket) SendText(ctx context.Context, connectionID, message string) error {
	err := w.send(ctx, connectionID, message, "text")
	return w.op(WSOp{Kind: "sendtext", ID: connectionID}, err)
}

func (w *WebSocket) SendBinary(ctx context.Context, connectionID string, data []byte) error {
	err := w.send(ctx, connectionID, string(data), "binary")
	return w.op(WSOp{Kind: "sendbinary", ID: connectionID}, err)
}

func (w *WebSocket) send(ctx context.Context, id, payload, kind string) error {
	c, err := w.lookup(id)
	if err != nil {
		return err
	}
	t := taskOf(ctx)
	if t != nil && c.writing {
		// Navidrome's SendText calls WriteMessage with no lock. The second
		// writer's beginMessage closes the first one's writer, whose
		// flushFrame finds isWriting set and panics before writing anything
		// (even if the peer's close was read meanwhile: that error is only
		// checked afterwards); the first writer's frame goes out and the
		// connection stays usable. wazero turns the panic into a failed
		// plugin call.
		w.sim.Collisions++
		w.record(c, Event{Kind: "collision", Text: payload})
		_ = w.op(WSOp{Kind: "send" + kind, ID: id}, fmt.Errorf("panic: %s", ConcurrentWrite))
		panic(ConcurrentWrite)
	}
	if c.broken { // gorilla refuses writes once the peer's close was read
		return fmt.Errorf("failed to send %s message: %w", kind, websocket.ErrCloseSent)
	}
	w.record(c, Event{Kind: "send", Text: payload})
	if kind == "text" {
		w.server.Receive(c, payload)
	}
	if t != nil && w.sim.WriteHold > 0 {
		c.writing = true
		t.sleep(w.clock.Now().Add(w.sim.WriteHold))
		c.writing = false
	}
	return nil
}

// CloseConnection removes the id first, then synchronously runs
// nd_websocket_on_close (nested instance) with the caller's code and reason.
// Queued incoming traffic is dropped: the reader stops without callbacks.
func (w *WebSocket) CloseConnection(ctx context.Context, connectionID string, code int32, reason string) error {
	c, err := w.lookup(connectionID)
	if err != nil {
		return w.op(WSOp{Kind: "close", ID: connectionID, Code: code}, err)
	}
	delete(w.active, c.ID)
	c.Open = false
	w.record(c, Event{Kind: "close", Code: code, Text: reason})
	w.finish(c, code, "client")
	_ = w.op(WSOp{Kind: "close", ID: connectionID, Code: code}, nil)
	_ = w.call(ctx, "nd_websocket_on_close", capabilities.OnCloseRequest{ConnectionID: connectionID, Code: code, Reason: reason})
	return nil
}

// record stamps e with the time and the global order and adds it to c.
func (w *WebSocket) record(c *Conn, e Event) {
	w.events++
	e.At, e.N = w.clock.Now(), w.events
	c.Events = append(c.Events, e)
}

// finish ends delivery for c and drops its queued traffic.
func (w *WebSocket) finish(c *Conn, code int32, by string) {
	if c.Ended {
		return
	}
	c.Ended, c.ClosedBy = true, by
	kept := w.queue[:0]
	for _, e := range w.queue {
		if e.conn != c {
			kept = append(kept, e)
		}
	}
	w.queue = kept
	w.server.Closed(c, code, by)
}

// QueueText queues an incoming text frame on c for the next pump. A
// connection keeps receiving even if its id was dropped from the table.
func (w *WebSocket) QueueText(c *Conn, text string) {
	if !c.Ended && !c.broken {
		w.queue = append(w.queue, wsEvent{conn: c, text: text})
	}
}

// ServerClose queues the server closing c (after frames already queued).
// Codes 1000/1001/1005 reach nd_websocket_on_close; anything else (4xxx,
// 1006 ...) reaches nd_websocket_on_error with gorilla's error text.
func (w *WebSocket) ServerClose(c *Conn, code int32, reason string) {
	if !c.Ended && !c.broken {
		w.queue = append(w.queue, wsEvent{conn: c, closed: true, code: code, reason: reason})
	}
}

// ServerDrop queues a dropped TCP connection (1006, "unexpected EOF").
func (w *WebSocket) ServerDrop(c *Conn) {
	w.ServerClose(c, websocket.CloseAbnormalClosure, "unexpected EOF")
}

// breakConn queues the server dropping the open connection id (nothing if
// there is none).
func (w *WebSocket) breakConn(id string) {
	if c, ok := w.active[id]; ok {
		w.ServerDrop(c)
	}
}

// Pending returns the number of incoming events waiting for delivery.
func (w *WebSocket) Pending() int { return len(w.queue) }

// Deliver hands the next queued event to the plugin; false if none is queued.
func (w *WebSocket) Deliver(ctx context.Context) bool {
	if len(w.queue) == 0 {
		return false
	}
	e := w.queue[0]
	w.queue = w.queue[1:]
	w.deliver(ctx, e)
	return true
}

// deliverable returns, in concurrent mode, the connections whose read loop is
// idle and has a frame or close waiting, in the order of their first one.
func (w *WebSocket) deliverable() []*Conn {
	var out []*Conn
	for _, e := range w.queue {
		if !e.conn.reading && !slices.Contains(out, e.conn) {
			out = append(out, e.conn)
		}
	}
	return out
}

// startDelivery starts c's read loop on its next queued event: a task that
// runs the callback; the loop reads the next frame only once it returned.
func (w *WebSocket) startDelivery(c *Conn) {
	for i, e := range w.queue {
		if e.conn == c {
			w.queue = append(w.queue[:i], w.queue[i+1:]...)
			c.reading = true
			w.sim.Go("read "+c.ID, func(ctx context.Context) {
				defer func() { c.reading = false }()
				w.deliver(ctx, e)
			})
			return
		}
	}
}

// deliver is one iteration of readLoop: the callback for e, and after the
// final one the loop's deferred cleanup.
func (w *WebSocket) deliver(ctx context.Context, e wsEvent) {
	c := e.conn
	if !e.closed {
		w.record(c, Event{Kind: "recv", Text: e.text})
		_ = w.call(ctx, "nd_websocket_on_text_message", capabilities.OnTextMessageRequest{ConnectionID: c.ID, Message: e.text})
		return
	}
	c.broken = true
	if e.code == websocket.CloseNormalClosure || e.code == websocket.CloseGoingAway || e.code == websocket.CloseNoStatusReceived {
		w.record(c, Event{Kind: "close", Code: e.code, Text: e.reason})
		_ = w.call(ctx, "nd_websocket_on_close", capabilities.OnCloseRequest{ConnectionID: c.ID, Code: e.code, Reason: e.reason})
	} else {
		text := (&websocket.CloseError{Code: int(e.code), Text: e.reason}).Error()
		w.record(c, Event{Kind: "error", Code: e.code, Text: text})
		_ = w.call(ctx, "nd_websocket_on_error", capabilities.OnErrorRequest{ConnectionID: c.ID, Error: text})
	}
	// readLoop's deferred cleanup is keyed by id: it removes whatever holds
	// the id now, possibly a new connection opened in the callback (§7.3).
	if cur, ok := w.active[c.ID]; ok {
		delete(w.active, c.ID)
		cur.Open = false
	}
	c.Open = false
	w.finish(c, e.code, "server")
}

// Active returns the connections registered in the host's table.
func (w *WebSocket) Active() []*Conn {
	var out []*Conn
	for _, c := range w.Conns {
		if c.Open {
			out = append(out, c)
		}
	}
	return out
}

// Conn returns the most recent connection opened with the given id.
func (w *WebSocket) Conn(id string) *Conn {
	for i := len(w.Conns) - 1; i >= 0; i-- {
		if w.Conns[i].ID == id {
			return w.Conns[i]
		}
	}
	return nil
}
