package harness

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/navidrome/navidrome/plugins/host"
)

// IsDiscordHost reports whether a URL's host belongs to Discord, the only
// place a user token may legitimately be sent.
func IsDiscordHost(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	for _, d := range []string{"discord.com", "discord.gg", "discordapp.com", "discordapp.net", "discord.media"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// AssertNoSecret fails the test if secret appears in any captured log line,
// any call or host-service error text, or anything sent to a non-Discord host
// (HTTP URL/headers/body, websocket URL/headers/frames, Subsonic API URIs).
func (h *Harness) AssertNoSecret(secret string) {
	h.T.Helper()
	check := func(where, text string) {
		if secret != "" && strings.Contains(text, secret) {
			h.T.Errorf("secret leaked in %s: %.300s", where, text)
		}
	}
	for _, l := range h.Logs {
		check(fmt.Sprintf("%s log from %s", l.Level, l.Func), l.Msg)
	}
	for _, c := range h.Calls {
		if c.Err != nil {
			check("error of "+c.Func, c.Err.Error())
		}
	}
	for _, o := range h.Sched.Ops {
		check("scheduler_"+o.Kind+" error", o.Err)
	}
	for _, o := range h.WS.Ops {
		check("websocket_"+o.Kind+" error", o.Err)
	}
	for _, c := range h.HTTP.Calls {
		check("http_send error", c.Err)
		if r := c.Request; !IsDiscordHost(r.URL) {
			check("request to "+r.URL, fmt.Sprint(r.URL, r.Headers, string(r.Body)))
		}
	}
	if h.Subsonic != nil {
		for _, c := range h.Subsonic.Calls {
			check("subsonicapi call", c.URI+" "+c.Err)
		}
	}
	for _, c := range h.WS.Conns {
		if IsDiscordHost(c.URL) {
			continue
		}
		check("websocket to "+c.URL, fmt.Sprint(c.URL, c.Headers))
		for _, e := range c.Sent() {
			check("frame to "+c.URL, e.Text)
		}
	}
}

// CredentialParams are the Subsonic authentication query parameters (u, t, s,
// p, apiKey, jwt) that must never leave Navidrome.
var CredentialParams = []string{"u", "t", "s", "p", "apiKey", "jwt"}

// BadExternalURL returns why rawURL must not be handed to Discord or a third
// party ("" if it may): not https, no host, user info, a Subsonic credential
// parameter, or a private, loopback, link-local, CGNAT or local-only host.
func BadExternalURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		return "malformed URL (unescaped input?): " + err.Error()
	case u.Scheme != "https":
		return "not https"
	case u.Host == "" || u.Hostname() == "":
		return "no host"
	case u.User != nil:
		return "user info in the URL"
	}
	for k := range u.Query() {
		if slices.Contains(CredentialParams, k) {
			return "Subsonic credential parameter " + k + "="
		}
	}
	if privateHost(u.Hostname()) {
		return "private or local host " + u.Hostname()
	}
	return ""
}

