package e2e

// Fakes of the outside world on 127.0.0.1:443 (inside the test's network namespace):
// Discord's gateway over wss for every *.discord.gg host, discord.com's external-assets
// endpoint, and the Cover Art Archive. Their certificate comes from a throwaway CA that
// Navidrome trusts through SSL_CERT_FILE. They record every frame the plugin sends and
// every connection and request, with arrival times.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// helloIntervalMs is the heartbeat interval the fake announces in Hello: short, so the test
// sees many beats; the plugin must honour it (Navidrome's scheduler has 1 s granularity).
const helloIntervalMs = 2000

// Frame is one gateway frame the plugin sent.
type Frame struct {
	Conn int // connection number, from 1
	At   time.Time
	Op   int
	D    json.RawMessage
	Raw  string
}

// Conn is one gateway connection.
type Conn struct {
	N      int
	Host   string // the Host the plugin dialled (SNI and Host header)
	Query  string
	Opened time.Time
	// Sent holds the sequence numbers of dispatches we sent, with their times.
	Seqs []Seq
	// CloseCode is the close code the plugin sent (0: none yet, -1: dropped without one).
	CloseCode int
	// Dropped is when the fake dropped the connection (Drop), and how.
	Dropped  time.Time
	DropKind string
	out      *writer
	asking   bool // SetAskBetweenBeats: an op 1 is waiting for its moment
}

// writer serialises writes to one websocket (gorilla allows one writer at a time).
type writer struct {
	mu sync.Mutex
	ws *websocket.Conn
}

type Seq struct {
	S  int64
	At time.Time
}

// Request is one HTTPS request to a fake other than the gateway.
type Request struct {
	At            time.Time
	Host, Method  string
	Path          string
	Authorization string
	Body          string
}

type FakeDiscord struct {
	CAFile string
	// Diagnose, if set, adds context (e.g. the plugin's errors) to a failed wait.
	Diagnose func() string

	mu         sync.Mutex
	frames     []Frame
	conns      []*Conn
	requests   []Request
	assets     map[string]string // external_asset_path → the URL registered
	seq        int64
	srv        *http.Server
	helloMs    int
	askBetween bool // SetAskBetweenBeats
	// Invalidated counts the Resumes answered with op 9 false (unknown session or a
	// sequence number never sent): the plugin must Identify again after each.
	Invalidated int
}

func startFakeDiscord(t *testing.T) *FakeDiscord {
	t.Helper()
	dir := t.TempDir()
	cert, caPEM, err := newCertificate(fakedHosts)
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeDiscord{CAFile: dir + "/ca.pem", assets: map[string]string{}, helloMs: helloIntervalMs}
	if err := os.WriteFile(f.CAFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:443")
	if err != nil {
		t.Fatalf("fake Discord cannot listen on 127.0.0.1:443: %v", err)
	}
	f.srv = &http.Server{Handler: f, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go f.srv.ServeTLS(ln, "", "")
	logs := logDir(t)
	t.Cleanup(func() {
		f.srv.Close()
		// Everything the fakes saw, for reading after a failure (token redacted).
		frames, conns, requests := f.Snapshot()
		var b strings.Builder
		for _, c := range conns {
			fmt.Fprintf(&b, "connection %d to %s/?%s at %s, closed with %d", c.N, c.Host, c.Query, c.Opened.Format("15:04:05.000"), c.CloseCode)
			if !c.Dropped.IsZero() {
				fmt.Fprintf(&b, ", dropped by the fake at %s (%s)", c.Dropped.Format("15:04:05.000"), c.DropKind)
			}
			b.WriteString("\n")
		}
		b.WriteString(dumpFrames(frames))
		for _, r := range requests {
			fmt.Fprintf(&b, "%s %s https://%s%s %s\n", r.At.Format("15:04:05.000"), r.Method, r.Host, r.Path, redact(r.Body))
		}
		_ = os.WriteFile(logs+"/discord.txt", []byte(b.String()), 0o644)
	})
	return f
}

// newCertificate makes a CA and a leaf certificate for hosts signed by it.
func newCertificate(hosts []string) (tls.Certificate, []byte, error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ndp-e2e test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: hosts, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

func (f *FakeDiscord) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if strings.HasSuffix(host, ".discord.gg") && websocket.IsWebSocketUpgrade(r) {
		f.gateway(w, r, host)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	f.mu.Lock()
	f.requests = append(f.requests, Request{At: time.Now(), Host: host, Method: r.Method, Path: r.URL.RequestURI(),
		Authorization: r.Header.Get("Authorization"), Body: string(body)})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case host == "discord.com" && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/external-assets"):
		f.externalAssets(w, body)
	case host == "coverartarchive.org" && strings.HasPrefix(r.URL.Path, "/release/"):
		// Every release has a front image: a 307 to its archive.org file, as the real CAA does.
		w.Header().Set("Location", caaImage(strings.Split(r.URL.Path, "/")[2]))
		w.WriteHeader(http.StatusTemporaryRedirect)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"404: Not Found","code":0}`)
	}
}

// caaImage is where the fake Cover Art Archive sends a release's front image.
func caaImage(releaseMBID string) string {
	return "https://archive.org/download/mbid-" + releaseMBID + "/front-500.jpg"
}

// externalAssets answers POST /api/v9/applications/{id}/external-assets {"urls":[…]} as
// Discord does: one {url, external_asset_path} per URL.
func (f *FakeDiscord) externalAssets(w http.ResponseWriter, body []byte) {
	var req struct{ URLs []string }
	if json.Unmarshal(body, &req) != nil || len(req.URLs) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"message":"Invalid Form Body","code":50035}`)
		return
	}
	var out []map[string]string
	f.mu.Lock()
	for _, u := range req.URLs {
		path := fmt.Sprintf("external/e2e-%d/%s", len(f.assets)+1, strings.Replace(u, "://", "/", 1))
		f.assets[path] = u
		out = append(out, map[string]string{"url": u, "external_asset_path": path})
	}
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(out)
}

