package retention

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/backstop-io/backstop/api/v1alpha1"
)

func i32(v int32) *int32 { return &v }

func utc(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

// ok, failed and running make entries named after their time.
func ok(t time.Time) Entry { return Entry{Name: name(t), Time: t, Succeeded: true} }
func failed(t time.Time) Entry {
	return Entry{Name: name(t), Time: t, Failed: true}
}
func running(t time.Time) Entry { return Entry{Name: name(t), Time: t, Running: true} }
func name(t time.Time) string   { return "b-" + t.UTC().Format("2006-01-02T15:04") }

// kept builds the expected Keep list from name/reasons pairs.
func kept(pairs ...any) []Kept {
	var out []Kept
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, Kept{Name: name(pairs[i].(time.Time)), Reasons: pairs[i+1].([]Reason)})
	}
	return out
}

func names(ts ...time.Time) []string {
	var out []string
	for _, t := range ts {
		out = append(out, name(t))
	}
	return out
}

func r(rs ...Reason) []Reason { return rs }

func TestRetention_Apply(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	// Hourly backups at :10 over a day.
	d := func(h int) time.Time { return utc(2026, time.March, 2, h, 10) }

	tests := []struct {
		name       string
		entries    []Entry
		policy     *v1alpha1.RetentionPolicy
		loc        *time.Location
		wantDelete []string
		wantKeep   []Kept
	}{
		{
			name:    "nil policy keeps every success and three failures",
			entries: []Entry{ok(d(1)), ok(d(2)), failed(d(3)), failed(d(4)), failed(d(5)), failed(d(6)), ok(d(7))},
			policy:  nil,
			wantKeep: kept(
				d(7), r(ReasonNewest, ReasonNoKeepRule),
				d(6), r(ReasonFailedHistory), d(5), r(ReasonFailedHistory), d(4), r(ReasonFailedHistory),
				d(2), r(ReasonNoKeepRule), d(1), r(ReasonNoKeepRule),
			),
			wantDelete: names(d(3)),
		},
		{
			name:       "failedHistoryLimit only keeps every success",
			entries:    []Entry{ok(d(1)), failed(d(2)), ok(d(3)), failed(d(4))},
			policy:     &v1alpha1.RetentionPolicy{FailedHistoryLimit: i32(1)},
			wantKeep:   kept(d(4), r(ReasonFailedHistory), d(3), r(ReasonNewest, ReasonNoKeepRule), d(1), r(ReasonNoKeepRule)),
			wantDelete: names(d(2)),
		},
		{
			name:       "keep rules of zero count as none, as with restic",
			entries:    []Entry{ok(d(1)), ok(d(2))},
			policy:     &v1alpha1.RetentionPolicy{KeepDaily: i32(0), KeepHourly: i32(0)},
			wantKeep:   kept(d(2), r(ReasonNewest, ReasonNoKeepRule), d(1), r(ReasonNoKeepRule)),
			wantDelete: nil,
		},
		{
			name:       "keepLast",
			entries:    []Entry{ok(d(1)), ok(d(2)), ok(d(3)), ok(d(4)), ok(d(5))},
			policy:     &v1alpha1.RetentionPolicy{KeepLast: i32(2)},
			wantKeep:   kept(d(5), r(ReasonNewest, ReasonLast), d(4), r(ReasonLast)),
			wantDelete: names(d(3), d(2), d(1)),
		},
		{
			name:       "keepLast counts successes only",
			entries:    []Entry{ok(d(1)), ok(d(2)), failed(d(3)), running(d(4)), ok(d(5))},
			policy:     &v1alpha1.RetentionPolicy{KeepLast: i32(2), FailedHistoryLimit: i32(0)},
			wantKeep:   kept(d(5), r(ReasonNewest, ReasonLast), d(4), r(ReasonRunning), d(2), r(ReasonLast)),
			wantDelete: names(d(3), d(1)),
		},
		{
			name:    "input order does not matter",
			entries: []Entry{ok(d(3)), ok(d(5)), ok(d(1)), ok(d(4)), ok(d(2))},
			policy:  &v1alpha1.RetentionPolicy{KeepLast: i32(3)},
			wantKeep: kept(
				d(5), r(ReasonNewest, ReasonLast), d(4), r(ReasonLast), d(3), r(ReasonLast),
			),
			wantDelete: names(d(2), d(1)),
		},
		{
			name: "keepHourly keeps the newest of each hour that has one",
			entries: []Entry{
				ok(utc(2026, time.March, 2, 10, 5)), ok(utc(2026, time.March, 2, 10, 35)),
				ok(utc(2026, time.March, 2, 11, 5)), ok(utc(2026, time.March, 2, 11, 35)),
				// no backup at 12:xx: that hour does not count
				ok(utc(2026, time.March, 2, 13, 5)), ok(utc(2026, time.March, 2, 13, 35)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepHourly: i32(2)},
			wantKeep: kept(
				utc(2026, time.March, 2, 13, 35), r(ReasonNewest, ReasonHourly),
				utc(2026, time.March, 2, 11, 35), r(ReasonHourly),
			),
			wantDelete: names(utc(2026, time.March, 2, 13, 5), utc(2026, time.March, 2, 11, 5), utc(2026, time.March, 2, 10, 35), utc(2026, time.March, 2, 10, 5)),
		},
		{
			name: "keepDaily across a month and a year boundary",
			entries: []Entry{
				ok(utc(2025, time.December, 30, 2, 0)), ok(utc(2025, time.December, 30, 14, 0)),
				ok(utc(2025, time.December, 31, 2, 0)), ok(utc(2025, time.December, 31, 23, 59)),
				ok(utc(2026, time.January, 1, 0, 0)), ok(utc(2026, time.January, 1, 12, 0)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepDaily: i32(3)},
			wantKeep: kept(
				utc(2026, time.January, 1, 12, 0), r(ReasonNewest, ReasonDaily),
				utc(2025, time.December, 31, 23, 59), r(ReasonDaily),
				utc(2025, time.December, 30, 14, 0), r(ReasonDaily),
			),
			wantDelete: names(utc(2026, time.January, 1, 0, 0), utc(2025, time.December, 31, 2, 0), utc(2025, time.December, 30, 2, 0)),
		},
		{
			name: "keepDaily buckets follow the time zone",
			entries: []Entry{
				// 23:30 UTC on the 1st is 00:30 on the 2nd in Paris.
				ok(utc(2026, time.March, 1, 22, 30)), ok(utc(2026, time.March, 1, 23, 30)), ok(utc(2026, time.March, 2, 12, 0)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepDaily: i32(2)},
			loc:    paris,
			wantKeep: kept(
				utc(2026, time.March, 2, 12, 0), r(ReasonNewest, ReasonDaily),
				utc(2026, time.March, 1, 22, 30), r(ReasonDaily),
			),
			wantDelete: names(utc(2026, time.March, 1, 23, 30)),
		},
		{
			name: "keepDaily buckets in UTC by default",
			entries: []Entry{
				ok(utc(2026, time.March, 1, 22, 30)), ok(utc(2026, time.March, 1, 23, 30)), ok(utc(2026, time.March, 2, 12, 0)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepDaily: i32(2)},
			wantKeep: kept(
				utc(2026, time.March, 2, 12, 0), r(ReasonNewest, ReasonDaily),
				utc(2026, time.March, 1, 23, 30), r(ReasonDaily),
			),
			wantDelete: names(utc(2026, time.March, 1, 22, 30)),
		},
		{
			name: "keepWeekly uses ISO weeks across a year boundary",
			entries: []Entry{
				// 2025-12-28 is a Sunday (ISO 2025-W52); 2025-12-29 a Monday (ISO 2026-W01).
				ok(utc(2025, time.December, 21, 3, 0)), ok(utc(2025, time.December, 27, 3, 0)), ok(utc(2025, time.December, 28, 3, 0)),
				ok(utc(2025, time.December, 29, 3, 0)), ok(utc(2026, time.January, 1, 3, 0)), ok(utc(2026, time.January, 4, 3, 0)),
				ok(utc(2026, time.January, 5, 3, 0)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepWeekly: i32(3)},
			wantKeep: kept(
				utc(2026, time.January, 5, 3, 0), r(ReasonNewest, ReasonWeekly), // 2026-W02
				utc(2026, time.January, 4, 3, 0), r(ReasonWeekly), // 2026-W01
				utc(2025, time.December, 28, 3, 0), r(ReasonWeekly), // 2025-W52
			),
			wantDelete: names(
				utc(2026, time.January, 1, 3, 0), utc(2025, time.December, 29, 3, 0),
				utc(2025, time.December, 27, 3, 0), utc(2025, time.December, 21, 3, 0),
			),
		},
		{
			name: "keepMonthly across a year boundary, months without backups do not count",
			entries: []Entry{
				ok(utc(2025, time.October, 31, 3, 0)),
				ok(utc(2025, time.November, 1, 3, 0)), ok(utc(2025, time.November, 30, 3, 0)),
				// nothing in December
				ok(utc(2026, time.January, 1, 3, 0)), ok(utc(2026, time.January, 31, 3, 0)),
				ok(utc(2026, time.February, 1, 3, 0)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepMonthly: i32(3)},
			wantKeep: kept(
				utc(2026, time.February, 1, 3, 0), r(ReasonNewest, ReasonMonthly),
				utc(2026, time.January, 31, 3, 0), r(ReasonMonthly),
				utc(2025, time.November, 30, 3, 0), r(ReasonMonthly),
			),
			wantDelete: names(utc(2026, time.January, 1, 3, 0), utc(2025, time.November, 1, 3, 0), utc(2025, time.October, 31, 3, 0)),
		},
		{
			name: "keepYearly",
			entries: []Entry{
				ok(utc(2023, time.June, 1, 0, 0)), ok(utc(2024, time.January, 1, 0, 0)), ok(utc(2024, time.December, 31, 23, 0)),
				ok(utc(2025, time.December, 31, 23, 0)), ok(utc(2026, time.January, 1, 0, 0)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepYearly: i32(3)},
			wantKeep: kept(
				utc(2026, time.January, 1, 0, 0), r(ReasonNewest, ReasonYearly),
				utc(2025, time.December, 31, 23, 0), r(ReasonYearly),
				utc(2024, time.December, 31, 23, 0), r(ReasonYearly),
			),
			wantDelete: names(utc(2024, time.January, 1, 0, 0), utc(2023, time.June, 1, 0, 0)),
		},
		{
			name: "rules combine: kept if any rule keeps it",
			entries: []Entry{
				ok(utc(2025, time.November, 15, 3, 0)), ok(utc(2025, time.December, 20, 3, 0)),
				ok(utc(2026, time.January, 10, 3, 0)), ok(utc(2026, time.January, 11, 3, 0)),
				ok(utc(2026, time.January, 12, 3, 0)), ok(utc(2026, time.January, 12, 15, 0)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepLast: i32(1), KeepDaily: i32(2), KeepMonthly: i32(3)},
			wantKeep: kept(
				utc(2026, time.January, 12, 15, 0), r(ReasonNewest, ReasonLast, ReasonDaily, ReasonMonthly),
				utc(2026, time.January, 11, 3, 0), r(ReasonDaily),
				utc(2025, time.December, 20, 3, 0), r(ReasonMonthly),
				utc(2025, time.November, 15, 3, 0), r(ReasonMonthly),
			),
			wantDelete: names(utc(2026, time.January, 12, 3, 0), utc(2026, time.January, 10, 3, 0)),
		},
		{
			name: "a policy that keeps one day keeps only the newest success",
			entries: []Entry{
				ok(d(1)), ok(d(2)), failed(d(3)), failed(d(4)),
			},
			policy:     &v1alpha1.RetentionPolicy{KeepYearly: i32(0), KeepLast: i32(0), KeepDaily: i32(1), FailedHistoryLimit: i32(0)},
			wantKeep:   kept(d(2), r(ReasonNewest, ReasonDaily)),
			wantDelete: names(d(4), d(3), d(1)),
		},
		{
			name: "the newest success survives behind newer failures",
			entries: []Entry{
				ok(utc(2026, time.January, 1, 3, 0)), ok(utc(2026, time.January, 2, 3, 0)),
				failed(utc(2026, time.March, 1, 3, 0)), failed(utc(2026, time.March, 2, 3, 0)),
			},
			policy: &v1alpha1.RetentionPolicy{KeepHourly: i32(1), FailedHistoryLimit: i32(1)},
			wantKeep: kept(
				utc(2026, time.March, 2, 3, 0), r(ReasonFailedHistory),
				utc(2026, time.January, 2, 3, 0), r(ReasonNewest, ReasonHourly),
			),
			wantDelete: names(utc(2026, time.March, 1, 3, 0), utc(2026, time.January, 1, 3, 0)),
		},
		{
			name: "failedHistoryLimit keeps the newest failures",
			entries: []Entry{
				failed(d(1)), failed(d(2)), ok(d(3)), failed(d(4)), failed(d(5)),
			},
			policy:     &v1alpha1.RetentionPolicy{KeepLast: i32(5), FailedHistoryLimit: i32(2)},
			wantKeep:   kept(d(5), r(ReasonFailedHistory), d(4), r(ReasonFailedHistory), d(3), r(ReasonNewest, ReasonLast)),
			wantDelete: names(d(2), d(1)),
		},
		{
			name:       "failedHistoryLimit defaults to 3",
			entries:    []Entry{failed(d(1)), failed(d(2)), failed(d(3)), failed(d(4)), failed(d(5))},
			policy:     &v1alpha1.RetentionPolicy{KeepLast: i32(1)},
			wantKeep:   kept(d(5), r(ReasonFailedHistory), d(4), r(ReasonFailedHistory), d(3), r(ReasonFailedHistory)),
			wantDelete: names(d(2), d(1)),
		},
		{
			name:       "failedHistoryLimit of zero deletes every failure",
			entries:    []Entry{failed(d(1)), ok(d(2)), failed(d(3))},
			policy:     &v1alpha1.RetentionPolicy{FailedHistoryLimit: i32(0)},
			wantKeep:   kept(d(2), r(ReasonNewest, ReasonNoKeepRule)),
			wantDelete: names(d(3), d(1)),
		},
		{
			name: "running and pending are never deleted",
			entries: []Entry{
				running(d(1)), {Name: name(d(2)), Time: d(2)}, ok(d(3)), ok(d(4)), running(d(5)),
				{Name: name(d(6)), Time: d(6), Running: true, Failed: true},
			},
			policy: &v1alpha1.RetentionPolicy{KeepLast: i32(1), FailedHistoryLimit: i32(0)},
			wantKeep: kept(
				d(6), r(ReasonRunning), d(5), r(ReasonRunning), d(4), r(ReasonNewest, ReasonLast),
				d(2), r(ReasonRunning), d(1), r(ReasonRunning),
			),
			wantDelete: names(d(3)),
		},
		{
			name:    "no entries",
			entries: nil,
			policy:  &v1alpha1.RetentionPolicy{KeepLast: i32(1)},
		},
		{
			name:       "only failures",
			entries:    []Entry{failed(d(1)), failed(d(2))},
			policy:     &v1alpha1.RetentionPolicy{KeepLast: i32(1), FailedHistoryLimit: i32(1)},
			wantKeep:   kept(d(2), r(ReasonFailedHistory)),
			wantDelete: names(d(1)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := slices.Clone(tt.entries)
			got := Apply(tt.entries, tt.policy, tt.loc)
			if diff := cmp.Diff(tt.wantDelete, got.Delete, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Delete (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantKeep, got.Keep, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Keep (-want +got):\n%s", diff)
			}
			if !slices.Equal(input, tt.entries) {
				t.Errorf("Apply changed its input")
			}
		})
	}
}

// TestRetention_Invariants applies random policies to random histories and
// checks what must always hold.
func TestRetention_Invariants(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	base := utc(2024, time.January, 1, 0, 0)
	opt := func() *int32 {
		if rng.Intn(3) == 0 {
			return nil
		}
		return i32(int32(rng.Intn(5)))
	}
	for i := range 2000 {
		var entries []Entry
		for j := range rng.Intn(60) {
			e := Entry{Name: fmt.Sprintf("b-%d", j), Time: base.Add(time.Duration(rng.Int63n(int64(800 * 24 * time.Hour))))}
			switch rng.Intn(6) {
			case 0:
				e.Failed = true
			case 1:
				e.Running = true
			default:
				e.Succeeded = true
				e.Verified = rng.Intn(4) == 0
			}
			entries = append(entries, e)
		}
		policy := &v1alpha1.RetentionPolicy{
			KeepLast: opt(), KeepHourly: opt(), KeepDaily: opt(), KeepWeekly: opt(),
			KeepMonthly: opt(), KeepYearly: opt(), FailedHistoryLimit: opt(),
		}
		if rng.Intn(10) == 0 {
			policy = nil
		}
		res := Apply(entries, policy, nil)

		deleted := map[string]bool{}
		for _, n := range res.Delete {
			deleted[n] = true
		}
		if len(res.Delete)+len(res.Keep) != len(entries) || len(deleted) != len(res.Delete) {
			t.Fatalf("case %d: %d deleted + %d kept for %d entries", i, len(res.Delete), len(res.Keep), len(entries))
		}
		var newest, newestVerified *Entry
		failures := 0
		for k, e := range entries {
			if e.Succeeded && (newest == nil || e.Time.After(newest.Time)) {
				newest = &entries[k]
			}
			if e.Succeeded && e.Verified && (newestVerified == nil || e.Time.After(newestVerified.Time)) {
				newestVerified = &entries[k]
			}
			if e.Running && deleted[e.Name] {
				t.Errorf("case %d: running %s deleted", i, e.Name)
			}
			if e.Failed && !deleted[e.Name] {
				failures++
			}
		}
		if newest != nil && deleted[newest.Name] {
			t.Errorf("case %d: newest success %s deleted", i, newest.Name)
		}
		if newestVerified != nil && deleted[newestVerified.Name] {
			t.Errorf("case %d: newest verified %s deleted", i, newestVerified.Name)
		}
		limit := DefaultFailedHistoryLimit
		if policy != nil && policy.FailedHistoryLimit != nil {
			limit = int(*policy.FailedHistoryLimit)
		}
		if failures > limit {
			t.Errorf("case %d: %d failures kept, limit %d", i, failures, limit)
		}
		for _, k := range res.Keep {
			if len(k.Reasons) == 0 {
				t.Errorf("case %d: %s kept without a reason", i, k.Name)
			}
		}
	}
}

// TestRetention_KeepsNewestVerified: keepLast 1 with a newer Backup not
// verified (or whose drill failed) keeps the newest verified one too, and
// prunes what is older; once the newest is verified, the older verified
// one goes.
func TestRetention_KeepsNewestVerified(t *testing.T) {
	d := func(h int) time.Time { return utc(2026, time.March, 2, h, 0) }
	verified := func(t time.Time) Entry { e := ok(t); e.Verified = true; return e }
	policy := &v1alpha1.RetentionPolicy{KeepLast: i32(1)}

	res := Apply([]Entry{verified(d(1)), verified(d(2)), ok(d(3)), ok(d(4))}, policy, nil)
	if diff := cmp.Diff(kept(d(4), r(ReasonNewest, ReasonLast), d(2), r(ReasonNewestVerified)), res.Keep); diff != "" {
		t.Errorf("keep (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(names(d(3), d(1)), res.Delete); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}

	res = Apply([]Entry{verified(d(1)), verified(d(2)), ok(d(3)), verified(d(4))}, policy, nil)
	if diff := cmp.Diff(kept(d(4), r(ReasonNewest, ReasonNewestVerified, ReasonLast)), res.Keep); diff != "" {
		t.Errorf("keep (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(names(d(3), d(2), d(1)), res.Delete); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}
}
