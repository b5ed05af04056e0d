package scale

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
)

// collected is a soakReporter that keeps the errors.
type collected struct{ errs []string }

func (c *collected) Helper()                      {}
func (c *collected) Logf(string, ...any)          {}
func (c *collected) Errorf(f string, args ...any) { c.errs = append(c.errs, fmt.Sprintf(f, args...)) }

// The soak's verdict is only as good as its accounting of due times: the
// skips recorded when the schedules are suspended at the end account for
// the due times the operator had not yet handled, but only near the end.
func TestCheckSoak_SuspendedSkipsAtTheEnd(t *testing.T) {
	end := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return end.Add(d) }
	backups := map[string]seenBackup{}
	for _, d := range []time.Duration{-60 * time.Second, -50 * time.Second, -40 * time.Second} {
		name := fmt.Sprintf("s-%d", at(d).Unix())
		backups[name] = seenBackup{schedule: "s", due: at(d), created: at(d + time.Second), phase: backstopv1alpha1.BackupSucceeded}
	}
	suspended := func(note string) eventsv1.Event {
		return eventsv1.Event{
			Regarding: corev1.ObjectReference{Kind: "BackupSchedule", Name: "s"},
			Reason:    controllers.ReasonSkippedSuspended,
			Note:      note,
		}
	}
	policyOf := map[string]backstopv1alpha1.ConcurrencyPolicy{"s": backstopv1alpha1.ConcurrencyForbid}
	for _, tc := range []struct {
		name  string
		note  string
		wants string // a part of the one error expected, or "" for none
	}{{
		name: "the due times the operator had not reached at the end",
		note: "skipped 3 backups due while the schedule was suspended, the newest at " + at(-10*time.Second).Format(time.RFC3339),
	}, {
		name:  "no suspended skip: the last 30 s have no record",
		note:  "skipped the backup due at " + at(10*time.Second).Format(time.RFC3339) + " while the schedule was suspended",
		wants: "the schedule stalled",
	}, {
		name:  "a suspended skip that reaches back before the end hides a stall",
		note:  "skipped 5 backups due while the schedule was suspended, the newest at " + at(0).Format(time.RFC3339),
		wants: "the schedule had stalled",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &collected{}
			checkSoak(rep, backups, []eventsv1.Event{suspended(tc.note)}, policyOf, nil, end, nil)
			if tc.wants == "" && len(rep.errs) > 0 {
				t.Fatalf("want no error, got %q", rep.errs)
			}
			if tc.wants != "" && (len(rep.errs) != 1 || !strings.Contains(rep.errs[0], tc.wants)) {
				t.Fatalf("want one error with %q, got %q", tc.wants, rep.errs)
			}
		})
	}
}
