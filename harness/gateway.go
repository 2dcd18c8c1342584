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
	Via  *Result // the export call that sent it (nil outside a call)
}

func (f Frame) String() string { return f.Raw }

// Decode unmarshals the frame's "d" into v.
func (f Frame) Decode(v any) error { return json.Unmarshal(f.D, v) }

// GatewaySession is one Discord session: started by Identify, continued on
// another socket by Resume, gone once the client closes with 1000/1001.
type GatewaySession struct {
	ID    string
	Token string
	Seq   int // last sequence number dispatched on the session
	// Dead: the gateway said it cannot be resumed (op 9 false, close 4009).
	Dead bool
}

// IdentifyAt is one Identify the gateway received, with the sessions of the
// same token that were still resumable at that moment.
type IdentifyAt struct {
	Conn      *Conn
	At        time.Time
	N         int // position in the websocket event order
	Resumable []*GatewaySession
}

// Gateway is a scripted Discord gateway (v10, JSON, no compression) behind the
// websocket fake. Per connection: Hello on connect; Identify starts a session
// and gets READY (or close 4004 for a rejected token); Resume of a live session
// with a valid seq gets RESUMED, otherwise op 9 false; ACK on each heartbeat;
// a second Identify/Resume closes 4005, any other op before one closes 4003.
// The test drives everything else.
type Gateway struct {
	t     testing.TB
	ws    *WebSocket
	clock *Clock
	via   func() *Result

	HeartbeatMs  int             // Hello's heartbeat_interval (default 41250)
	SendHello    bool            // queue Hello on connect (default true)
	AutoAck      bool            // answer op 1 with op 11 (default true)
	NoAck        map[*Conn]bool  // sockets whose heartbeats go unanswered even with AutoAck
	ResumeURL    string          // READY's resume_gateway_url
	DialError    error           // when set, connects fail with "failed to connect: <err>"
	RejectTokens map[string]bool // Identify/Resume with these tokens is closed with 4004
	// ReadySessions renders READY's d.sessions given the new session's id
	// (nil: []); ReadyJunk pads d with that many bytes of guilds and
	// relationships before the session fields, as for a real user account.
	ReadySessions func(self string) string
	ReadyJunk     int
	// HeartbeatGrace, when > 0, makes the gateway close a socket with 4009
	// ("Session timed out.") once no heartbeat arrived for the heartbeat
	// interval plus this grace since Hello or the last heartbeat, as Discord
	// drops clients that stop heartbeating. Timeouts lists those sockets.
	HeartbeatGrace time.Duration
	Timeouts       []*Conn
	// ReplyDelay, when > 0, delays Hello, READY and RESUMED by that much
	// virtual time, AckDelay the heartbeat ACKs (a slow gateway).
	ReplyDelay, AckDelay time.Duration
	// ThrottleIdentify answers every Identify with op 9 (d: false), as Discord does
	// while it throttles new sessions; the Identify is still recorded.
	ThrottleIdentify bool
	// OnSession, when set, runs after READY or RESUMED is queued on a socket (a
	// storm: op 7 or a close right after each new or resumed session).
	OnSession func(c *Conn, resumed bool)

	sessions map[string]*GatewaySession // live sessions by id
	conns    map[*Conn]*GatewaySession  // the session each socket identified or resumed
	beatDue  map[*Conn]*timer           // HeartbeatGrace deadline per socket
	started  int
	Frames   []Frame
	// Identifies records every Identify (see IdentifyAt).
	Identifies []IdentifyAt
}

func NewGateway(t testing.TB, clock *Clock) *Gateway {
	return &Gateway{t: t, clock: clock, HeartbeatMs: 41250, SendHello: true, AutoAck: true,
		ResumeURL: "wss://gateway-us-east1-b.discord.gg", RejectTokens: map[string]bool{}, NoAck: map[*Conn]bool{},
		sessions: map[string]*GatewaySession{}, conns: map[*Conn]*GatewaySession{}, beatDue: map[*Conn]*timer{},
		via: func() *Result { return nil }}
}

