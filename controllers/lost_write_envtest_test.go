package controllers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/utils/ptr"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/schedule"
)

// lostStatusWrites is the client of an operator killed after its writes to
// Backups and before its status write: no status write lands.
type lostStatusWrites struct{ client.Client }

func (c lostStatusWrites) Status() client.SubResourceWriter { return lostWriter{c.Client.Status()} }

type lostWriter struct{ client.SubResourceWriter }

var errKilled = errors.New("the operator was killed before this write")

func (lostWriter) Patch(context.Context, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
	return errKilled
}

func (lostWriter) Update(context.Context, client.Object, ...client.SubResourceUpdateOption) error {
	return errKilled
}

var (
	missedRangeRE = regexp.MustCompile(`^missed (\d+) backups due after (?:the schedule was created at )?(\S+Z) and before (\S+Z)`)
	skipDueAtRE   = regexp.MustCompile(`the backup due at (\S+Z)`)
)

// TestBackupScheduleReconciler_LostStatusWrite: a reconcile creates the
// Backup of a due time after the operator was down across earlier ones, and
// its status write is lost with the operator. The next operator finds
// lastScheduleTime where it was. Whether it runs at the same due time or
// later, and after one or two lost writes, under every policy: each due time
// ends with exactly one record, a Backup or a skip (a MissedSchedule range,
// SkippedConcurrent), and none without.
func TestBackupScheduleReconciler_LostStatusWrite(t *testing.T) {
	for _, policy := range allPolicies {
		for _, tc := range []struct {
			name  string
			lost  []int // the minutes after last at which a status write is lost
			final int   // the minute after last of the reconcile that lands
		}{
			{"same due time", []int{3}, 3},
			{"a later due time", []int{3}, 5},
			{"two lost writes", []int{3, 5}, 6},
		} {
			t.Run(fmt.Sprintf("%s/%s", policy, tc.name), func(t *testing.T) {
				g := newScheduleRig(t, false)
				_, last := g.createSchedule(policy, false)
				g.setLastScheduleTime(last)
				at := func(m int) time.Time { return last.Add(time.Duration(m) * time.Minute) }
				killed := &BackupScheduleReconciler{Client: lostStatusWrites{g.r.Client}, APIReader: g.r.APIReader,
					Recorder: g.events, Clock: g.clk, Resync: time.Hour}
				for _, m := range tc.lost {
					g.clk.SetTime(at(m).Add(time.Second))
					if _, err := killed.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: g.ns, Name: "nightly"}}); !errors.Is(err, errKilled) {
						t.Fatalf("the reconcile at minute %d: %v, want its status write lost", m, err)
					}
					name := schedule.BackupName("nightly", at(m))
					if g.backup(name) != nil {
						g.waitBackupCached(name, "")
					}
				}
				if evs := g.events.withReason(ReasonMissedSchedule, ReasonSkippedConcurrent); len(evs) != 0 {
					t.Fatalf("events of reconciles whose status write was lost: %+v", evs)
				}

				g.clk.SetTime(at(tc.final).Add(time.Second))
				g.mustReconcile()

				records := map[int64][]string{} // by due time, in Unix seconds
				list := &backstopv1alpha1.BackupList{}
				if err := g.c.List(context.Background(), list, client.InNamespace(g.ns)); err != nil {
					t.Fatal(err)
				}
				for i := range list.Items {
					d := backupTime(&list.Items[i])
					records[d.Unix()] = append(records[d.Unix()], "Backup")
				}
				for _, ev := range g.events.withReason(ReasonMissedSchedule, ReasonSkippedConcurrent) {
					if m := missedRangeRE.FindStringSubmatch(ev.Note); m != nil {
						after, before := mustParse(t, m[2]), mustParse(t, m[3])
						n := 0
						for d := after.Add(time.Minute); d.Before(before); d = d.Add(time.Minute) {
							records[d.Unix()] = append(records[d.Unix()], ev.Reason+" range")
							n++
						}
						if strconv.Itoa(n) != m[1] {
							t.Errorf("%q covers %d due times", ev.Note, n)
						}
						continue
					}
					m := skipDueAtRE.FindStringSubmatch(ev.Note)
					if m == nil {
						t.Fatalf("a skip that names no due time: %q", ev.Note)
					}
					d := mustParse(t, m[1])
					records[d.Unix()] = append(records[d.Unix()], ev.Reason)
				}
				for m := 1; m <= tc.final; m++ {
					if got := records[at(m).Unix()]; len(got) != 1 {
						t.Errorf("due time %s (minute %d): records %v, want one", at(m).Format(time.RFC3339), m, got)
					}
				}
				if bs := g.schedule(); bs.Status.LastScheduleTime == nil || !bs.Status.LastScheduleTime.Time.Equal(at(tc.final)) {
					t.Errorf("lastScheduleTime %v, want %s", bs.Status.LastScheduleTime, at(tc.final))
				}
			})
		}
	}
}

