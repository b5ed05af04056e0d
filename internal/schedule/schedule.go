// Package schedule parses BackupSchedule cron expressions and computes, from
// the schedule's status, which run is due now and when the next one is. It
// holds no timers and reads no clock: the controller passes "now".
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	// The manager image may have no zoneinfo; carry it in the binary.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// MinInterval is the shortest @every interval accepted: a backup is a Job,
// and a schedule faster than this would only pile them up.
const MinInterval = 10 * time.Second

// parser reads the standard five fields (minute hour day-of-month month
// day-of-week) and descriptors such as @daily and @every 6h.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// neverProbe is where Parse looks for a first run to reject expressions that
// can never fire (such as "0 0 30 2 *"). A fixed instant keeps Parse pure.
var neverProbe = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// Schedule is a parsed cron expression in its time zone. The zero value is
// not usable; get one from Parse.
type Schedule struct {
	expr string
	loc  *time.Location
	cron cron.Schedule
}

// Parse parses a cron expression in the given IANA time zone (nil or "" means
// UTC). The expression must not carry its own TZ= or CRON_TZ= prefix. Errors
// name the field at fault and carry the parser's message, for example
// `invalid schedule "61 * * * *": end of range (61) above maximum (59): 61`.
func Parse(expr string, timeZone *string) (Schedule, error) {
	loc := time.UTC
	if timeZone != nil && *timeZone != "" {
		l, err := time.LoadLocation(*timeZone)
		if err != nil {
			return Schedule{}, fmt.Errorf("invalid time zone %q: %w", *timeZone, err)
		}
		loc = l
	}

	trimmed := strings.TrimSpace(expr)
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return Schedule{}, fmt.Errorf("invalid schedule %q: a time zone belongs in spec.timeZone, not in the schedule", expr)
	}
	if trimmed == "" {
		return Schedule{}, fmt.Errorf("invalid schedule %q: empty", expr)
	}

	sched, err := parser.Parse(trimmed)
	if err != nil {
		return Schedule{}, fmt.Errorf("invalid schedule %q: %w", expr, err)
	}
	switch c := sched.(type) {
	case *cron.SpecSchedule:
		c.Location = loc
	case cron.ConstantDelaySchedule:
		if c.Delay < MinInterval {
			return Schedule{}, fmt.Errorf("invalid schedule %q: interval %s is shorter than %s", expr, givenInterval(trimmed, c.Delay), MinInterval)
		}
	default:
		return Schedule{}, fmt.Errorf("invalid schedule %q: unsupported schedule type %T", expr, sched)
	}
	if sched.Next(neverProbe.In(loc)).IsZero() {
		return Schedule{}, fmt.Errorf("invalid schedule %q: %w", expr, errNever)
	}
	return Schedule{expr: expr, loc: loc, cron: sched}, nil
}

var errNever = errors.New("never fires (no such date)")

// givenInterval is the interval of an @every expression as written. The cron
// parser raises an interval under a second to one second and drops fractions
// of a second, so its own value would misreport "@every 0s" as 1s.
func givenInterval(expr string, parsed time.Duration) time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(expr, "@every")))
	if err != nil {
		return parsed
	}
	return d
}

// String returns the expression as given to Parse.
func (s Schedule) String() string { return s.expr }

// Location returns the schedule's time zone.
func (s Schedule) Location() *time.Location { return s.loc }

// Next returns the first due time strictly after t, or the zero time if the
// schedule never fires again. For an @every schedule the due times are
// anchored at t (t + interval); Due anchors them at the last run instead.
func (s Schedule) Next(t time.Time) time.Time {
	return s.cron.Next(t)
}

// Due is where a schedule stands at a moment, computed by Schedule.Due.
type Due struct {
	// Missed is the most recent due time in (last run, now], or the zero
	// time if none has come. This is the one run to start now, unless
	// TooLate. Older due times in the window are never started.
	Missed time.Time
	// Next is the first due time after now (and after the last run), or the
	// zero time if the schedule never fires again.
	Next time.Time
	// TooLate is true when Missed is older than the starting deadline: it
	// must not be started.
	TooLate bool
	// Skipped counts the due times in (last run, now] that will not be
	// started: all of them but Missed, or all of them when TooLate.
	Skipped int
}

// Passed counts the due times in (last run, now]: Missed and those
// Skipped.
func (d Due) Passed() int {
	switch {
	case d.Missed.IsZero():
		return 0
	case d.TooLate:
		return d.Skipped
	}
	return d.Skipped + 1
}