// Accept is the dial: Hello is queued first on every new socket.
func (g *Gateway) Accept(c *Conn) error {
	if g.DialError != nil {
		return g.DialError
	}
	if g.SendHello {
		g.reply(c, fmt.Sprintf(`{"op":10,"d":{"heartbeat_interval":%d},"s":null,"t":null}`, g.HeartbeatMs), g.ReplyDelay)
	}
	g.armBeatDeadline(c, g.ReplyDelay) // counted from Hello
	return nil
}

// reply queues a frame the gateway answers with, after delay.
func (g *Gateway) reply(c *Conn, text string, delay time.Duration) {
	if delay <= 0 {
		g.ws.QueueText(c, text)
		return
	}
	g.clock.At(g.clock.Now().Add(delay), func() { g.ws.QueueText(c, text) })
}

// armBeatDeadline (re)starts c's heartbeat deadline (HeartbeatGrace), extra
// later than usual.
func (g *Gateway) armBeatDeadline(c *Conn, extra time.Duration) {
	if g.HeartbeatGrace <= 0 {
		return
	}
	if t := g.beatDue[c]; t != nil {
		t.Stop()
	}
	g.beatDue[c] = g.clock.At(g.clock.Now().Add(time.Duration(g.HeartbeatMs)*time.Millisecond+g.HeartbeatGrace+extra), func() {
		if !c.Ended {
			if s := g.conns[c]; s != nil {
				s.Dead = true // Discord: reconnect and start a new session
			}
			g.Timeouts = append(g.Timeouts, c)
			g.ws.ServerClose(c, 4009, "Session timed out.")
		}
	})
}

// Closed ends the session when the client closes with 1000/1001 (Discord
// invalidates it; any other code leaves it resumable).
func (g *Gateway) Closed(c *Conn, code int32, by string) {
	if s := g.conns[c]; s != nil && by == "client" && (code == 1000 || code == 1001) {
		delete(g.sessions, s.ID)
	}
}

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
	g.Frames = append(g.Frames, Frame{Conn: c, At: g.clock.Now(), Op: *env.Op, D: env.D, Raw: text, Via: g.via()})
	switch op := *env.Op; {
	case op == 1:
		g.armBeatDeadline(c, 0)
		if g.AutoAck && !g.NoAck[c] {
			g.reply(c, `{"op":11}`, g.AckDelay)
		}
	case op == 2 || op == 6:
		g.authenticate(c, op, env.D)
	case g.conns[c] == nil:
		g.ws.ServerClose(c, 4003, "Not authenticated.")
	}
}

func (g *Gateway) authenticate(c *Conn, op int, raw json.RawMessage) {
	var d struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       *int   `json:"seq"`
	}
	_ = json.Unmarshal(raw, &d)
	switch s := g.sessions[d.SessionID]; {
	case g.conns[c] != nil:
		g.ws.ServerClose(c, 4005, "Already authenticated.")
	case g.RejectTokens[d.Token]:
		g.ws.ServerClose(c, 4004, "Authentication failed.")
	case op == 2:
		var live []*GatewaySession
		for _, s := range g.sessions {
			if s.Token == d.Token && !s.Dead {
				live = append(live, s)
			}
		}
		slices.SortFunc(live, func(a, b *GatewaySession) int { return strings.Compare(a.ID, b.ID) })
		g.Identifies = append(g.Identifies, IdentifyAt{Conn: c, At: g.clock.Now(), N: g.ws.events, Resumable: live})
		if g.ThrottleIdentify {
			g.ws.QueueText(c, `{"op":9,"d":false,"s":null,"t":null}`)
			return
		}
		g.started++
		s = &GatewaySession{ID: fmt.Sprintf("sess-%d", g.started), Token: d.Token}
		g.sessions[s.ID], g.conns[c] = s, s
		sessions := "[]"
		if g.ReadySessions != nil {
			sessions = g.ReadySessions(s.ID)
		}
		g.Dispatch(c, "READY", fmt.Sprintf(`{"v":10,"user":{"id":"1","username":"alice"},%s"sessions":%s,"session_id":%q,"resume_gateway_url":%q}`,
			readyJunk(g.ReadyJunk), sessions, s.ID, g.ResumeURL))
		if g.OnSession != nil {
			g.OnSession(c, false)
		}
	case s == nil || s.Token != d.Token || d.Seq == nil || *d.Seq > s.Seq:
		if s != nil && s.Token == d.Token {
			s.Dead = true
		}
		g.ws.QueueText(c, `{"op":9,"d":false,"s":null,"t":null}`)
	default:
		g.conns[c] = s
		g.Dispatch(c, "RESUMED", `{"_trace":["[\"gateway-prd-us-east1-b-0\",{\"micros\":1}]"]}`)
		if g.OnSession != nil {
			g.OnSession(c, true)
		}
	}
}

