package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/navidrome/navidrome/plugins/capabilities"
	"github.com/navidrome/navidrome/plugins/host"
	"github.com/navidrome/navidrome/plugins/types"

	"ndpresence/harness"
)

const (
	clientID  = "123456789012345678"
	token     = "tok-bench-SECRET"
	userName  = "alice"
	readySize = 2 << 20 // bytes of guilds/relationships padding in the big READY
)

// t0 is the virtual start; every steady-state call happens at t0+settle.
var (
	t0     = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	settle = 60 * time.Second
)

// shared holds what the plugin's own setup discovered (connection id, heartbeat
// schedule id, the READY text), so that the floor and the baseline are called
// with byte-identical inputs.
var shared = struct {
	conn, beat, ready string
}{conn: "1:" + userName, beat: "hb:1:" + userName}

// scenario is one export called in a steady state.
type scenario struct {
	key, label string
	export     string
	iters      int
	state      string // plugin state before each call: "ready" or "identifying"
	input      func() any
	wantOp     int // gateway op the plugin must send during each call (-1: none)
}

func track(id, title string) capabilities.TrackInfo {
	a := []types.ArtistRef{{ID: "ar-1", Name: "Mariza", MBID: "1a54d2e2-1e36-4f3c-9bd5-4b9f3ad1e0d1"}}
	return capabilities.TrackInfo{ID: id, Title: title, Album: "Fado em Mim", Artist: "Mariza", AlbumArtist: "Mariza",
		Artists: a, AlbumArtists: a, Duration: 215.4, TrackNumber: 3, DiscNumber: 1,
		MBZRecordingID: "5b1a4b1c-7c7e-4a0e-9d6e-0c9e4b7f1a21", MBZAlbumID: "8d1f5c43-2b0f-4a8e-b1de-3e7c0a0b9c11",
		MBZReleaseGroupID: "c2a7e0c9-4b61-3c5f-8d8b-5f0a2e9d7b33", LibraryID: 1, Path: "Mariza/Fado em Mim/03 - " + title + ".flac"}
}

func report(t capabilities.TrackInfo, state string, at time.Time) capabilities.PlaybackReportRequest {
	return capabilities.PlaybackReportRequest{Username: userName, Track: t, State: state, PositionMs: 10000,
		PlaybackRate: 1, PlayerId: "p1", PlayerName: "NavidromeUI", Timestamp: at.Unix()}
}

func text(msg string) func() any {
	return func() any { return capabilities.OnTextMessageRequest{ConnectionID: shared.conn, Message: msg} }
}

// smallDispatch is a friend's presence change, as a user account receives many.
const smallDispatch = `{"t":"PRESENCE_UPDATE","s":5,"op":0,"d":{"user":{"id":"300000000000000007"},"status":"online",` +
	`"client_status":{"desktop":"online"},"activities":[{"type":2,"name":"Spotify","details":"Barco Negro","state":"Amália Rodrigues",` +
	`"timestamps":{"start":1782907200000,"end":1782907410000}}],"guild_id":null}}`

var scenarios = []scenario{
	{key: "empty", label: "empty export (scrobble)", export: "nd_scrobbler_scrobble", iters: 200, state: "ready", wantOp: -1,
		input: func() any {
			return capabilities.ScrobbleRequest{Username: userName, Track: track("tr-b", "Ó Gente da Minha Terra"), Timestamp: t0.Add(settle).Unix()}
		}},
	// Navidrome asks before every scrobbler event it dispatches to the plugin.
	{key: "is_authorized", label: "is_authorized", export: "nd_scrobbler_is_authorized", iters: 200, state: "ready", wantOp: -1,
		input: func() any { return capabilities.IsAuthorizedRequest{Username: userName} }},
	{key: "now_playing", label: "now_playing", export: "nd_scrobbler_now_playing", iters: 200, state: "ready", wantOp: -1,
		input: func() any {
			return capabilities.NowPlayingRequest{Username: userName, Track: track("tr-b", "Ó Gente da Minha Terra"), Position: 10}
		}},
	{key: "playback_report", label: "playback_report (playing → presence)", export: "nd_scrobbler_playback_report", iters: 200, state: "ready", wantOp: 3,
		input: func() any { return report(track("tr-b", "Ó Gente da Minha Terra"), "playing", t0.Add(settle)) }},
	{key: "ack", label: "on_text HEARTBEAT_ACK", export: "nd_websocket_on_text_message", iters: 200, state: "ready", wantOp: -1,
		input: text(`{"op":11}`)},
	{key: "dispatch", label: "on_text small dispatch", export: "nd_websocket_on_text_message", iters: 200, state: "ready", wantOp: -1,
		input: text(smallDispatch)},
	// The track was reported a moment before: READY leaves its first update to the
	// lookups' timer (README: lookups off the report's path).
	{key: "ready2m", label: "on_text READY 2 MiB", export: "nd_websocket_on_text_message", iters: 15, state: "identifying", wantOp: -1,
		input: func() any { return capabilities.OnTextMessageRequest{ConnectionID: shared.conn, Message: shared.ready} }},
	{key: "heartbeat", label: "scheduler_callback heartbeat", export: "nd_scheduler_callback", iters: 200, state: "ready", wantOp: 1,
		input: func() any { return capabilities.SchedulerCallbackRequest{ScheduleID: shared.beat, IsRecurring: true} }},
}

