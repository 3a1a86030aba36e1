package connector

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinInterval is the shortest "every" schedule: shorter ones would poll a
// source harder than any sync needs.
const MinInterval = 10 * time.Second

// Schedule says when a connector runs. It satisfies river.PeriodicSchedule,
// so a host passes it to river.NewPeriodicJob as it is.
type Schedule interface {
	// Next answers the first time after t at which to run, or the zero time
	// for never.
	Next(t time.Time) time.Time
	// String answers the schedule as it was written.
	String() string
}

// ParseSchedule reads a connector's schedule: "every <duration>" (Go
// duration syntax, "every 5m", "every 1h30m", at least MinInterval), or a
// cron expression of five fields (minute hour day-of-month month
// day-of-week) or a descriptor (@hourly, @daily…). Cron expressions are read
// in UTC unless they begin with CRON_TZ=<zone>.
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("connector: the schedule is empty")
	}
	if rest, ok := strings.CutPrefix(s, "every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("connector: schedule %q: %q is not a duration such as 5m or 1h", s, strings.TrimSpace(rest))
		}
		if d < MinInterval {
			return nil, fmt.Errorf("connector: schedule %q: the interval must be at least %s", s, MinInterval)
		}
		return every{d: d, spec: s}, nil
	}
	spec := s
	if !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
		spec = "CRON_TZ=UTC " + spec
	}
	cs, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("connector: schedule %q is neither \"every <duration>\" nor a cron expression: %w", s, err)
	}
	if cd, ok := cs.(cron.ConstantDelaySchedule); ok && cd.Delay < MinInterval {
		return nil, fmt.Errorf("connector: schedule %q: the interval must be at least %s", s, MinInterval)
	}
	if cs.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("connector: schedule %q never fires", s)
	}
	return cronSchedule{s: cs, spec: s}, nil
}

// every runs at a fixed interval after each time it is asked about, as
// river.PeriodicInterval does.
type every struct {
	d    time.Duration
	spec string
}

func (e every) Next(t time.Time) time.Time { return t.Add(e.d) }
func (e every) String() string             { return e.spec }

type cronSchedule struct {
	s    cron.Schedule
	spec string
}

func (c cronSchedule) Next(t time.Time) time.Time { return c.s.Next(t) }
func (c cronSchedule) String() string             { return c.spec }
