package harness

import (
	"context"

	"github.com/navidrome/navidrome/plugins/capabilities"
)

// PlayTracker models how Navidrome v0.63.2 (core/scrobbler) hands playback
// events to a scrobbler plugin, for concurrent mode. ReportPlayback enqueues
// the report for the playback-report worker (playbackreport_worker.go: ONE
// goroutine for the whole server, draining a FIFO queue) and, for starting /
// playing with the player's scrobbling on, a now-playing entry for the
// now-playing worker (nowplaying_worker.go: another single goroutine; its
// queue is a map keyed by player id, so a newer entry of one player replaces
// an older one not yet dispatched, and a batch is dispatched in map order).
// Both workers call nd_scrobbler_is_authorized before each event (the
// adapter's IsAuthorized) and skip the event unless it answers true. The two
// workers, timer firings and websocket read loops run in parallel.
type PlayTracker struct {
	sim *Sim
	// NowPlaying: also dispatch nd_scrobbler_now_playing (default true).
	NowPlaying bool

	pr     []capabilities.PlaybackReportRequest
	prBusy bool
	np     map[string]capabilities.NowPlayingRequest
	npKeys []string // insertion order, shuffled per batch like a Go map
	npBusy bool
}

// NewPlayTracker returns the scrobbler dispatch of s's harness.
func NewPlayTracker(s *Sim) *PlayTracker {
	return &PlayTracker{sim: s, NowPlaying: true, np: map[string]capabilities.NowPlayingRequest{}}
}

// Report is one ReportPlayback: both workers are signalled at this instant.
func (p *PlayTracker) Report(req capabilities.PlaybackReportRequest) {
	p.pr = append(p.pr, req)
	if !p.prBusy {
		p.prBusy = true
		p.sim.Go("playback-report worker", p.prWorker)
	}
	if p.NowPlaying && (req.State == "starting" || req.State == "playing") {
		if _, ok := p.np[req.PlayerId]; !ok {
			p.npKeys = append(p.npKeys, req.PlayerId)
		}
		p.np[req.PlayerId] = capabilities.NowPlayingRequest{Username: req.Username, Track: req.Track, Position: int32(req.PositionMs / 1000)}
		if !p.npBusy {
			p.npBusy = true
			p.sim.Go("now-playing worker", p.npWorker)
		}
	}
}

// authorized is ScrobblerPlugin.IsAuthorized: any failure counts as false.
func (p *PlayTracker) authorized(ctx context.Context, user string) bool {
	var ok bool
	r := p.sim.h.invoke(ctx, "nd_scrobbler_is_authorized", capabilities.IsAuthorizedRequest{Username: user}, &ok)
	return r.Err == nil && ok
}

func (p *PlayTracker) prWorker(ctx context.Context) {
	for len(p.pr) > 0 {
		batch := p.pr
		p.pr = nil
		for _, req := range batch {
			if p.authorized(ctx, req.Username) {
				p.sim.h.invoke(ctx, "nd_scrobbler_playback_report", req, nil)
			}
		}
	}
	p.prBusy = false
}

func (p *PlayTracker) npWorker(ctx context.Context) {
	for len(p.npKeys) > 0 {
		keys, entries := p.npKeys, p.np
		p.npKeys, p.np = nil, map[string]capabilities.NowPlayingRequest{}
		p.sim.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		for _, k := range keys {
			req := entries[k]
			if p.authorized(ctx, req.Username) {
				p.sim.h.invoke(ctx, "nd_scrobbler_now_playing", req, nil)
			}
		}
	}
	p.npBusy = false
}