// AssetURL returns the URL registered under an "mp:external/…" image key ("" if none).
func (f *FakeDiscord) AssetURL(image string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.assets[strings.TrimPrefix(image, "mp:")]
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *FakeDiscord) gateway(w http.ResponseWriter, r *http.Request, host string) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	f.mu.Lock()
	c := &Conn{N: len(f.conns) + 1, Host: host, Query: r.URL.RawQuery, Opened: time.Now(), out: &writer{ws: ws}}
	f.conns = append(f.conns, c)
	hello := f.helloMs
	f.mu.Unlock()
	defer ws.Close()
	f.send(c, fmt.Sprintf(`{"op":10,"d":{"heartbeat_interval":%d},"s":null,"t":null}`, hello))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			code := -1
			if ce, ok := err.(*websocket.CloseError); ok {
				code = ce.Code
			}
			f.mu.Lock()
			c.CloseCode = code
			f.mu.Unlock()
			return
		}
		var env struct {
			Op int             `json:"op"`
			D  json.RawMessage `json:"d"`
		}
		_ = json.Unmarshal(msg, &env)
		at := time.Now()
		f.mu.Lock()
		f.frames = append(f.frames, Frame{Conn: c.N, At: at, Op: env.Op, D: env.D, Raw: string(msg)})
		ask := env.Op == 1 && f.askBetween && !c.asking
		if ask {
			c.asking = true
		}
		f.mu.Unlock()
		switch env.Op {
		case 1:
			f.send(c, `{"op":11,"d":null,"s":null,"t":null}`)
			if ask {
				go f.askBetweenBeats(c)
			}
		case 2:
			f.dispatch(c, "READY", `{"v":10,"session_id":"e2e-session","resume_gateway_url":"wss://`+resumeHost+`",`+
				`"user":{"id":"100000000000000001","username":"e2e"},"sessions":[{"session_id":"e2e-session","status":"online"}]}`)
			f.dispatch(c, "READY_SUPPLEMENTAL", `{"guilds":[]}`)
		case 6:
			// As Discord: a Resume of an unknown session, or from a sequence number never
			// sent, is refused with op 9 false (then the client must Identify).
			var d struct {
				SessionID string `json:"session_id"`
				Seq       int64  `json:"seq"`
			}
			_ = json.Unmarshal(env.D, &d)
			f.mu.Lock()
			ok := d.SessionID == "e2e-session" && d.Seq >= 1 && d.Seq <= f.seq
			if !ok {
				f.Invalidated++
			}
			f.mu.Unlock()
			if ok {
				f.dispatch(c, "RESUMED", `{}`)
			} else {
				f.send(c, `{"op":9,"d":false,"s":null,"t":null}`)
			}
		}
	}
}