// Due computes which run is due at now for a schedule created at created,
// whose newest run was scheduled for last (nil when none has run yet), with
// an optional starting deadline in seconds.
//
// It follows the Kubernetes CronJob controller, except that after downtime
// at most one missed run is started: the most recent, and only if it is
// inside the deadline. Once the caller records Missed as the last schedule
// time, the same due time is never returned again.
//
// The cost does not grow with the number of missed due times: a schedule
// firing every minute that missed a year of runs is answered with a few
// hundred evaluations of the cron expression.
func (s Schedule) Due(now, created time.Time, last *time.Time, startingDeadlineSeconds *int64) Due {
	earliest := created
	if last != nil && !last.IsZero() {
		earliest = *last
	}

	var d Due
	switch c := s.cron.(type) {
	case cron.ConstantDelaySchedule:
		d = dueEvery(c.Delay, earliest, now)
	case *cron.SpecSchedule:
		d.Missed = latest(c.Next, earliest, now)
		from := now
		if earliest.After(from) {
			from = earliest // a clock that went back never repeats a run
		}
		d.Next = c.Next(from)
		if !d.Missed.IsZero() {
			d.Skipped = count(c.Next, c, earliest, now)
		}
	}

	if d.Missed.IsZero() {
		return d
	}
	if startingDeadlineSeconds != nil {
		deadline := d.Missed.Add(time.Duration(*startingDeadlineSeconds) * time.Second)
		d.TooLate = deadline.Before(now)
	}
	if !d.TooLate {
		d.Skipped-- // Missed itself runs
	}
	return d
}

// dueEvery answers Due for an @every schedule, whose due times are
// earliest + k*delay (earliest truncated to the second, as cron does).
func dueEvery(delay time.Duration, earliest, now time.Time) Due {
	anchor := earliest.Truncate(time.Second)
	if !now.After(anchor) {
		return Due{Next: anchor.Add(delay)}
	}
	k := int64(now.Sub(anchor) / delay)
	d := Due{Next: anchor.Add(time.Duration(k+1) * delay)}
	if k > 0 {
		d.Missed = anchor.Add(time.Duration(k) * delay)
		d.Skipped = int(k)
	}
	return d
}

// latest returns the most recent due time in (after, upTo], or the zero time.
// It bisects on the start instant instead of walking every due time: for a
// cron expression next is monotonic, so the latest due time L satisfies
// next(x) <= upTo exactly when x < L.
func latest(next func(time.Time) time.Time, after, upTo time.Time) time.Time {
	if !upTo.After(after) {
		return time.Time{}
	}
	if first := next(after); first.IsZero() || first.After(upTo) {
		return time.Time{}
	}
	// Invariant: next(lo) <= upTo < next(hi) (a zero next counts as never).
	lo, hi := after, upTo
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if n := next(mid); !n.IsZero() && !n.After(upTo) {
			lo = mid
		} else {
			hi = mid
		}
	}
	// Due times fall on whole seconds, so (lo, hi] holds exactly one: L.
	return next(lo)
}

// count returns the number of due times of spec in (after, upTo]. It walks
// due times but counts a whole local day or hour at once when spec fires in
// it and no zone transition falls inside it, so its cost grows with the
// number of days that have runs, not with the number of runs. next is
// spec.Next (tests wrap it to count evaluations).
func count(next func(time.Time) time.Time, spec *cron.SpecSchedule, after, upTo time.Time) int {
	perHour := popcount(spec.Minute, 60) * popcount(spec.Second, 60)
	perDay := popcount(spec.Hour, 24) * perHour
	loc := spec.Location

	n := 0
	p := after // every due time <= p has been counted
	for {
		t := next(p)
		if t.IsZero() || t.After(upTo) {
			return n
		}
		lt := t.In(loc)
		y, m, day := lt.Date()
		dayStart := time.Date(y, m, day, 0, 0, 0, 0, loc)
		dayEnd := time.Date(y, m, day+1, 0, 0, 0, 0, loc)
		if dayStart.Hour() == 0 && dayEnd.Sub(dayStart) == 24*time.Hour &&
			wholeBlock(dayStart, dayEnd, t, p, upTo) {
			n += perDay
			p = dayEnd.Add(-time.Nanosecond)
			continue
		}
		hourStart := time.Date(y, m, day, lt.Hour(), 0, 0, 0, loc)
		hourEnd := hourStart.Add(time.Hour)
		if hourStart.Hour() == lt.Hour() && hourStart.Minute() == 0 &&
			wholeBlock(hourStart, hourEnd, t, p, upTo) {
			n += perHour
			p = hourEnd.Add(-time.Nanosecond)
			continue
		}
		n++
		p = t
	}
}

// wholeBlock reports whether the local block [start, end) holds t, lies
// inside (p, upTo], and has no zone transition inside it, so that every
// wall-clock time in it occurs exactly once.
func wholeBlock(start, end, t, p, upTo time.Time) bool {
	if t.Before(start) || !t.Before(end) || !start.After(p) || end.After(upTo) {
		return false
	}
	_, zoneEnd := start.ZoneBounds()
	return zoneEnd.IsZero() || !zoneEnd.Before(end)
}

// popcount counts the values below limit set in a cron field's bits.
func popcount(bits uint64, limit uint) int {
	n := 0
	for i := range limit {
		if bits&(1<<i) != 0 {
			n++
		}
	}
	return n
}
