package harness

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/navidrome/navidrome/plugins/capabilities"
	"github.com/navidrome/navidrome/plugins/host"
	ndsched "github.com/navidrome/navidrome/scheduler"
	"github.com/robfig/cron/v3"
)

// invokeFunc calls a plugin export in a fresh instance (late-bound: the fakes
// exist before the compiled plugin does).
type invokeFunc func(ctx context.Context, fn string, input any) error

// Schedule is one registered schedule (a snapshot for assertions).
type Schedule struct {
	ID        string
	Payload   string
	Recurring bool
	Delay     int32  // one-time: requested delaySeconds
	Cron      string // recurring: the expression as given
	Created   time.Time
	Next      time.Time // next due time on the virtual clock
	Fired     int
}

// SchedOp records one call the plugin made to the scheduler service.
type SchedOp struct {
	At      time.Time
	Kind    string // "once", "recurring", "cancel"
	ID      string // requested id ("" = let the host pick)
	Result  string // id returned on success
	Delay   int32
	Cron    string
	Payload string
	Err     string
}

type schedEntry struct {
	Schedule
	timer *timer
	every cron.Schedule
}

// Scheduler fakes host.SchedulerService on the virtual clock, reproducing
// plugins/host_scheduler.go at v0.63.2: random id when empty, no replacement of
// an existing id, one-time ids deleted only after their callback returns,
// callbacks look the id up when they fire (so a cancel-then-reschedule of the
// same id inside its own callback is lost, as in Navidrome).
type Scheduler struct {
	clock  *Clock
	ids    *idSource
	call   invokeFunc
	active map[string]*schedEntry
	Ops    []SchedOp
	// Callbacks counts nd_scheduler_callback invocations per schedule id.
	Callbacks map[string]int
	// Missed lists ids whose timer fired after the entry was gone
	// (Navidrome logs "Schedule entry not found during callback").
	Missed []string
	// spawn, in concurrent mode, runs each firing on its own task (Navidrome:
	// time.AfterFunc's goroutine, or one robfig/cron goroutine per run); nil
	// runs it synchronously.
	spawn func(name string, body func(context.Context))
}

var _ host.SchedulerService = (*Scheduler)(nil)

func NewScheduler(clock *Clock, ids *idSource) *Scheduler {
	return &Scheduler{clock: clock, ids: ids, active: map[string]*schedEntry{}, Callbacks: map[string]int{}}
}

func (s *Scheduler) record(op SchedOp, id string, err error) (string, error) {
	op.At = s.clock.Now()
	if err != nil {
		op.Err = err.Error()
		id = ""
	}
	op.Result = id
	s.Ops = append(s.Ops, op)
	return id, err
}

func (s *Scheduler) ScheduleOneTime(_ context.Context, delaySeconds int32, payload, scheduleID string) (string, error) {
	op := SchedOp{Kind: "once", ID: scheduleID, Delay: delaySeconds, Payload: payload}
	id, err := s.claim(scheduleID)
	if err != nil {
		return s.record(op, "", err)
	}
	// time.AfterFunc with d <= 0 fires at once; here: at the next pump.
	e := &schedEntry{Schedule: Schedule{ID: id, Payload: payload, Delay: delaySeconds, Created: s.clock.Now(),
		Next: s.clock.Now().Add(time.Duration(delaySeconds) * time.Second)}}
	e.timer = s.clock.At(e.Next, func() {
		s.run("once "+id, func(ctx context.Context) {
			s.fire(ctx, id)
			delete(s.active, id) // deleted after the callback, whatever entry holds the id now
		})
	})
	s.active[id] = e
	return s.record(op, id, nil)
}

func (s *Scheduler) ScheduleRecurring(_ context.Context, cronExpression, payload, scheduleID string) (string, error) {
	op := SchedOp{Kind: "recurring", ID: scheduleID, Cron: cronExpression, Payload: payload}
	id, err := s.claim(scheduleID)
	if err != nil {
		return s.record(op, "", err)
	}
	every, err := parseEvery(cronExpression)
	if err != nil {
		return s.record(op, "", fmt.Errorf("failed to schedule task: %w", err))
	}
	e := &schedEntry{Schedule: Schedule{ID: id, Payload: payload, Recurring: true, Cron: cronExpression, Created: s.clock.Now()}, every: every}
	s.arm(e)
	s.active[id] = e
	return s.record(op, id, nil)
}

// arm schedules the next firing the way robfig/cron does: Next(now).
func (s *Scheduler) arm(e *schedEntry) {
	e.Next = e.every.Next(s.clock.Now())
	e.timer = s.clock.At(e.Next, func() {
		s.arm(e) // cron computes the next run before the job runs
		s.run("every "+e.ID, func(ctx context.Context) { s.fire(ctx, e.ID) })
	})
}

// parseEvery uses Navidrome's own parser (scheduler.ParseCrontab, so errors
// read exactly like Navidrome's) and accepts only the constant-delay forms the
// virtual clock simulates: "@every <d>" and bare Go durations.
func parseEvery(expr string) (cron.Schedule, error) {
	sched, err := ndsched.ParseCrontab(expr)
	if err != nil {
		return nil, err
	}
	if _, ok := sched.(cron.ConstantDelaySchedule); !ok {
		return nil, fmt.Errorf("harness: only @every/duration schedules are simulated, got %q", expr)
	}
	return sched, nil
}

func (s *Scheduler) claim(id string) (string, error) {
	if id == "" {
		id = s.ids.next()
	}
	if _, exists := s.active[id]; exists {
		return "", fmt.Errorf("schedule ID %q already exists", id)
	}
	return id, nil
}

func (s *Scheduler) CancelSchedule(_ context.Context, scheduleID string) error {
	op := SchedOp{Kind: "cancel", ID: scheduleID}
	e, ok := s.active[scheduleID]
	if !ok {
		_, err := s.record(op, "", fmt.Errorf("schedule ID %q not found", scheduleID))
		return err
	}
	delete(s.active, scheduleID)
	e.timer.Stop()
	_, err := s.record(op, scheduleID, nil)
	return err
}

// run runs one firing: on its own task in concurrent mode, else at once.
func (s *Scheduler) run(name string, body func(context.Context)) {
	if s.spawn != nil {
		s.spawn(name, body)
		return
	}
	body(context.Background())
}

// fire is invokeCallback: the entry is looked up by id at firing time.
func (s *Scheduler) fire(ctx context.Context, id string) {
	e, ok := s.active[id]
	if !ok {
		s.Missed = append(s.Missed, id)
		return
	}
	e.Fired++
	s.Callbacks[id]++
	_ = s.call(ctx, "nd_scheduler_callback", capabilities.SchedulerCallbackRequest{
		ScheduleID: id, Payload: e.Payload, IsRecurring: e.Recurring,
	})
}

// Active returns the registered schedules sorted by id.
func (s *Scheduler) Active() []Schedule {
	out := make([]Schedule, 0, len(s.active))
	for _, e := range s.active {
		out = append(out, e.Schedule)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get returns the active schedule with the given id.
func (s *Scheduler) Get(id string) (Schedule, bool) {
	e, ok := s.active[id]
	if !ok {
		return Schedule{}, false
	}
	return e.Schedule, true
}
