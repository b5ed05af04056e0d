package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// setSpec changes the schedule's spec and waits until the cache shows it.
func (g *scheduleRig) setSpec(mut func(*backstopv1alpha1.BackupScheduleSpec)) {
	g.t.Helper()
	bs := g.schedule()
	mut(&bs.Spec)
	if err := g.c.Update(context.Background(), bs); err != nil {
		g.t.Fatal(err)
	}
	g.waitCached(func(c client.Client) error {
		got := &backstopv1alpha1.BackupSchedule{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(bs), got); err != nil {
			return err
		}
		if got.Generation != bs.Generation {
			return fmt.Errorf("the cache holds generation %d, want %d", got.Generation, bs.Generation)
		}
		return nil
	})
}

// setVerified writes what the Backup controller derives from a finished drill.
func (g *scheduleRig) setVerified(name string, passed bool, at time.Time) {
	g.t.Helper()
	bk := g.backup(name)
	status, reason := metav1.ConditionTrue, backstopv1alpha1.ReasonDrillPassed
	if !passed {
		status, reason = metav1.ConditionFalse, backstopv1alpha1.ReasonCheckFailed
	}
	bk.Status.Conditions = append(bk.Status.Conditions, metav1.Condition{Type: backstopv1alpha1.ConditionVerified, Status: status, Reason: reason,
		Message: "drill", LastTransitionTime: metav1.Now(), ObservedGeneration: bk.Generation})
	t := metav1.NewTime(at)
	bk.Status.Verification = &backstopv1alpha1.BackupVerification{DrillName: DrillNameFor(name), Time: &t}
	if err := g.c.Status().Update(context.Background(), bk); err != nil {
		g.t.Fatal(err)
	}
	g.waitCached(func(c client.Client) error {
		got := &backstopv1alpha1.Backup{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(bk), got); err != nil {
			return err
		}
		if conditionOf(got, backstopv1alpha1.ConditionVerified) == nil {
			return fmt.Errorf("the cache does not show Backup %s verified yet", name)
		}
		return nil
	})
}

// drillsOf names the BackupDrills of the namespace, by the Backup they drill.
func (g *scheduleRig) drillsOf() map[string]*backstopv1alpha1.BackupDrill {
	g.t.Helper()
	list := &backstopv1alpha1.BackupDrillList{}
	if err := g.c.List(context.Background(), list, client.InNamespace(g.ns)); err != nil {
		g.t.Fatal(err)
	}
	out := map[string]*backstopv1alpha1.BackupDrill{}
	for i := range list.Items {
		out[list.Items[i].Spec.BackupRef.Name] = &list.Items[i]
	}
	return out
}