// readyJunk returns `"guilds":[…],"relationships":[…],` of at least size
// bytes ("" for 0): nested objects and arrays, escaped quotes and backslashes,
// unicode escapes with surrogate pairs, numbers in every JSON form, and decoy
// session_id / resume_gateway_url keys inside nested objects and strings, so
// only a reader that tracks nesting finds the real top-level fields.
func readyJunk(size int) string {
	if size <= 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(`"guilds":[`)
	for i := 0; b.Len() < size*3/4; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","name":"Guild \"%d\" caf\u00e9 \ud83c\udfb5 \\o/ \/","features":["NEWS",["x",[],{}],{"nested":{"deeper":[1,-2.5e-3,1E+2,true,false,null]}}],`+
			`"channels":[{"id":"%d","topic":"say \"}\" or \"]\" then \"session_id\":\"decoy\"","type":0,"nsfw":false}],`+
			`"session_id":"decoy-%d","resume_gateway_url":"wss://decoy.discord.gg","member_count":%d}`, 100000000000000000+i, i, 200000000000000000+i, i, i*7)
	}
	b.WriteString(`],"relationships":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","type":1,"nickname":null,"user":{"username":"friend\t%d","global_name":"\u2603 \"snow\" {[","avatar":null}}`, 300000000000000000+i, i)
	}
	b.WriteString(`],`)
	return b.String()
}

// Dispatch queues an op 0 event with the next sequence number of c's session.
func (g *Gateway) Dispatch(c *Conn, event, d string) {
	s := g.conns[c]
	if s == nil {
		g.t.Errorf("gateway: dispatch %s on %s, which has no session", event, c.ID)
		return
	}
	s.Seq++
	frame := fmt.Sprintf(`{"op":0,"t":%q,"s":%d,"d":%s}`, event, s.Seq, d)
	if event == "READY" || event == "RESUMED" {
		g.reply(c, frame, g.ReplyDelay)
		return
	}
	g.ws.QueueText(c, frame)
}

// SessionOn returns the session c identified or resumed (nil if none).
func (g *Gateway) SessionOn(c *Conn) *GatewaySession { return g.conns[c] }

// Inject queues any raw frame.
func (g *Gateway) Inject(c *Conn, frame string) { g.ws.QueueText(c, frame) }

// RequestHeartbeat queues op 1 (server asks for an immediate heartbeat).
func (g *Gateway) RequestHeartbeat(c *Conn) { g.Inject(c, `{"op":1,"d":null}`) }

// Reconnect queues op 7.
func (g *Gateway) Reconnect(c *Conn) { g.Inject(c, `{"op":7,"d":null}`) }

// InvalidSession queues op 9 with d = resumable.
func (g *Gateway) InvalidSession(c *Conn, resumable bool) {
	if s := g.conns[c]; s != nil && !resumable {
		s.Dead = true
	}
	g.Inject(c, fmt.Sprintf(`{"op":9,"d":%t}`, resumable))
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
