package harness

// Everything the concurrency invariants know about the plugin's own formats
// lives here, so a change of the plugin's record layout is one edit.

import (
	"strconv"
	"strings"
)

// gwRecord is what the invariants read from the plugin's gateway records.
type gwRecord struct {
	Key     string // the record written: the link or one connection's record
	User    string
	Gen     int64  // link: current generation; connection: its generation
	Phase   int64  // connection: its phase, which only moves forward; -1 for the link
	Seq     int64  // last sequence number (valid if HasSeq)
	HasSeq  bool   //
	Session string // Discord session id ("" before READY)
}

// parseRecord reads one cache write: ok is false for keys that are not a
// gateway record, or values that do not parse. Today (src/store.rs) there are
// two: the link `gw.<user>` = `gen idle attempts at seq session_id resume_url
// waiting identify_at`,
// written only by the reconnect timer, and each connection's record
// `cn.<gen>.<user>` = `phase seq heartbeat status ready ack session_id
// resume_url`, written only by its read loop; seq is `-` when none.
func parseRecord(key string, value any) (rec gwRecord, ok bool) {
	text, isText := value.(string)
	if !isText {
		return rec, false
	}
	f := strings.Split(text, " ")
	var seq, session string
	var err error
	if user, isLink := strings.CutPrefix(key, "gw."); isLink && len(f) == 9 {
		rec = gwRecord{Key: key, User: user, Phase: -1}
		if rec.Gen, err = strconv.ParseInt(f[0], 10, 64); err != nil {
			return rec, false
		}
		seq, session = f[4], f[5]
	} else if rest, isConn := strings.CutPrefix(key, "cn."); isConn && len(f) == 8 {
		gen, user, _ := strings.Cut(rest, ".")
		rec = gwRecord{Key: key, User: user}
		if rec.Gen, err = strconv.ParseInt(gen, 10, 64); err != nil {
			return rec, false
		}
		if rec.Phase, err = strconv.ParseInt(f[0], 10, 64); err != nil {
			return rec, false
		}
		seq, session = f[1], f[6]
	} else {
		return rec, false
	}
	rec.Session = session
	if seq != "-" {
		if rec.Seq, err = strconv.ParseInt(seq, 10, 64); err != nil {
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