// dispatch sends an op 0 event with the next sequence number.
func (f *FakeDiscord) dispatch(c *Conn, t, d string) {
	f.mu.Lock()
	f.seq++
	s := f.seq
	c.Seqs = append(c.Seqs, Seq{S: s, At: time.Now()})
	f.mu.Unlock()
	f.send(c, fmt.Sprintf(`{"op":0,"s":%d,"t":%q,"d":%s}`, s, t, d))
}

func (f *FakeDiscord) send(c *Conn, text string) {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	_ = c.out.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = c.out.ws.WriteMessage(websocket.TextMessage, []byte(text))
}

// Invalidations returns how many Resumes the fake refused with op 9 false.
func (f *FakeDiscord) Invalidations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Invalidated
}

// SetAskBetweenBeats makes the gateway ask for a heartbeat (op 1) every other second,
// half a second after a whole second: between the beats of a 1000 ms interval, so that the
// answer is acknowledged long before the next scheduled beat (no client may take it for a
// zombied connection). The plugin sends the answer from the connection's read loop, while
// its other sends come from scheduler and report callbacks.
func (f *FakeDiscord) SetAskBetweenBeats(on bool) {
	f.mu.Lock()
	f.askBetween = on
	f.mu.Unlock()
}

func (f *FakeDiscord) askBetweenBeats(c *Conn) {
	now := time.Now()
	next := now.Truncate(2 * time.Second).Add(2*time.Second + 500*time.Millisecond)
	time.Sleep(next.Sub(now))
	f.mu.Lock()
	c.asking = false
	f.mu.Unlock()
	f.send(c, `{"op":1,"d":null,"s":null,"t":null}`)
}

// SetHelloInterval sets the heartbeat_interval announced by the next connections' Hello.
func (f *FakeDiscord) SetHelloInterval(ms int) {
	f.mu.Lock()
	f.helloMs = ms
	f.mu.Unlock()
}

// Drop ends the newest connection from the server side, keeping the session resumable as
// Discord does after an outage: kind "close 4000" sends a close frame with 4000 (unknown
// error) and closes the TCP connection a second later (after the client's echo); kind
// "tcp" closes the TCP connection without a close frame. It returns the connection number.
func (f *FakeDiscord) Drop(kind string) int {
	f.mu.Lock()
	c := f.conns[len(f.conns)-1]
	c.Dropped, c.DropKind = time.Now(), kind
	f.mu.Unlock()
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	switch kind {
	case "close 4000":
		_ = c.out.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "e2e: connection churn"), time.Now().Add(time.Second))
		time.AfterFunc(time.Second, func() { _ = c.out.ws.NetConn().Close() })
	default:
		_ = c.out.ws.NetConn().Close()
	}
	return c.N
}

// SendLatest sends a raw frame on the newest connection.
func (f *FakeDiscord) SendLatest(text string) {
	f.mu.Lock()
	c := f.conns[len(f.conns)-1]
	f.mu.Unlock()
	f.send(c, text)
}

// Snapshot returns copies of what was recorded so far.
func (f *FakeDiscord) Snapshot() ([]Frame, []*Conn, []Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	conns := make([]*Conn, len(f.conns))
	for i, c := range f.conns {
		cc := *c
		cc.Seqs = append([]Seq(nil), c.Seqs...)
		conns[i] = &cc
	}
	return append([]Frame(nil), f.frames...), conns, append([]Request(nil), f.requests...)
}

// WaitFrame polls (every 50 ms: the plugin runs inside a real server, so there is no
// event to wait on) until a frame after index `from` satisfies ok, and returns its index.
func (f *FakeDiscord) WaitFrame(t *testing.T, from int, timeout time.Duration, what string, ok func(Frame) bool) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		frames, _, _ := f.Snapshot()
		for i := from; i < len(frames); i++ {
			if ok(frames[i]) {
				return i
			}
		}
		if time.Now().After(deadline) {
			extra := ""
			if f.Diagnose != nil {
				extra = f.Diagnose()
			}
			t.Fatalf("no %s from the plugin within %v; frames since #%d:\n%s%s", what, timeout, from, dumpFrames(frames[min(from, len(frames)):]), extra)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dumpFrames(frames []Frame) string {
	var b strings.Builder
	for _, fr := range frames {
		fmt.Fprintf(&b, "  conn %d %s op %d %s\n", fr.Conn, fr.At.Format("15:04:05.000"), fr.Op, redact(fr.Raw))
	}
	return b.String()
}
