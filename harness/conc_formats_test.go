package harness

// Everything the concurrency invariants know about the plugin's own formats
// lives here, so a change of the plugin's record layout is one edit.

import (
	"strconv"
	"strings"
)

// gwRecord is what the invariants read from the plugin's per-user
// gateway record.
type gwRecord struct {
	User    string
	Gen     int64  // connection generation
	Seq     int64  // last sequence number (valid if HasSeq)
	HasSeq  bool   //
	Session string // Discord session id ("" before READY)
}

// parseRecord reads one cache write: ok is false for keys that are not a
// gateway record, or values that do not parse. Today (src/state.rs
// save_session) the key is `gw.<user>` and the value a space-separated text
// `gen phase seq heartbeat attempts fatal status session_id resume_url`, seq
// being `-` when none.
func parseRecord(key string, value any) (rec gwRecord, ok bool) {
	user, isGw := strings.CutPrefix(key, "gw.")
	text, isText := value.(string)
	if !isGw || !isText {
		return rec, false
	}
	f := strings.Split(text, " ")
	if len(f) < 8 {
		return rec, false
	}
	gen, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return rec, false
	}
	rec = gwRecord{User: user, Gen: gen, Session: f[7]}
	if f[2] != "-" {
		if rec.Seq, err = strconv.ParseInt(f[2], 10, 64); err != nil {
			return rec, false
		}
		rec.HasSeq = true
	}
	return rec, true
}

// connUser returns the user a connection id belongs to (`<gen>:<user>`, as
// src/plugin.rs conn_id builds it), or the whole id.
func connUser(id string) string {
	if _, user, ok := strings.Cut(id, ":"); ok {
		return user
	}
	return id
}

// timerKind returns the kind of a plugin schedule id (`<kind>:<n>:<user>`,
// src/plugin.rs timer_id): "rc" reconnect, "b1"/"hb" heartbeats, "fl" flush…
func timerKind(id string) string {
	kind, _, _ := strings.Cut(id, ":")
	return kind
}
