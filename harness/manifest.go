package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
)

// Manifest is the part of manifest.json the harness needs (plugins/manifest_gen.go
// names; Go's decoder ignores unknown keys and matches keys case-insensitively,
// as Navidrome's does).
type Manifest struct {
	Name        string       `json:"name"`
	Author      string       `json:"author"`
	Version     string       `json:"version"`
	Permissions *Permissions `json:"permissions"`
	Config      *struct {
		Schema map[string]any `json:"schema"`
	} `json:"config"`
}

// HostsPermission is the shape of the http and websocket permissions.
type HostsPermission struct {
	RequiredHosts []string `json:"requiredHosts"`
}

// Permissions lists every key v0.63.2 knows; a non-nil field grants it.
type Permissions struct {
	HTTP        *HostsPermission `json:"http"`
	Websocket   *HostsPermission `json:"websocket"`
	Scheduler   *json.RawMessage `json:"scheduler"`
	Cache       *json.RawMessage `json:"cache"`
	Artwork     *json.RawMessage `json:"artwork"`
	Users       *json.RawMessage `json:"users"`
	Subsonicapi *json.RawMessage `json:"subsonicapi"`
	Library     *json.RawMessage `json:"library"`
	Kvstore     *json.RawMessage `json:"kvstore"`
	Taskqueue   *json.RawMessage `json:"taskqueue"`
	Matcher     *json.RawMessage `json:"matcher"`
}

// LoadManifest reads and checks manifest.json like ParseManifest (required
// fields, config.schema present when config is; schema compilation and the
// subsonicapi/matcher cross-checks are not reproduced).
func LoadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest JSON: %w", err)
	}
	switch {
	case m.Name == "" || m.Author == "" || m.Version == "":
		return nil, errors.New("validating manifest: name, author and version are required")
	case m.Config != nil && m.Config.Schema == nil:
		return nil, errors.New("validating manifest: config requires schema")
	}
	if m.Permissions == nil {
		m.Permissions = &Permissions{}
	}
	return &m, nil
}

// ConfigFromJSON turns the stored config JSON into the plugin's string map
// (parsePluginConfig in plugins/manager_loader.go): strings as is, any other
// value as its compact Go JSON re-encoding (object keys sorted).
func ConfigFromJSON(configJSON string) (map[string]string, error) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(configJSON), &raw); err != nil {
		return nil, fmt.Errorf("parsing plugin config: %w", err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out[k] = string(b)
	}
	return out, nil
}

// capabilityExports is the §2.5 table (registerCapability calls at v0.63.2).
var capabilityExports = map[string][]string{
	"Scrobbler":       {"nd_scrobbler_is_authorized", "nd_scrobbler_now_playing", "nd_scrobbler_scrobble", "nd_scrobbler_playback_report"},
	"WebSocket":       {"nd_websocket_on_text_message", "nd_websocket_on_binary_message", "nd_websocket_on_error", "nd_websocket_on_close"},
	"Scheduler":       {"nd_scheduler_callback"},
	"Lifecycle":       {"nd_on_init"},
	"TaskWorker":      {"nd_task_execute"},
	"Lyrics":          {"nd_lyrics_get_lyrics"},
	"SonicSimilarity": {"nd_get_sonic_similar_tracks", "nd_find_sonic_path"},
	"MetadataAgent": {"nd_get_artist_mbid", "nd_get_artist_url", "nd_get_artist_biography", "nd_get_similar_artists",
		"nd_get_artist_images", "nd_get_artist_top_songs", "nd_get_album_info", "nd_get_album_images",
		"nd_get_similar_songs_by_track", "nd_get_similar_songs_by_album", "nd_get_similar_songs_by_artist"},
}

// detectCapabilities mirrors plugins/capabilities.go: a capability is present
// when any one of its exports exists.
func detectCapabilities(exists func(string) bool) []string {
	var caps []string
	for c, fns := range capabilityExports {
		for _, fn := range fns {
			if exists(fn) {
				caps = append(caps, c)
				break
			}
		}
	}
	sort.Strings(caps)
	return caps
}

// validateCapabilities is ValidateWithCapabilities (same error texts).
func validateCapabilities(p *Permissions, caps []string) error {
	has := func(c string) bool { return slices.Contains(caps, c) }
	switch {
	case has("Scrobbler") && p.Users == nil:
		return errors.New("scrobbler capability requires 'users' permission to be declared in manifest")
	case p.Scheduler != nil && !has("Scheduler"):
		return errors.New("'scheduler' permission requires plugin to export 'nd_scheduler_callback' function")
	case p.Taskqueue != nil && !has("TaskWorker"):
		return errors.New("'taskqueue' permission requires plugin to export 'nd_task_execute' function")
	}
	return nil
}
