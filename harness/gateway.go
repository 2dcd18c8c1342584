package harness

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// MaxFrameBytes is Discord's limit for a client payload (larger → close 4002).
const MaxFrameBytes = 4096

// Frame is one decoded frame the plugin sent to the gateway.
type Frame struct {
	Conn *Conn
	At   time.Time
	Op   int
	D    json.RawMessage
	Raw  string
}

func (f Frame) String() string { return f.Raw }

// Decode unmarshals the frame's "d" into v.
func (f Frame) Decode(v any) error { return json.Unmarshal(f.D, v) }

// Gateway is a scripted Discord gateway (v10, JSON, no compression) behind the
// websocket fake. Per connection: Hello on connect, READY on Identify, RESUMED
// on Resume, ACK on each heartbeat. The test drives everything else.
type Gateway struct {
	t     testing.TB
	ws    *WebSocket
	clock *Clock

	HeartbeatMs int  // Hello's heartbeat_interval (default 41250)
	SendHello   bool // queue Hello on connect (default true)
	AutoAck     bool // answer op 1 with op 11 (default true)
	SessionID   string
	ResumeURL   string
	DialError   error // when set, connects fail with "failed to connect: <err>"

	seq    int // last sequence number dispatched on the session
	Frames []Frame
}

func NewGateway(t testing.TB, clock *Clock) *Gateway {
	return &Gateway{t: t, clock: clock, HeartbeatMs: 41250, SendHello: true, AutoAck: true,
		SessionID: "sess-1", ResumeURL: "wss://gateway-us-east1-b.discord.gg"}
}

// Accept is the dial: Hello is queued first on every new socket.
func (g *Gateway) Accept(c *Conn) error {
	if g.DialError != nil {
		return g.DialError
	}
	if g.SendHello {
		g.ws.QueueText(c, fmt.Sprintf(`{"op":10,"d":{"heartbeat_interval":%d},"s":null,"t":null}`, g.HeartbeatMs))
	}
	return nil
}

func (g *Gateway) Closed(*Conn, int32, string) {}

// Receive validates and records a frame, then answers per the script.
func (g *Gateway) Receive(c *Conn, text string) {
	if len(text) > MaxFrameBytes {
		g.t.Errorf("gateway: frame of %d bytes on %s exceeds %d: %.200s", len(text), c.ID, MaxFrameBytes, text)
	}
	var env struct {
		Op *int            `json:"op"`
		D  json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal([]byte(text), &env); err != nil || env.Op == nil {
		g.t.Errorf("gateway: frame on %s is not a JSON gateway payload (%v): %.200s", c.ID, err, text)
		return
	}
	g.Frames = append(g.Frames, Frame{Conn: c, At: g.clock.Now(), Op: *env.Op, D: env.D, Raw: text})
	switch *env.Op {
	case 1:
		if g.AutoAck {
			g.ws.QueueText(c, `{"op":11}`)
		}
	case 2:
		g.seq = 0
		g.Dispatch(c, "READY", fmt.Sprintf(`{"session_id":%q,"resume_gateway_url":%q,"user":{"id":"1","username":"alice"},"sessions":[]}`, g.SessionID, g.ResumeURL))
	case 6:
		g.Dispatch(c, "RESUMED", `{}`)
	}
}

// Dispatch queues an op 0 event with the next sequence number.
func (g *Gateway) Dispatch(c *Conn, event, d string) {
	g.seq++
	g.ws.QueueText(c, fmt.Sprintf(`{"op":0,"t":%q,"s":%d,"d":%s}`, event, g.seq, d))
}

// Seq returns the last dispatched sequence number.
func (g *Gateway) Seq() int { return g.seq }

// Inject queues any raw frame.
func (g *Gateway) Inject(c *Conn, frame string) { g.ws.QueueText(c, frame) }

// RequestHeartbeat queues op 1 (server asks for an immediate heartbeat).
func (g *Gateway) RequestHeartbeat(c *Conn) { g.Inject(c, `{"op":1,"d":null}`) }

// Reconnect queues op 7.
func (g *Gateway) Reconnect(c *Conn) { g.Inject(c, `{"op":7,"d":null}`) }

// InvalidSession queues op 9 with d = resumable.
func (g *Gateway) InvalidSession(c *Conn, resumable bool) {
	g.Inject(c, fmt.Sprintf(`{"op":9,"d":%t}`, resumable))
}

// BigReady queues a READY of at least size bytes (user accounts get huge
// READY payloads: guilds, relationships ...), with the usual session fields.
func (g *Gateway) BigReady(c *Conn, size int) {
	pad := strings.Repeat(`{"id":"100000000000000000","name":"guild","channels":[]},`, size/55+1)
	g.Dispatch(c, "READY", fmt.Sprintf(`{"session_id":%q,"resume_gateway_url":%q,"user":{"id":"1","username":"alice"},"sessions":[],"guilds":[%s]}`,
		g.SessionID, g.ResumeURL, strings.TrimSuffix(pad, ",")))
}

// FramesOn returns the frames sent on one connection, optionally only ops.
func (g *Gateway) FramesOn(c *Conn, ops ...int) []Frame {
	var out []Frame
	for _, f := range g.Frames {
		if f.Conn == c && (len(ops) == 0 || slices.Contains(ops, f.Op)) {
			out = append(out, f)
		}
	}
	return out
}

// MaxInWindow returns the largest number of frames (optionally of the given
// ops) on one connection inside any window of length d; Discord allows 120
// frames per 60 s per connection, presence updates are limited to 5 per 20 s.
func (g *Gateway) MaxInWindow(c *Conn, d time.Duration, ops ...int) int {
	fs := g.FramesOn(c, ops...)
	best := 0
	for i := range fs {
		n := 0
		for j := i; j < len(fs) && fs[j].At.Sub(fs[i].At) < d; j++ {
			n++
		}
		best = max(best, n)
	}
	return best
}
