package e2e

// The same package in Navidrome v0.61.2, the newest release without playback reports:
// there the plugin only gets now-playing calls and shows the track without a progress bar.

import (
	"net/url"
	"os"
	"testing"
	"time"
)

func TestNowPlayingFallbackNavidrome061(t *testing.T) {
	binary := os.Getenv("NDP_E2E_NAVIDROME_061")
	if binary == "" {
		t.Skip(os.Getenv("NDP_E2E_NAVIDROME_061_SKIP"))
	}
	ndp := requireEnv(t, "NDP_E2E_PACKAGE")
	music := makeLibrary(t)
	fake := startFakeDiscord(t)
	nd := startNavidrome(t, binary, music, ndp, fake.CAFile, port+1, shareURL)
	fake.Diagnose = func() string { return pluginProblems(nd.Log()) }
	nd.CreateAdmin(t)
	player := Subsonic{n: nd, Client: "e2e-legacy-player"}
	waitForLibrary(t, player)
	configurePlugin(t, nd)

	player.Call(t, "scrobble", url.Values{"id": {trackB.ID}, "submission": {"false"}})
	i := fake.WaitFrame(t, 0, 30*time.Second, "presence of track B", isPresence(trackB.Title))
	frames, conns, _ := fake.Snapshot()
	checkIdentify(t, frames[:i])
	a := presenceOf(t, frames[i]).Activities[0]
	if a.State != trackB.Artist || a.Timestamps.Start != 0 || a.Timestamps.End != 0 {
		t.Errorf("v0.61 presence: state %q, timestamps %+v (want the artist and no timestamps)", a.State, a.Timestamps)
	}
	if len(conns) != 1 {
		t.Errorf("%d gateway connections, want 1", len(conns))
	}
	checkLogs(t, nd.Log())
}
