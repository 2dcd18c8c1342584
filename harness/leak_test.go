package harness

// Leak scans on planted values: Navidrome's artwork URL may be private or carry
// Subsonic credentials; none of it may reach Discord's external-assets endpoint,
// a presence frame or any third party. A public URL is the control: it must be
// registered, or the scan proves nothing.

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var scenarioScans lockedScan

// scanAll runs AssertNoLeaks for the rig's users and adds the counts to the
// suite's summary.
func (r *rig) scanAll(canaries ...string) LeakScan {
	r.t.Helper()
	var tokens []string
	for _, u := range r.users {
		tokens = append(tokens, u.token)
	}
	s := r.AssertNoLeaks(tokens, canaries)
	r.scanned = true
	scenarioScans.Lock()
	scenarioScans.Add(s)
	scenarioScans.Unlock()
	return s
}

// registered returns the URLs the plugin asked external-assets to register.
func (r *rig) registered() []string {
	var out []string
	for _, c := range r.HTTP.Calls {
		if strings.HasSuffix(c.Request.URL, "/external-assets") {
			var reg struct{ URLs []string }
			_ = json.Unmarshal(c.Request.Body, &reg)
			out = append(out, reg.URLs...)
		}
	}
	return out
}

func TestLeakArtworkURLs(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		canaries  []string
		public    bool
	}{
		{"localhost_http", "http://localhost:4533/share/img/{id}?size=300", []string{"localhost:4533"}, false},
		{"private_ip", "https://192.168.1.2/share/img/{id}?size=300", []string{"192.168.1.2"}, false},
		{"loopback_v6", "https://[::1]:4533/share/img/{id}", []string{"[::1]"}, false},
		{"subsonic_credentials", "https://music.example.com/rest/getCoverArt?id={id}&u=alice&t=SUBTOKEN123&s=SUBSALT456",
			[]string{"SUBTOKEN123", "SUBSALT456", "u=alice"}, false},
		{"api_key", "https://music.example.com/rest/getCoverArt?id={id}&apiKey=KEY789", []string{"KEY789"}, false},
		{"user_info", "https://alice:pw123@music.example.com/share/img/{id}", []string{"pw123"}, false},
		{"public_control", "https://music.example.com/share/img/{id}?size=300", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, map[string]any{"spotifylinks": true})
			enrichRoutes(r.Harness)
			r.tracks = enrichTracks
			r.Artwork.URL = tc.url
			c := r.ready(t, alice, "Lucky")
			r.report(alice, "paused", "Lucky")
			r.Advance(30 * time.Second)
			r.play(alice, "Lucky")
			r.Advance(time.Minute)
			want := strings.ReplaceAll(tc.url, "{id}", "t-lucky")
			got := r.registered()
			if has := strings.Contains(strings.Join(got, " "), want); has != tc.public {
				t.Errorf("artwork %s registered with external-assets: %v, want %v (registered %q)", want, has, tc.public, got)
			}
			s := r.scanAll(tc.canaries...)
			t.Logf("%s: registered %q; scanned %s", tc.name, got, s)
			if len(r.Gateway.FramesOn(c, 3)) == 0 {
				t.Error("no presence shown: the scan covered no presence frame")
			}
		})
	}
}

// TestLeakCoverArtArchiveRedirect: the Cover Art Archive answers with an
// http:// Location; what reaches Discord must be https.
func TestLeakCoverArtArchiveRedirect(t *testing.T) {
	r := newRig(t, map[string]any{"caaenabled": true, "spotifylinks": true})
	enrichRoutes(r.Harness)
	r.tracks = enrichTracks
	r.ready(t, alice, "Karma Police")
	got := r.registered()
	if !strings.Contains(strings.Join(got, " "), "https://archive.org/download/11111111-1111-4111-8111-111111111111/front.jpg") {
		t.Errorf("the CAA image was not registered as https: %q", got)
	}
	r.scanAll("http://archive.org")
}