func privateHost(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, s := range []string{".localhost", ".local", ".internal", ".lan", ".home.arpa"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	if name == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(name)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || netip.MustParsePrefix("100.64.0.0/10").Contains(ip)
}

// LeakScan is what ScanLeaks looked at and found.
type LeakScan struct {
	Lines    int // plugin log lines
	Errors   int // error texts: failed export calls and host services
	Host     int // requests the plugin made to host functions
	Requests int // HTTP requests (to Discord and third parties)
	Frames   int // websocket frames
	URLs     int // URL fields checked with BadExternalURL
	Findings []string
}

func (s *LeakScan) Add(o LeakScan) {
	s.Lines += o.Lines
	s.Errors += o.Errors
	s.Host += o.Host
	s.Requests += o.Requests
	s.Frames += o.Frames
	s.URLs += o.URLs
	s.Findings = append(s.Findings, o.Findings...)
}

func (s LeakScan) String() string {
	return fmt.Sprintf("%d log lines, %d error texts, %d host requests (%d HTTP requests, %d websocket frames), %d URL fields",
		s.Lines, s.Errors, s.Host, s.Requests, s.Frames, s.URLs)
}

// ScanLeaks checks everything the plugin logged, failed with, and asked the
// host to do (every recorded HostCall, faulted ones included):
//   - a token appears nowhere except the d.token of an Identify/Resume frame
//     and the Authorization header of an HTTP request to Discord;
//   - no canary (planted credentials, private hosts) reaches an HTTP request
//     or a websocket frame or URL;
//   - every URL field sent out — HTTP request URLs, the urls registered with
//     external-assets, and the *_url fields of presence updates — passes
//     BadExternalURL; activity images are mp: asset paths; the websocket URL
//     is wss:// on a Discord host;
//   - every frame is JSON of at most MaxFrameBytes.
func (h *Harness) ScanLeaks(tokens, canaries []string) LeakScan {
	var s LeakScan
	find := func(format string, args ...any) { s.Findings = append(s.Findings, fmt.Sprintf(format, args...)) }
	hasToken := func(text string) string {
		for _, tok := range tokens {
			if tok != "" && strings.Contains(text, tok) {
				return tok
			}
		}
		return ""
	}
	canary := func(where, text string) {
		for _, c := range canaries {
			if c != "" && strings.Contains(text, c) {
				find("%s carries %q: %.300s", where, c, text)
			}
		}
	}
	for _, l := range h.Logs {
		s.Lines++
		if hasToken(l.Msg) != "" {
			find("token in a %s log line from %s: %.300s", l.Level, l.Func, l.Msg)
		}
	}
	errs := []string{}
	for _, c := range h.Calls {
		if c.Err != nil {
			errs = append(errs, c.Func+": "+c.Err.Error())
		}
	}
	for _, o := range h.Sched.Ops {
		errs = append(errs, "scheduler_"+o.Kind+": "+o.Err)
	}
	for _, o := range h.WS.Ops {
		errs = append(errs, "websocket_"+o.Kind+": "+o.Err)
	}
	for _, c := range h.HTTP.Calls {
		errs = append(errs, "http_send: "+c.Err)
	}
	for _, e := range errs {
		if !strings.HasSuffix(e, ": ") {
			s.Errors++
			if hasToken(e) != "" {
				find("token in error text %.300s", e)
			}
		}
	}
	for _, c := range h.HostCalls {
		s.Host++
		where := fmt.Sprintf("host call #%d %s (in %s)", c.N, c.Name, c.Export)
		switch c.Name {
		case "websocket_sendtext":
			var req struct{ ConnectionID, Message string }
			_ = json.Unmarshal(c.Request, &req)
			s.Frames++
			s.scanFrame(where, req.Message, hasToken, canary, find)
		case "websocket_connect":
			var req struct {
				URL     string
				Headers map[string]string
			}
			_ = json.Unmarshal(c.Request, &req)
			if u, err := url.Parse(req.URL); err != nil || u.Scheme != "wss" || !IsDiscordHost(req.URL) {
				find("%s: gateway URL %q is not wss:// on a Discord host", where, req.URL)
			}
			all := fmt.Sprint(req.URL, req.Headers)
			canary(where, all)
			if hasToken(all) != "" {
				find("%s: token in the gateway URL or headers", where)
			}
		case "http_send":
			var req struct{ Request host.HTTPRequest }
			_ = json.Unmarshal(c.Request, &req)
			s.Requests++
			s.scanHTTP(where, req.Request, hasToken, canary, find)
		default:
			if tok := hasToken(string(c.Request)); tok != "" {
				find("%s: token in the request %.300s", where, c.Request)
			}
		}
	}
	return s
}

func (s *LeakScan) checkURL(where, field, u string, find func(string, ...any)) {
	s.URLs++
	if why := BadExternalURL(u); why != "" {
		find("%s: %s %q: %s", where, field, u, why)
	}
}

func (s *LeakScan) scanHTTP(where string, r host.HTTPRequest, hasToken func(string) string, canary func(string, string), find func(string, ...any)) {
	s.checkURL(where, "request URL", r.URL, find)
	auth := r.Headers["Authorization"]
	var other []string
	for k, v := range r.Headers {
		if k != "Authorization" {
			other = append(other, k+": "+v)
		}
	}
	body := string(r.Body)
	canary(where, fmt.Sprint(r.URL, " ", r.Headers, " ", body))
	if hasToken(r.URL+" "+strings.Join(other, " ")+" "+body) != "" || (!IsDiscordHost(r.URL) && hasToken(auth) != "") {
		find("%s: token sent to %s outside Discord's Authorization header", where, r.URL)
	}
	if strings.HasSuffix(r.URL, "/external-assets") && IsDiscordHost(r.URL) {
		var reg struct{ URLs []string }
		if err := json.Unmarshal(r.Body, &reg); err != nil {
			find("%s: external-assets body is not JSON: %.200s", where, body)
		}
		for _, u := range reg.URLs {
			s.checkURL(where, "registered image URL", u, find)
		}
	}
}

func (s *LeakScan) scanFrame(where, frame string, hasToken func(string) string, canary func(string, string), find func(string, ...any)) {
	if len(frame) > MaxFrameBytes {
		find("%s: frame of %d bytes exceeds %d", where, len(frame), MaxFrameBytes)
	}
	var f struct {
		Op *int
		D  json.RawMessage
	}
	if err := json.Unmarshal([]byte(frame), &f); err != nil || f.Op == nil {
		find("%s: frame is not a JSON gateway payload: %.200s", where, frame)
		return
	}
	canary(where, frame)
	if tok := hasToken(frame); tok != "" {
		var d struct{ Token string }
		_ = json.Unmarshal(f.D, &d)
		if (*f.Op != 2 && *f.Op != 6) || d.Token != tok || strings.Count(frame, tok) != 1 {
			find("%s: token outside the d.token of Identify/Resume: %.300s", where, frame)
		}
	}
	if *f.Op != 3 {
		return
	}
	var p struct {
		Activities []struct {
			DetailsURL string `json:"details_url"`
			StateURL   string `json:"state_url"`
			Assets     struct {
				LargeImage string `json:"large_image"`
				SmallImage string `json:"small_image"`
				LargeURL   string `json:"large_url"`
			} `json:"assets"`
		} `json:"activities"`
	}
	if err := json.Unmarshal(f.D, &p); err != nil {
		find("%s: op 3 d does not decode: %v", where, err)
	}
	for _, a := range p.Activities {
		for field, u := range map[string]string{"details_url": a.DetailsURL, "state_url": a.StateURL, "assets.large_url": a.Assets.LargeURL} {
			if u != "" {
				s.checkURL(where, field, u, find)
			}
		}
		for field, img := range map[string]string{"assets.large_image": a.Assets.LargeImage, "assets.small_image": a.Assets.SmallImage} {
			if img != "" && !strings.HasPrefix(img, "mp:external/") {
				find("%s: %s %q is not an mp:external/ asset path", where, field, img)
			}
		}
	}
}

// AssertNoLeaks runs ScanLeaks and reports every finding as a test error.
func (h *Harness) AssertNoLeaks(tokens, canaries []string) LeakScan {
	h.T.Helper()
	s := h.ScanLeaks(tokens, canaries)
	for _, f := range s.Findings {
		h.T.Errorf("leak scan: %s", f)
	}
	return s
}
