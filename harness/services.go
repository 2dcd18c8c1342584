package harness

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/navidrome/navidrome/plugins/host"
)

// Config serves the same string map as the extism manifest Config
// (plugins/host_config.go): GetInt parses base-10 int64, Keys is sorted.
type Config map[string]string

var _ host.ConfigService = Config(nil)

func (c Config) Get(_ context.Context, key string) (string, bool) {
	v, ok := c[key]
	return v, ok
}

func (c Config) GetInt(_ context.Context, key string) (int64, bool) {
	n, err := strconv.ParseInt(c[key], 10, 64)
	return n, err == nil
}

func (c Config) Keys(_ context.Context, prefix string) []string {
	keys := []string{}
	for k := range c {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Artwork returns <Base>/share/img/<id>[?size=n] like core/publicurl (which
// signs the id; the fake keeps it readable), or, when URL is set, URL with
// "{id}" replaced by the id (to plant private or credentialed URLs). It never
// fails.
type Artwork struct {
	Base string
	URL  string
}

var _ host.ArtworkService = (*Artwork)(nil)

func (a *Artwork) url(id string, size int32) (string, error) {
	if a.URL != "" {
		return strings.ReplaceAll(a.URL, "{id}", id), nil
	}
	u := a.Base + "/share/img/" + id
	if size > 0 {
		u += fmt.Sprintf("?size=%d", size)
	}
	return u, nil
}

func (a *Artwork) GetArtistUrl(_ context.Context, id string, size int32) (string, error) {
	return a.url(id, size)
}
func (a *Artwork) GetAlbumUrl(_ context.Context, id string, size int32) (string, error) {
	return a.url(id, size)
}
func (a *Artwork) GetTrackUrl(_ context.Context, id string, size int32) (string, error) {
	return a.url(id, size)
}
func (a *Artwork) GetPlaylistUrl(_ context.Context, id string, size int32) (string, error) {
	return a.url(id, size)
}

// Users returns the configured (granted) users; GetAdmins filters IsAdmin.
type Users struct{ List []host.User }

var _ host.UsersService = (*Users)(nil)

func (u *Users) GetUsers(context.Context) ([]host.User, error) { return u.List, nil }
func (u *Users) GetAdmins(context.Context) ([]host.User, error) {
	var out []host.User
	for _, x := range u.List {
		if x.IsAdmin {
			out = append(out, x)
		}
	}
	return out, nil
}

// Route answers requests whose method matches and whose URL starts with Prefix.
type Route struct {
	Method string // "" matches any method
	Prefix string
	Resp   host.HTTPResponse
	Err    string // when set, the request fails with this error instead
	// Hang: the service never answers; the request fails as Go's client does when
	// the request's timeout runs out, and HTTPCall.Waited holds that timeout.
	Hang bool
}

// HTTPCall records one http_send.
type HTTPCall struct {
	At      time.Time
	Request host.HTTPRequest // Method upper-cased, "" → GET
	Status  int32
	Err     string
	Waited  time.Duration // how long the request kept the call waiting (Hang: its timeout)
	Via     *Result       // the export call that sent it (nil outside a call)
}

// HTTP fakes host.HTTPService (plugins/host_httpclient.go): http/https only,
// hosts checked against requiredHosts with the same pattern rule (port cut with
// net.SplitHostPort); without requiredHosts, IP-literal private/loopback
// addresses and "localhost" are refused. Unrouted requests fail.
type HTTP struct {
	clock  *Clock
	via    func() *Result
	hosts  []string
	Routes []Route
	Calls  []HTTPCall
}

var _ host.HTTPService = (*HTTP)(nil)

func (h *HTTP) Send(_ context.Context, req host.HTTPRequest) (*host.HTTPResponse, error) {
	req.Method = normMethod(req.Method)
	resp, err := h.route(req)
	h.record(req, resp, err)
	return resp, err
}

func normMethod(m string) string {
	if m == "" {
		return "GET"
	}
	return strings.ToUpper(m)
}

// record adds one request and its outcome to Calls.
func (h *HTTP) record(req host.HTTPRequest, resp *host.HTTPResponse, err error) {
	req.Method = normMethod(req.Method)
	call := HTTPCall{At: h.clock.Now(), Request: req}
	if h.via != nil {
		call.Via = h.via()
	}
	if err != nil && strings.Contains(err.Error(), "Client.Timeout exceeded") {
		call.Waited = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	if err != nil {
		call.Err = err.Error()
	} else {
		call.Status = resp.StatusCode
	}
	h.Calls = append(h.Calls, call)
}

func (h *HTTP) route(req host.HTTPRequest) (*host.HTTPResponse, error) {
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("invalid URL scheme %q: must be http or https", u.Scheme)
	}
	if err := h.checkHost(u.Host); err != nil {
		return nil, err
	}
	for _, r := range h.Routes {
		if (r.Method == "" || r.Method == req.Method) && strings.HasPrefix(req.URL, r.Prefix) {
			if r.Hang {
				h.clock.Sleep(time.Duration(req.TimeoutMs) * time.Millisecond)
				return nil, fmt.Errorf("%s %q: context deadline exceeded (Client.Timeout exceeded while awaiting headers)", req.Method, req.URL)
			}
			if r.Err != "" {
				return nil, fmt.Errorf("%s", r.Err)
			}
			resp := r.Resp
			return &resp, nil
		}
	}
	return nil, fmt.Errorf("harness: no route for %s %s", req.Method, req.URL)
}

func (h *HTTP) checkHost(hostport string) error {
	name := hostport
	if hn, _, err := net.SplitHostPort(hostport); err == nil {
		name = hn
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if len(h.hosts) > 0 {
		for _, p := range h.hosts {
			if matchHostPattern(p, name) {
				return nil
			}
		}
		return fmt.Errorf("host %q is not allowed", hostport)
	}
	ip := net.ParseIP(name)
	if strings.EqualFold(name, "localhost") || ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast()) {
		return fmt.Errorf("host %q is not allowed: private/loopback addresses require explicit requiredHosts in manifest", hostport)
	}
	return nil
}

// SubsonicCall records one subsonicapi_call / subsonicapi_callraw.
type SubsonicCall struct {
	At  time.Time
	Raw bool
	URI string // as the plugin sent it
	Err string
}

// SubsonicResponse is what a routed endpoint answers.
type SubsonicResponse struct {
	ContentType string
	Body        []byte
}

// Subsonic fakes host.SubsonicAPIService (plugins/host_subsonicapi.go): the
// 'u' parameter is required and must name a granted user (Users), only the last
// path element selects the endpoint (Routes, e.g. "getCoverArt"); an unrouted
// endpoint gets chi's plain 404, as from Navidrome's router.
type Subsonic struct {
	clock  *Clock
	users  *Users
	Routes map[string]SubsonicResponse
	Calls  []SubsonicCall
}

var _ host.SubsonicAPIService = (*Subsonic)(nil)

func (s *Subsonic) Call(_ context.Context, uri string) (string, error) {
	resp, err := s.serve(uri, false)
	return string(resp.Body), err
}

func (s *Subsonic) CallRaw(_ context.Context, uri string) (string, []byte, error) {
	resp, err := s.serve(uri, true)
	return resp.ContentType, resp.Body, err
}

func (s *Subsonic) serve(uri string, raw bool) (SubsonicResponse, error) {
	resp, err := s.route(uri)
	call := SubsonicCall{At: s.clock.Now(), Raw: raw, URI: uri}
	if err != nil {
		call.Err = err.Error()
	}
	s.Calls = append(s.Calls, call)
	return resp, err
}

func (s *Subsonic) route(uri string) (SubsonicResponse, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return SubsonicResponse{}, fmt.Errorf("invalid URL format: %w", err)
	}
	name := u.Query().Get("u")
	if name == "" {
		return SubsonicResponse{}, fmt.Errorf("missing required parameter 'u' (username)")
	}
	if !slices.ContainsFunc(s.users.List, func(x host.User) bool { return x.UserName == name }) {
		return SubsonicResponse{}, fmt.Errorf("user %s is not authorized for this plugin", name)
	}
	if r, ok := s.Routes[path.Base(u.Path)]; ok {
		return r, nil
	}
	return SubsonicResponse{ContentType: "text/plain; charset=utf-8", Body: []byte("404 page not found\n")}, nil
}
