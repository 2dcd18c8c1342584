package e2e

// A real Navidrome process on 127.0.0.1 inside the test namespace, and the two APIs a
// person's tools use: the native API of the web UI (login, first-user creation, plugin
// settings) and the Subsonic API of players.

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	adminUser = "admin"
	adminPass = "e2e-Password-1"
	pluginID  = "discord-presence" // the .ndp file name without extension
)

type Navidrome struct {
	Base    string
	Version string
	cmd     *exec.Cmd
	exited  chan struct{}
	jwt     string
	http    *http.Client

	logMu sync.Mutex
	log   bytes.Buffer
}

// logBuffer collects Navidrome's output for assertions (and a copy on disk).
type logWriter struct {
	n    *Navidrome
	file *os.File
}

func (w logWriter) Write(p []byte) (int, error) {
	w.n.logMu.Lock()
	w.n.log.Write(p)
	w.n.logMu.Unlock()
	return w.file.Write(p)
}

// startNavidrome runs binary with its data in dataDir, the library in musicDir and
// ndpPath installed in the plugins folder, and waits until it answers. public is its
// ND_SHAREURL; "" leaves it unset, as Navidrome runs by default.
func startNavidrome(t *testing.T, binary, musicDir, ndpPath, caFile string, port int, public string) *Navidrome {
	t.Helper()
	data := t.TempDir()
	plugins := filepath.Join(data, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile(ndpPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugins, pluginID+".ndp"), pkg, 0o644); err != nil {
		t.Fatal(err)
	}
	n := &Navidrome{Base: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{}), http: &http.Client{Timeout: 15 * time.Second}}
	out, err := os.Create(filepath.Join(logDir(t), "navidrome.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	n.cmd = exec.Command(binary)
	n.cmd.Dir = data
	n.cmd.Env = []string{
		"HOME=" + data, "PATH=" + os.Getenv("PATH"), "TZ=UTC",
		"SSL_CERT_FILE=" + caFile, // the fake Discord's CA, and nothing else
		"ND_DATAFOLDER=" + data, "ND_MUSICFOLDER=" + musicDir, "ND_CACHEFOLDER=" + filepath.Join(data, "cache"),
		"ND_ADDRESS=127.0.0.1", fmt.Sprintf("ND_PORT=%d", port),
		"ND_LOGLEVEL=debug", "ND_PLUGINS_ENABLED=true", "ND_PLUGINS_FOLDER=" + plugins,
		// No outside services (there is no network anyway): keeps the log about the plugin.
		"ND_ENABLEINSIGHTSCOLLECTOR=false", "ND_LASTFM_ENABLED=false", "ND_LISTENBRAINZ_ENABLED=false",
		"ND_DEEZER_ENABLED=false", "ND_AGENTS=",
	}
	if public != "" {
		n.cmd.Env = append(n.cmd.Env, "ND_SHAREURL="+public)
	}
	n.cmd.Stdout = logWriter{n, out}
	n.cmd.Stderr = logWriter{n, out}
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(n.stop)
	// At the end of every scenario (before the server stops: its shutdown is not part of
	// it), whether it passed or not: no plugin call failed.
	t.Cleanup(func() { checkNoFailedCalls(t, n.Log()) })
	// Poll /ping: the server needs a moment for migrations and the plugin sync.
	n.poll(t, 60*time.Second, "Navidrome to answer /ping", func() bool {
		resp, err := n.http.Get(n.Base + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

func logDir(t *testing.T) string {
	if d := os.Getenv("NDP_E2E_LOGS"); d != "" {
		d = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

func (n *Navidrome) stop() {
	select {
	case <-n.exited:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// poll calls ok every 100 ms until it holds, failing after timeout or if Navidrome died.
func (n *Navidrome) poll(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		select {
		case <-n.exited:
			t.Fatalf("Navidrome exited while waiting for %s; log tail:\n%s", what, tail(n.Log(), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; log tail:\n%s", timeout, what, tail(n.Log(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *Navidrome) Log() string {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	return n.log.String()
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// WaitLog waits until a complete log line after byte offset from satisfies match, and
// returns the offset just past that line.
func (n *Navidrome) WaitLog(t *testing.T, from int, timeout time.Duration, what string, match func(line string) bool) int {
	t.Helper()
	var at int
	n.poll(t, timeout, what+" in Navidrome's log", func() bool {
		log := n.Log()
		off := from
		for _, line := range strings.SplitAfter(log[min(from, len(log)):], "\n") {
			off += len(line)
			if strings.HasSuffix(line, "\n") && match(line) {
				at = off
				return true
			}
		}
		return false
	})
	return at
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// api sends a native-API request as the web UI does (JSON, JWT in X-ND-Authorization).
func (n *Navidrome) api(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, n.Base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if n.jwt != "" {
		req.Header.Set("X-ND-Authorization", "Bearer "+n.jwt)
	}
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s -> %d %s", method, path, resp.StatusCode, redact(string(data)))
	}
	return resp.StatusCode
}

// CreateAdmin is the first-user flow of a new server's login page.
func (n *Navidrome) CreateAdmin(t *testing.T) {
	t.Helper()
	var r struct {
		Token string `json:"token"`
	}
	if code := n.api(t, "POST", "/auth/createAdmin", map[string]string{"username": adminUser, "password": adminPass}, &r); code != 200 || r.Token == "" {
		t.Fatalf("createAdmin: status %d", code)
	}
	n.jwt = r.Token
}

// PluginRow is the plugin's DB row as GET /api/plugin/{id} returns it.
type PluginRow struct {
	ID        string `json:"id"`
	Manifest  string `json:"manifest"`
	Config    string `json:"config"`
	Users     string `json:"users"`
	AllUsers  bool   `json:"allUsers"`
	Enabled   bool   `json:"enabled"`
	LastError string `json:"lastError"`
}

func (n *Navidrome) Plugin(t *testing.T) (PluginRow, int) {
	t.Helper()
	var p PluginRow
	code := n.api(t, "GET", "/api/plugin/"+pluginID, nil, &p)
	return p, code
}

// UserID returns the id of a user, from the list the plugin page's user picker loads.
func (n *Navidrome) UserID(t *testing.T, name string) string {
	t.Helper()
	var users []struct{ ID, UserName string }
	n.api(t, "GET", "/api/user", nil, &users)
	for _, u := range users {
		if u.UserName == name {
			return u.ID
		}
	}
	t.Fatalf("no user %q in /api/user", name)
	return ""
}

// Subsonic is a player: Subsonic token auth, a client name and, like the web UI, a
// client unique id (it becomes the playback report's playerId).
type Subsonic struct {
	n        *Navidrome
	Client   string
	UniqueID string
}

// Call performs a Subsonic request and returns the "subsonic-response" object.
func (s Subsonic) Call(t *testing.T, endpoint string, params url.Values) map[string]any {
	t.Helper()
	salt := fmt.Sprintf("%x", time.Now().UnixNano())
	sum := md5.Sum([]byte(adminPass + salt))
	q := url.Values{"u": {adminUser}, "t": {hex.EncodeToString(sum[:])}, "s": {salt}, "v": {"1.16.1"}, "c": {s.Client}, "f": {"json"}}
	for k, v := range params {
		q[k] = v
	}
	req, _ := http.NewRequest("GET", s.n.Base+"/rest/"+endpoint+"?"+q.Encode(), nil)
	if s.UniqueID != "" {
		req.Header.Set("X-ND-Client-Unique-Id", s.UniqueID)
	}
	resp, err := s.n.http.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	var body struct {
		R map[string]any `json:"subsonic-response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	if body.R["status"] != "ok" {
		t.Fatalf("%s %v: %v", endpoint, params, body.R["error"])
	}
	return body.R
}