func scenarioByKey(k string) scenario {
	for _, s := range scenarios {
		if s.key == k {
			return s
		}
	}
	panic("no scenario " + k)
}

// logoAsset is Discord's answer to registering the Navidrome logo, the image a
// presence shows when there is no public cover.
const logoAsset = `[{"url":"https://raw.githubusercontent.com/navidrome/website/refs/heads/master/assets/icons/logo.webp",` +
	`"external_asset_path":"external/mUd3zEs6rXWaw0ktHlVr2TMNIbgAquOsD8ZJv2ODqV4/https/raw.githubusercontent.com/navidrome/website/refs/heads/master/assets/icons/logo.webp"}]`

// options are the Load options every module gets: one configured user, no public
// Navidrome URL (Navidrome's default: the artwork service answers
// http://localhost/..., so no cover is registered, the logo is), Discord's
// external-assets endpoint answering, Navidrome's default log level.
func options(wasm, manifest string) harness.Options {
	cfg, err := harness.ConfigFromJSON(`{"clientid":"` + clientID + `","users":[{"username":"` + userName + `","token":"` + token + `"}]}`)
	if err != nil {
		panic(err)
	}
	return harness.Options{WasmPath: wasm, ManifestPath: manifest, Config: cfg, Start: t0,
		Users: []host.User{{UserName: userName, Name: "Alice"}}, LogLevel: logLevel,
		Setup: func(h *harness.Harness) {
			h.Artwork.Base = "http://localhost"
			h.HTTP.Routes = append(h.HTTP.Routes, harness.Route{Method: "POST",
				Prefix: "https://discord.com/api/v9/applications/" + clientID + "/external-assets",
				Resp:   host.HTTPResponse{StatusCode: 200, Body: []byte(logoAsset)}})
		}}
}

