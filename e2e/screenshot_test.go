package e2e

// A screenshot of the plugin's settings page in Navidrome's own web UI (for the README),
// taken with Debian's headless Chromium after the plugin was configured as in the main
// test. Runs only when e2e/run.sh --screenshot provides a Navidrome built with its UI.

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"
)

// loginPage logs in through Navidrome's own /auth/login, stores what the UI's
// authProvider stores, and opens the plugin page.
const loginPage = `<!doctype html><script>
fetch('/auth/login', {method: 'POST', headers: {'Content-Type': 'application/json'},
  body: JSON.stringify({username: %q, password: %q})})
.then(r => r.json()).then(a => {
  for (const [k, v] of Object.entries({token: a.token, userId: a.id, name: a.name, username: a.username,
      role: a.isAdmin ? 'admin' : 'regular', 'subsonic-salt': a.subsonicSalt, 'subsonic-token': a.subsonicToken,
      'is-authenticated': 'true'})) localStorage.setItem(k, v)
  location.replace('/app/#/plugin/%s/show')
})</script>`

func TestScreenshotPluginPage(t *testing.T) {
	out, binary := os.Getenv("NDP_E2E_SCREENSHOT"), os.Getenv("NDP_E2E_NAVIDROME_UI")
	if out == "" || binary == "" {
		t.Skip("no screenshot asked for (e2e/run.sh --screenshot)")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (Debian: apt-get install chromium)")
	}
	ndp := requireEnv(t, "NDP_E2E_PACKAGE")
	fake := startFakeDiscord(t)
	nd := startNavidrome(t, binary, makeLibrary(t), ndp, fake.CAFile, port+2, shareURL)
	nd.CreateAdmin(t)
	configurePlugin(t, nd)

	// The login page on the same origin as the UI: a proxy in front of Navidrome.
	target, _ := url.Parse(nd.Base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	mux := http.NewServeMux()
	mux.HandleFunc("/e2e-login.html", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, loginPage, adminUser, adminPass, pluginID)
	})
	// The UI's server-sent event stream never ends, and Chromium's virtual time would
	// wait for it: the page works without it.
	mux.HandleFunc("/api/events", http.NotFound)
	mux.Handle("/", proxy)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	tmp := t.TempDir()
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+tmp+"/profile", "--window-size=1280,1800", "--virtual-time-budget=15000", "--timeout=40000",
		"--screenshot="+tmp+"/page.png", "http://"+ln.Addr().String()+"/e2e-login.html")
	cmd.Env = append(os.Environ(), "HOME="+tmp)
	done := make(chan error, 1)
	var output []byte
	go func() { var err error; output, err = cmd.CombinedOutput(); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, output)
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("chromium took over 90 s")
	}
	png, err := os.ReadFile(tmp + "/page.png")
	if err != nil || len(png) < 10_000 {
		t.Fatalf("no usable screenshot (%d bytes): %v\n%s", len(png), err, output)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the plugin page: %s (%d bytes)", out, len(png))
}
