package harness

import (
	"fmt"
	"net/url"
	"strings"
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
