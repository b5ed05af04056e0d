package schedule

import (
	"time"

	"github.com/robfig/cron/v3"
)

// maxIntervalSearch bounds how far back ExpectedInterval looks for the two
// due times before now.
const maxIntervalSearch = 5 * 366 * 24 * time.Hour

// ExpectedInterval is the longest a healthy schedule goes without a new
// backup around now: the longer of the two gaps that meet at the most recent
// due time at or before now (the gap before it and the gap to the next due
// time). A weekday schedule "0 2 * * 1-5" gives 72h from Friday 02:00 to
// Monday 02:00 and 24h from Tuesday 02:00, so a backup missed on Tuesday is
// noticed a day later, and the weekend raises no alarm. An @every schedule
// gives its interval. It returns 0 when the schedule never fires again.
func (s Schedule) ExpectedInterval(now time.Time) time.Duration {
	if c, ok := s.cron.(cron.ConstantDelaySchedule); ok {
		return c.Delay
	}
	next := s.cron.Next(now)
	if next.IsZero() {
		return 0
	}
	after := s.cron.Next(next)
	window := max(after.Sub(next), time.Minute)
	for window <= maxIntervalSearch {
		// The due times in (now-2*window, now].
		var prev, last time.Time
		for t := s.cron.Next(now.Add(-2 * window)); !t.IsZero() && !t.After(now); t = s.cron.Next(t) {
			prev, last = last, t
		}
		if !prev.IsZero() {
			return max(last.Sub(prev), next.Sub(last))
		}
		window *= 2
	}
	// Fewer than two due times in years: the gap ahead is all there is.
	if after.IsZero() {
		return 0
	}
	return after.Sub(next)
}
