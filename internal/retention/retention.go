// Package retention decides which Backups of a schedule to prune. It follows
// restic's forget policy: a successful Backup is kept when any rule keeps it.
// It is pure: the controller lists the Backups and deletes what it returns.
package retention

import (
	"cmp"
	"slices"
	"time"

	"github.com/backstop-io/backstop/api/v1alpha1"
)

// DefaultFailedHistoryLimit is how many failed Backups are kept when the
// policy does not say.
const DefaultFailedHistoryLimit = 3

// Entry is one Backup as retention sees it.
type Entry struct {
	// Name of the Backup.
	Name string
	// Time orders the Backups and picks their calendar buckets: the
	// scheduled time, or the completion time.
	Time time.Time
	// Succeeded, Failed and Running give the phase. An entry with none set
	// (a Backup not yet picked up) counts as running.
	Succeeded bool
	Failed    bool
	Running   bool
	// Verified: the Backup's newest drill passed. The newest verified
	// successful entry is always kept, beside the newest successful one.
	Verified bool
}

// Reason says why an entry is kept.
type Reason string

const (
	// ReasonNewest keeps the newest successful Backup, whatever the policy.
	ReasonNewest Reason = "newest"
	// ReasonNewestVerified keeps the newest verified Backup (its newest
	// drill passed), whatever the policy: a newer Backup that is not
	// verified yet, or failed its drill, never leaves a schedule without a
	// Backup proven to restore.
	ReasonNewestVerified Reason = "newest-verified"
	// ReasonLast keeps one of the keepLast newest successful Backups.
	ReasonLast Reason = "last"
	// ReasonHourly keeps the newest successful Backup of one of the keepHourly newest hours.
	ReasonHourly Reason = "hourly"
	// ReasonDaily keeps the newest successful Backup of one of the keepDaily newest days.
	ReasonDaily Reason = "daily"
	// ReasonWeekly keeps the newest successful Backup of one of the keepWeekly newest ISO weeks.
	ReasonWeekly Reason = "weekly"
	// ReasonMonthly keeps the newest successful Backup of one of the keepMonthly newest months.
	ReasonMonthly Reason = "monthly"
	// ReasonYearly keeps the newest successful Backup of one of the keepYearly newest years.
	ReasonYearly Reason = "yearly"
	// ReasonNoKeepRule keeps every successful Backup when the policy has no
	// keep rule with a count above zero.
	ReasonNoKeepRule Reason = "no-keep-rule"
	// ReasonFailedHistory keeps one of the failedHistoryLimit newest failed Backups.
	ReasonFailedHistory Reason = "failed-history"
	// ReasonRunning keeps a Backup still pending or running; those are never pruned.
	ReasonRunning Reason = "running"
)

// Kept is an entry that stays, and why.
type Kept struct {
	Name    string
	Reasons []Reason
}

// Result is the outcome of Apply. Both lists are ordered newest first.
type Result struct {
	// Delete names the Backups to delete.
	Delete []string
	// Keep names the Backups that stay, each with its reasons.
	Keep []Kept
}

// Apply decides which entries a policy keeps. Calendar buckets (hour, day,
// ISO week, month, year) are taken in loc; nil means UTC. A nil policy keeps
// every successful Backup and the DefaultFailedHistoryLimit newest failed ones.
//
// Successful entries, newest first: keepLast keeps the newest N; keepHourly
// keeps the newest entry of each of the newest N hours that have one, and so
// on for days, ISO weeks, months and years. An entry is kept if any rule keeps
// it, and the newest successful entry is always kept, and so is the newest
// verified one. As with restic, a policy
// without a keep rule above zero keeps every successful entry.
//
// Failed entries: the newest failedHistoryLimit are kept, older ones deleted.
// Running or pending entries are always kept.
func Apply(entries []Entry, policy *v1alpha1.RetentionPolicy, loc *time.Location) Result {
	if loc == nil {
		loc = time.UTC
	}
	if policy == nil {
		policy = &v1alpha1.RetentionPolicy{}
	}

	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b Entry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.Name, a.Name)
	})

	rules := []*rule{
		{reason: ReasonLast, count: value(policy.KeepLast), key: nil},
		{reason: ReasonHourly, count: value(policy.KeepHourly), key: hourKey},
		{reason: ReasonDaily, count: value(policy.KeepDaily), key: dayKey},
		{reason: ReasonWeekly, count: value(policy.KeepWeekly), key: weekKey},
		{reason: ReasonMonthly, count: value(policy.KeepMonthly), key: monthKey},
		{reason: ReasonYearly, count: value(policy.KeepYearly), key: yearKey},
	}
	anyRule := slices.ContainsFunc(rules, func(r *rule) bool { return r.count > 0 })
	failedLeft := DefaultFailedHistoryLimit
	if policy.FailedHistoryLimit != nil {
		failedLeft = int(*policy.FailedHistoryLimit)
	}

	var res Result
	newestSeen, newestVerifiedSeen := false, false
	for _, e := range sorted {
		var reasons []Reason
		switch {
		case e.Running || (!e.Succeeded && !e.Failed):
			reasons = []Reason{ReasonRunning}
		case e.Succeeded:
			if !newestSeen {
				newestSeen = true
				reasons = append(reasons, ReasonNewest)
			}
			if e.Verified && !newestVerifiedSeen {
				newestVerifiedSeen = true
				reasons = append(reasons, ReasonNewestVerified)
			}
			if !anyRule {
				reasons = append(reasons, ReasonNoKeepRule)
				break
			}
			local := e.Time.In(loc)
			for _, r := range rules {
				if r.keep(local) {
					reasons = append(reasons, r.reason)
				}
			}
		default: // failed
			if failedLeft > 0 {
				failedLeft--
				reasons = []Reason{ReasonFailedHistory}
			}
		}
		if len(reasons) == 0 {
			res.Delete = append(res.Delete, e.Name)
		} else {
			res.Keep = append(res.Keep, Kept{Name: e.Name, Reasons: reasons})
		}
	}
	return res
}

// bucket is a calendar bucket: the fields of a local time that name it.
type bucket [4]int

// rule is one keep rule while Apply walks the entries newest first.
type rule struct {
	reason Reason
	count  int
	// key names an entry's bucket; nil puts every entry in its own bucket.
	key  func(time.Time) bucket
	last *bucket
}

// keep reports whether the rule keeps the entry at local time t: its bucket
// differs from the one kept before (entries come newest first, so the first
// seen in a bucket is its newest) and buckets are left to keep.
func (r *rule) keep(t time.Time) bool {
	if r.count <= 0 {
		return false
	}
	if r.key != nil {
		k := r.key(t)
		if r.last != nil && *r.last == k {
			return false
		}
		r.last = &k
	}
	r.count--
	return true
}

func hourKey(t time.Time) bucket  { return bucket{t.Year(), int(t.Month()), t.Day(), t.Hour()} }
func dayKey(t time.Time) bucket   { return bucket{t.Year(), int(t.Month()), t.Day()} }
func monthKey(t time.Time) bucket { return bucket{t.Year(), int(t.Month())} }
func yearKey(t time.Time) bucket  { return bucket{t.Year()} }
func weekKey(t time.Time) bucket {
	y, w := t.ISOWeek()
	return bucket{y, w}
}

func value(p *int32) int {
	if p == nil {
		return 0
	}
	return int(*p)
}
