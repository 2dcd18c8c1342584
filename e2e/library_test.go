package e2e

// A small music library made with sox: FLAC files of silence (a few KB each, exact
// durations) tagged with Vorbis comments in several scripts, emoji, quotes and
// backslashes, names longer than Discord's 128-character fields, with and without
// MusicBrainz ids.

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type Track struct {
	N                          int // track number, also the last digit of its MusicBrainz ids
	File, Title, Artist, Album string
	Seconds                    int
	MBIDs                      bool
	ID                         string // Navidrome's media-file id, after the scan
}

func (tr *Track) mbid(prefix string) string {
	return fmt.Sprintf("%s-1111-4222-8333-00000000000%d", prefix, tr.N)
}

// AlbumMBID is the MusicBrainz release id ("" for tracks tagged without ids).
func (tr *Track) AlbumMBID() string {
	if !tr.MBIDs {
		return ""
	}
	return tr.mbid("7d2c0000")
}

var (
	trackA = &Track{N: 1, File: "01-bach.flac", Title: "Прелюдия № 1 «До мажор»", Artist: "Иоганн Себастьян Бах",
		Album: "Хорошо темперированный клавир", Seconds: 600, MBIDs: true}
	trackB = &Track{N: 2, File: "02-night.flac", Title: "夜に駆ける 🌙✨", Artist: "夜の楽団",
		Album: "真夜中", Seconds: 420}
	trackC = &Track{N: 3, File: "03-quotes.flac", Title: `"Quoted" \ back\slash 'single' {braces} <tag> & amp`,
		Artist: `O'Brien "The Voice" — عمرو دياب`, Album: `Album "with" quotes`, Seconds: 300, MBIDs: true}
	trackD = &Track{N: 4, File: "04-long.flac", Title: strings.Repeat("Λόγος καὶ μῦθος — ", 11) + "τέλος",
		Artist: strings.Repeat("धुन 🎻 संगीत ", 12) + "अंत", Album: "Μακρύ", Seconds: 500}
	trackE = &Track{N: 5, File: "05-family.flac", Title: "👩‍👩‍👧‍👦 가족의 노래", Artist: "한국 합창단 🇰🇷",
		Album: "가족", Seconds: 240}
	allTracks = []*Track{trackA, trackB, trackC, trackD, trackE}
)

// writeTrack writes tr into dir: FLAC silence of its exact duration (sox), tagged with its
// title, artist, album, track number, date and the extra comments (KEY=value).
func writeTrack(t *testing.T, dir string, tr *Track, date string, extra ...string) {
	t.Helper()
	args := []string{"-n", "-r", "8000", "-c", "1", "-b", "16",
		"--comment", "TITLE=" + tr.Title,
		"--add-comment", "ARTIST=" + tr.Artist,
		"--add-comment", "ALBUM=" + tr.Album,
		"--add-comment", "ALBUMARTIST=" + tr.Artist,
		"--add-comment", fmt.Sprintf("TRACKNUMBER=%d", tr.N),
		"--add-comment", "DATE=" + date,
	}
	for _, c := range extra {
		args = append(args, "--add-comment", c)
	}
	args = append(args, filepath.Join(dir, tr.File), "trim", "0", fmt.Sprint(tr.Seconds))
	if out, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
		t.Fatalf("sox %s: %v\n%s", tr.File, err, out)
	}
}

// makeLibrary writes the tracks into a new folder and returns it.
func makeLibrary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, tr := range allTracks {
		var mbids []string
		if tr.MBIDs {
			mbids = []string{"MUSICBRAINZ_TRACKID=" + tr.mbid("0e6f1b9a"), "MUSICBRAINZ_ALBUMID=" + tr.AlbumMBID(),
				"MUSICBRAINZ_ARTISTID=" + tr.mbid("b10bbbfc"), "MUSICBRAINZ_RELEASETRACKID=" + tr.mbid("aaaa0000")}
		}
		writeTrack(t, dir, tr, "2024", mbids...)
	}
	if _, err := os.Stat(filepath.Join(dir, allTracks[0].File)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitForLibrary polls the Subsonic API (every 250 ms, the scan runs in the background
// after startup) until every track is in the library, checks that Navidrome kept the
// tags exactly, and fills in the ids.
func waitForLibrary(t *testing.T, s Subsonic) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := s.Call(t, "search3", url.Values{"query": {""}, "songCount": {"100"}, "artistCount": {"0"}, "albumCount": {"0"}})
		res, _ := r["searchResult3"].(map[string]any)
		songs, _ := res["song"].([]any)
		found, seen := 0, []string{}
		for _, so := range songs {
			m := so.(map[string]any)
			seen = append(seen, fmt.Sprintf("%q by %q (%v s)", m["title"], m["artist"], m["duration"]))
			for _, tr := range allTracks {
				if m["title"] == tr.Title && m["artist"] == tr.Artist && int(m["duration"].(float64)) == tr.Seconds {
					tr.ID = m["id"].(string)
					found++
				}
			}
		}
		if found == len(allTracks) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the library scan found %d of %d tracks with their tags within 60 s; Navidrome has:\n%s",
				found, len(allTracks), strings.Join(seen, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