// TestBackupScheduleReconciler_EventsOfOneReconcileAllLand: the events one
// reconcile sends about due times reach the API server each with its own
// note, through the manager's event recorder, which folds events it takes
// for repeats (same object, reason and related object) into one series and
// keeps only the first note.
func TestBackupScheduleReconciler_EventsOfOneReconcileAllLand(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline *int64
		lost     []int   // minutes after last whose status write is lost
		final    float64 // minutes after last of the reconcile that lands
		want     func(at func(int) string) []string
	}{
		{"catching up over two lost writes", nil, []int{3, 5}, 6.1, func(at func(int) string) []string {
			return []string{
				"missed 2 backups due after " + at(0) + " and before " + at(3),
				"missed 1 backups due after " + at(3) + " and before " + at(5),
			}
		}},
		{"down past the starting deadline", ptr.To[int64](30), nil, 5.7, func(at func(int) string) []string {
			return []string{
				"missed 4 backups due after " + at(0) + " and before " + at(5),
				"missed the backup due at " + at(5) + ": past startingDeadlineSeconds",
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newScheduleRig(t, false)
			g.r.Recorder = g.mgr.GetEventRecorder("backstop")
			bs, last := g.createSchedule(backstopv1alpha1.ConcurrencyAllow, false)
			if tc.deadline != nil {
				bs = g.schedule()
				bs.Spec.StartingDeadlineSeconds = tc.deadline
				if err := g.c.Update(context.Background(), bs); err != nil {
					t.Fatal(err)
				}
			}
			g.setLastScheduleTime(last)
			at := func(m int) time.Time { return last.Add(time.Duration(m) * time.Minute) }
			killed := &BackupScheduleReconciler{Client: lostStatusWrites{g.r.Client}, APIReader: g.r.APIReader,
				Recorder: g.r.Recorder, Clock: g.clk, Resync: time.Hour}
			for _, m := range tc.lost {
				g.clk.SetTime(at(m).Add(time.Second))
				if _, err := killed.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: g.ns, Name: "nightly"}}); !errors.Is(err, errKilled) {
					t.Fatalf("the reconcile at minute %d: %v, want its status write lost", m, err)
				}
				g.waitBackupCached(schedule.BackupName("nightly", at(m)), "")
			}
			g.clk.SetTime(last.Add(time.Duration(tc.final * float64(time.Minute))))
			g.mustReconcile()

			want := tc.want(func(m int) string { return at(m).UTC().Format(time.RFC3339) })
			eventually(t, 20*time.Second, func() error {
				evs := &eventsv1.EventList{}
				if err := g.c.List(context.Background(), evs, client.InNamespace(g.ns)); err != nil {
					return err
				}
				var notes []string
				for _, ev := range evs.Items {
					if ev.Reason == ReasonMissedSchedule {
						notes = append(notes, ev.Note)
					}
				}
				for _, w := range want {
					if n := len(slices.DeleteFunc(slices.Clone(notes), func(s string) bool { return !strings.HasPrefix(s, w) })); n != 1 {
						return fmt.Errorf("%d MissedSchedule events start %q; all: %q", n, w, notes)
					}
				}
				if len(notes) != len(want) {
					return fmt.Errorf("MissedSchedule events %q, want %d", notes, len(want))
				}
				return nil
			})
		})
	}
}

// TestBackupScheduleReconciler_PruneSaysWhichBackup: every Backup that
// retention deletes has a Pruned event naming it, through the manager's
// event recorder, and a log line naming it, which outlives an operator
// killed before its events are sent.
func TestBackupScheduleReconciler_PruneSaysWhichBackup(t *testing.T) {
	g := newScheduleRig(t, false)
	g.r.Recorder = g.mgr.GetEventRecorder("backstop")
	_, first := g.createSchedule(backstopv1alpha1.ConcurrencyAllow, false)
	bs := g.schedule()
	bs.Spec.Retention = &backstopv1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](1)}
	if err := g.c.Update(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
	var names []string
	for m := range 3 {
		names = append(names, g.scheduledBackup(first.Add(time.Duration(m)*time.Minute), backstopv1alpha1.BackupSucceeded).Name)
	}
	g.setLastScheduleTime(first.Add(2 * time.Minute))
	g.clk.SetTime(first.Add(2*time.Minute + time.Second))
	g.waitCached(func(c client.Client) error {
		got := &backstopv1alpha1.BackupSchedule{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(bs), got); err != nil {
			return err
		}
		if got.Spec.Retention == nil {
			return errors.New("the cache has not seen the retention policy yet")
		}
		return nil
	})
	g.mustReconcile()

	for _, name := range names[:2] {
		if bk := g.backup(name); bk == nil || bk.DeletionTimestamp.IsZero() {
			t.Fatalf("Backup %s was not pruned", name)
		}
		if lines := g.logs.containing("retention", name); len(lines) != 1 {
			t.Errorf("log lines naming the pruned Backup %s: %q", name, lines)
		}
	}
	eventually(t, 20*time.Second, func() error {
		evs := &eventsv1.EventList{}
		if err := g.c.List(context.Background(), evs, client.InNamespace(g.ns)); err != nil {
			return err
		}
		pruned := map[string]int{}
		for _, ev := range evs.Items {
			if ev.Reason == ReasonPruned && ev.Related != nil && strings.Contains(ev.Note, ev.Related.Name) {
				pruned[ev.Related.Name]++
			}
		}
		if pruned[names[0]] != 1 || pruned[names[1]] != 1 || len(pruned) != 2 {
			return fmt.Errorf("Pruned events by Backup: %v, want one for each of %v", pruned, names[:2])
		}
		return nil
	})
}