func keysOf(m map[string]*backstopv1alpha1.BackupDrill) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestBackupScheduleReconciler_DrillsEveryBackup: with a drill policy and no
// drill schedule, turning drills on drills the newest successful Backup
// only; from then on every Backup that succeeds is drilled once, by a
// BackupDrill owned by the Backup, with the policy's settings.
func TestBackupScheduleReconciler_DrillsEveryBackup(t *testing.T) {
	g := newScheduleRig(t, false)
	_, first := g.createSchedule(backstopv1alpha1.ConcurrencyForbid, false)
	g.clk.SetTime(first.Add(-30 * time.Second)) // no backup due
	at := func(i int) time.Time { return first.Add(-time.Duration(10-i) * time.Hour) }
	b1 := g.scheduledBackup(at(1), backstopv1alpha1.BackupSucceeded)
	b2 := g.scheduledBackup(at(2), backstopv1alpha1.BackupSucceeded)
	g.scheduledBackup(at(3), backstopv1alpha1.BackupFailed)

	// No policy: no drills.
	g.mustReconcile()
	if d := g.drillsOf(); len(d) != 0 {
		t.Fatalf("drills without a drill policy: %v", keysOf(d))
	}

	g.setSpec(func(s *backstopv1alpha1.BackupScheduleSpec) {
		s.Drill = &backstopv1alpha1.DrillPolicy{DrillSettings: backstopv1alpha1.DrillSettings{
			Checks: []backstopv1alpha1.DrillCheck{{Name: "rows", SQL: "SELECT count(*) > 0 FROM orders", Expect: "t"}},
		}}
	})
	g.mustReconcile()
	drills := g.drillsOf()
	if got := keysOf(drills); !slices.Equal(got, []string{b2.Name}) {
		t.Fatalf("drills of %v, want only the newest successful Backup %s", got, b2.Name)
	}
	dr := drills[b2.Name]
	if dr.Name != DrillNameFor(b2.Name) || !metav1.IsControlledBy(dr, b2) || dr.Labels[LabelSchedule] != "nightly" || dr.Labels[LabelBackup] != b2.Name {
		t.Errorf("drill %s: owners %+v, labels %v", dr.Name, dr.OwnerReferences, dr.Labels)
	}
	if len(dr.Spec.Checks) != 1 || dr.Spec.Checks[0].Name != "rows" || dr.Spec.Timeout == nil || dr.Spec.Timeout.Duration != time.Hour {
		t.Errorf("drill spec %+v, want the policy's check and the 1h default timeout", dr.Spec)
	}
	if evs := noteMentions(g.events.withReason(ReasonDrillCreated), dr.Name); len(evs) != 1 {
		t.Errorf("DrillCreated events naming %s: %+v", dr.Name, evs)
	}

	// Two more succeed: both are drilled, the old one still not.
	b4 := g.scheduledBackup(at(4), backstopv1alpha1.BackupSucceeded)
	b5 := g.scheduledBackup(at(5), backstopv1alpha1.BackupSucceeded)
	g.scheduledBackup(at(6), backstopv1alpha1.BackupRunning)
	g.mustReconcile()
	g.mustReconcile() // again: nothing new
	if got, want := keysOf(g.drillsOf()), []string{b2.Name, b4.Name, b5.Name}; !slices.Equal(got, want) {
		t.Fatalf("drills of %v, want %v (never %s, older than the first drilled)", got, want, b1.Name)
	}
	if n := len(g.events.withReason(ReasonDrillCreated)); n != 3 {
		t.Errorf("%d DrillCreated events, want 3", n)
	}

	// A suspended schedule starts no drills.
	g.setSpec(func(s *backstopv1alpha1.BackupScheduleSpec) { s.Suspend = true })
	b7 := g.scheduledBackup(at(7), backstopv1alpha1.BackupSucceeded)
	g.mustReconcile()
	if _, ok := g.drillsOf()[b7.Name]; ok {
		t.Errorf("a suspended schedule drilled %s", b7.Name)
	}
}