// prepare brings a full plugin (ours or a waterfall step) to the scenario's state
// by driving the real protocol through the fakes:
//
//	ready:       playback_report(playing A) at t0 → Hello → Identify → READY →
//	             presence A; then 60 s of heartbeats and ACKs. The next call is at t0+60 s.
//	identifying: playback_report(playing A) at t0+60 s → its reconnect timer dials →
//	             Hello → Identify; READY not yet
//	             delivered (the gateway has queued it; it is captured for the inputs).
func prepare(h *harness.Harness, state string) error {
	switch state {
	case "ready":
		if r := h.Call("nd_scrobbler_playback_report", report(track("tr-a", "Barco Negro"), "playing", t0), nil); r.Err != nil {
			return r.Err
		}
		h.Advance(settle)
		if len(h.WS.Conns) != 1 || !h.WS.Conns[0].Open || len(h.Gateway.FramesOn(h.WS.Conns[0], 3)) != 1 {
			return fmt.Errorf("setup: want one open connection with one presence sent, got %d conns, frames %v", len(h.WS.Conns), h.Gateway.Frames)
		}
		shared.conn = h.WS.Conns[0].ID
		shared.beat = ""
		for _, s := range h.Sched.Active() {
			if s.Recurring {
				shared.beat = s.ID
			}
		}
		if shared.beat == "" {
			return fmt.Errorf("setup: no recurring heartbeat schedule; active: %+v", h.Sched.Active())
		}
		return nil
	case "identifying":
		h.Gateway.ReadyJunk = readySize // the READY the gateway answers this Identify with
		h.Advance(settle)
		if r := h.CallNoPump("nd_scrobbler_playback_report", report(track("tr-a", "Barco Negro"), "playing", t0.Add(settle)), nil); r.Err != nil {
			return r.Err
		}
		for h.Clock.RunDue() { // the reconnect timer the report asked for (0 s) dials
		}
		if len(h.WS.Conns) != 1 || !h.DeliverOne() { // Hello → Identify; the gateway queues READY
			return fmt.Errorf("setup: no Hello delivered")
		}
		c := h.WS.Conns[0]
		if len(h.Gateway.FramesOn(c, 2)) != 1 {
			return fmt.Errorf("setup: no Identify after Hello: %v", h.Gateway.Frames)
		}
		if shared.ready == "" {
			// Capture the gateway's READY by delivering it once on a throwaway copy
			// of the state; the timed calls then get it as their input.
			snap := takeSnapshot(h)
			if !h.DeliverOne() {
				return fmt.Errorf("setup: the gateway queued no READY")
			}
			for _, e := range c.Events {
				if e.Kind == "recv" && strings.Contains(e.Text, `"READY"`) {
					shared.ready = e.Text
				}
			}
			snap.restore(h)
			if shared.ready == "" {
				return fmt.Errorf("setup: READY not found among %d events", len(c.Events))
			}
		}
		shared.conn = c.ID
		return nil
	}
	return fmt.Errorf("unknown state %q", state)
}

// snapshot is the host-side state a call can change: the cache and the schedules.
type snapshot struct {
	cache map[string]harness.CacheEntry
	sched map[string]harness.Schedule
}

func takeSnapshot(h *harness.Harness) snapshot {
	s := snapshot{cache: h.Cache.Dump(), sched: map[string]harness.Schedule{}}
	for _, a := range h.Sched.Active() {
		s.sched[a.ID] = a
	}
	return s
}

// restore puts the cache and the schedules back as they were, so that every timed
// call does the same work.
func (s snapshot) restore(h *harness.Harness) {
	ctx := context.Background()
	for k := range h.Cache.Dump() {
		if _, ok := s.cache[k]; !ok {
			_ = h.Cache.Remove(ctx, k)
		}
	}
	for k, e := range s.cache {
		ttl := int64(e.TTL / time.Second)
		switch v := e.Value.(type) {
		case string:
			_ = h.Cache.SetString(ctx, k, v, ttl)
		case int64:
			_ = h.Cache.SetInt(ctx, k, v, ttl)
		case float64:
			_ = h.Cache.SetFloat(ctx, k, v, ttl)
		case []byte:
			_ = h.Cache.SetBytes(ctx, k, v, ttl)
		}
	}
	now := map[string]bool{}
	for _, a := range h.Sched.Active() {
		now[a.ID] = true
		if _, ok := s.sched[a.ID]; !ok {
			_ = h.Sched.CancelSchedule(ctx, a.ID)
		}
	}
	for id, a := range s.sched {
		if now[id] {
			continue
		}
		if a.Recurring {
			_, _ = h.Sched.ScheduleRecurring(ctx, a.Cron, a.Payload, id)
		} else {
			_, _ = h.Sched.ScheduleOneTime(ctx, int32(a.Next.Sub(h.Clock.Now())/time.Second), a.Payload, id)
		}
	}
}

// connectBaseline opens the connection the baseline sends on and authenticates it
// with an Identify written straight into the fake (the baseline only sends presence).
// Hello and READY stay queued: nothing is pumped while the baseline is measured.
func connectBaseline(h *harness.Harness) error {
	ctx := context.Background()
	h.Gateway.SendHello = false
	if _, err := h.WS.Connect(ctx, "wss://gateway.discord.gg/?v=10&encoding=json", nil, shared.conn); err != nil {
		return err
	}
	return h.WS.SendText(ctx, shared.conn, `{"op":2,"d":{"token":"`+token+`","intents":0,"properties":{"os":"Linux","browser":"Discord Client","device":""}}}`)
}
