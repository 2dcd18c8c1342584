package harness

import (
	"sort"
	"time"
)

// Clock is the virtual time shared by every fake. Nothing in the harness reads
// the real clock and nothing runs in the background: timers fire only inside
// Advance (or RunDue, which the harness pump calls), in time order.
type Clock struct {
	now    time.Time
	seq    int
	timers []*timer
	// AfterFire runs after each timer callback fired by Advance; the harness
	// sets it to its pump so websocket traffic caused by a timer settles before
	// the next timer fires.
	AfterFire func()
}

type timer struct {
	at      time.Time
	seq     int // creation order breaks ties between timers due at the same instant
	fire    func()
	stopped bool
}

// NewClock starts a virtual clock at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the virtual time.
func (c *Clock) Now() time.Time { return c.now }

// At registers fire to run once the clock reaches at (a past at is due now).
func (c *Clock) At(at time.Time, fire func()) *timer {
	c.seq++
	t := &timer{at: at, seq: c.seq, fire: fire}
	c.timers = append(c.timers, t)
	return t
}

// Stop cancels a timer that has not fired yet.
func (t *timer) Stop() { t.stopped = true }

// popDue removes and returns the earliest live timer due at or before limit.
func (c *Clock) popDue(limit time.Time) *timer {
	live := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped {
			live = append(live, t)
		}
	}
	c.timers = live
	sort.SliceStable(c.timers, func(i, j int) bool {
		a, b := c.timers[i], c.timers[j]
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		return a.seq < b.seq
	})
	if len(c.timers) == 0 || c.timers[0].at.After(limit) {
		return nil
	}
	t := c.timers[0]
	c.timers = c.timers[1:]
	return t
}

// RunDue fires the earliest timer already due (at <= Now) and reports whether
// one fired. The clock does not move.
func (c *Clock) RunDue() bool {
	t := c.popDue(c.now)
	if t == nil {
		return false
	}
	t.fire()
	return true
}

// Advance moves the clock forward by d, firing every timer that falls due on
// the way in time order (the clock shows each timer's own due time while it
// fires), each followed by AfterFire. Timers created by a callback fire in the
// same Advance if they fall due before its end.
func (c *Clock) Advance(d time.Duration) {
	target := c.now.Add(d)
	for t := c.popDue(target); t != nil; t = c.popDue(target) {
		if t.at.After(c.now) {
			c.now = t.at
		}
		t.fire()
		if c.AfterFire != nil {
			c.AfterFire()
		}
	}
	c.now = target
}

// Sleep moves the clock forward by d without firing timers: a call blocked that
// long inside a host function (timers due meanwhile fire at the next Advance or
// RunDue, late, as Navidrome's would run beside the blocked call).
func (c *Clock) Sleep(d time.Duration) { c.now = c.now.Add(d) }

// Pending returns the due times of the live timers, earliest first.
func (c *Clock) Pending() []time.Time {
	var out []time.Time
	for _, t := range c.timers {
		if !t.stopped {
			out = append(out, t.at)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}