// TestBackupScheduleReconciler_DrillsOnCron: with a drill schedule, at each
// due time the newest successful Backup is drilled unless it has been
// already; between due times nothing is drilled, and the reconcile wakes
// for the next one.
func TestBackupScheduleReconciler_DrillsOnCron(t *testing.T) {
	g := newScheduleRig(t, false)
	g.createSchedule(backstopv1alpha1.ConcurrencyForbid, false)
	g.setSpec(func(s *backstopv1alpha1.BackupScheduleSpec) {
		s.Schedule = "0 0 1 1 *" // backups yearly: none due in the test
		s.Drill = &backstopv1alpha1.DrillPolicy{Schedule: "0 * * * *"}
	})
	created := g.schedule().CreationTimestamp.Time
	hour := created.Truncate(time.Hour).Add(time.Hour) // the first drill due time
	g.clk.SetTime(hour.Add(-10 * time.Minute))
	older := g.scheduledBackup(created.Add(-2*time.Hour), backstopv1alpha1.BackupSucceeded)
	newer := g.scheduledBackup(created.Add(-time.Hour), backstopv1alpha1.BackupSucceeded)

	res := g.mustReconcile()
	if d := g.drillsOf(); len(d) != 0 {
		t.Fatalf("drills before the drill due time: %v", keysOf(d))
	}
	if bs := g.schedule(); bs.Status.NextDrillTime == nil || !bs.Status.NextDrillTime.Time.Equal(hour) {
		t.Errorf("nextDrillTime %v, want %s", bs.Status.NextDrillTime, hour)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > 10*time.Minute+time.Second {
		t.Errorf("requeue after %s, want the 10m to the drill due time", res.RequeueAfter)
	}

	g.clk.SetTime(hour.Add(time.Minute))
	g.mustReconcile()
	if got := keysOf(g.drillsOf()); !slices.Equal(got, []string{newer.Name}) {
		t.Fatalf("drills of %v at the due time, want the newest successful Backup %s", got, newer.Name)
	}
	if bs := g.schedule(); bs.Status.LastDrillScheduleTime == nil || !bs.Status.LastDrillScheduleTime.Time.Equal(hour) {
		t.Errorf("lastDrillScheduleTime %v, want %s", bs.Status.LastDrillScheduleTime, hour)
	}

	// A newer Backup between due times waits for the next one.
	newest := g.scheduledBackup(created.Add(-30*time.Minute), backstopv1alpha1.BackupSucceeded)
	g.mustReconcile()
	if got := keysOf(g.drillsOf()); !slices.Equal(got, []string{newer.Name}) {
		t.Fatalf("drills of %v between due times, want still only %s", got, newer.Name)
	}
	g.clk.SetTime(hour.Add(time.Hour + time.Minute))
	g.mustReconcile()
	if got, want := keysOf(g.drillsOf()), []string{newer.Name, newest.Name}; !slices.Equal(got, want) {
		t.Fatalf("drills of %v at the second due time, want %v", got, want)
	}
	// A due time whose newest Backup is drilled already drills nothing.
	g.clk.SetTime(hour.Add(2*time.Hour + time.Minute))
	g.mustReconcile()
	if n := len(g.drillsOf()); n != 2 {
		t.Fatalf("%d drills after a due time with nothing new, want 2", n)
	}
	if _, ok := g.drillsOf()[older.Name]; ok {
		t.Errorf("the older Backup %s was drilled", older.Name)
	}
}

// TestBackupScheduleReconciler_RetentionKeepsNewestVerified: keepLast 1
// prunes down to the newest successful Backup and the newest verified one
// (its drill passed); a Backup whose drill failed is not kept for it. The
// schedule names the newest verified Backup.
func TestBackupScheduleReconciler_RetentionKeepsNewestVerified(t *testing.T) {
	g := newScheduleRig(t, false)
	_, first := g.createSchedule(backstopv1alpha1.ConcurrencyForbid, false)
	g.clk.SetTime(first.Add(-30 * time.Second))
	g.setSpec(func(s *backstopv1alpha1.BackupScheduleSpec) {
		s.Retention = &backstopv1alpha1.RetentionPolicy{KeepLast: ptrInt32(1)}
	})
	at := func(i int) time.Time { return first.Add(-time.Duration(10-i) * time.Hour) }
	var names []string
	for i := 1; i <= 4; i++ {
		names = append(names, g.scheduledBackup(at(i), backstopv1alpha1.BackupSucceeded).Name)
	}
	g.setVerified(names[0], true, at(1).Add(10*time.Minute))
	g.setVerified(names[1], true, at(2).Add(10*time.Minute))
	g.setVerified(names[2], false, at(3).Add(10*time.Minute))
	// names[3], the newest, is not drilled yet.

	g.mustReconcile()
	for i, want := range []bool{false, true, false, true} {
		bk := g.backup(names[i])
		kept := bk != nil && bk.DeletionTimestamp.IsZero()
		if kept != want {
			t.Errorf("Backup %s kept=%v, want %v", names[i], kept, want)
		}
	}
	bs := g.schedule()
	if bs.Status.LastVerifiedBackup != names[1] || bs.Status.LastVerifiedTime == nil || !bs.Status.LastVerifiedTime.Time.Equal(at(2).Add(10*time.Minute)) {
		t.Errorf("lastVerifiedBackup %q at %v, want %s", bs.Status.LastVerifiedBackup, bs.Status.LastVerifiedTime, names[1])
	}
}
