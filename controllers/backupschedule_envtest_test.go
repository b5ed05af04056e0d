package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/schedule"
)

// scheduleRig drives a BackupScheduleReconciler by hand on the real API
// server: its client reads from a real informer cache, and the test can make
// the cache serve an older copy of the schedule.
type scheduleRig struct {
	t      *testing.T
	c      client.Client // straight to the API server
	cached client.Client // the manager's client: the cache, with stale schedules when served
	stale  *staleReads
	r      *BackupScheduleReconciler
	events *eventLog
	logs   *lineLog
	clk    *clocktesting.FakeClock
	ns     string
	mgr    ctrl.Manager
}

// newScheduleRig: with staleAPI, even the reconciler's reads past the cache
// return the stale schedule, so that only the Backups can tell it what is done.
func newScheduleRig(t *testing.T, staleAPI bool) *scheduleRig {
	t.Helper()
	cl := realCluster(t)
	stale := &staleReads{}
	ns := testNamespace(t, cl.Client)
	createReadyRefs(t, cl.Client, ns)
	mgr, _ := startManager(t, cl.Config, ns, func(c client.Client) client.Client { stale.Client = c; return stale }, nil)
	rig := &scheduleRig{t: t, c: cl.Client, cached: mgr.GetClient(), stale: stale, events: &eventLog{}, logs: &lineLog{},
		clk: clocktesting.NewFakeClock(time.Now()), ns: ns, mgr: mgr}
	var reader client.Reader = mgr.GetAPIReader()
	if staleAPI {
		reader = stale.reader(reader)
	}
	rig.r = &BackupScheduleReconciler{Client: mgr.GetClient(), APIReader: reader, Recorder: rig.events, Clock: rig.clk, Resync: time.Hour}
	return rig
}

// createSchedule creates a schedule firing every minute and returns it with
// its first due time.
func (g *scheduleRig) createSchedule(policy backstopv1alpha1.ConcurrencyPolicy, suspend bool) (*backstopv1alpha1.BackupSchedule, time.Time) {
	g.t.Helper()
	bs := &backstopv1alpha1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: g.ns},
		Spec: backstopv1alpha1.BackupScheduleSpec{
			TargetRef:         backstopv1alpha1.LocalObjectReference{Name: "orders"},
			StoreRef:          backstopv1alpha1.LocalObjectReference{Name: "s3"},
			Schedule:          "* * * * *",
			Suspend:           suspend,
			ConcurrencyPolicy: policy,
		},
	}
	if err := g.c.Create(context.Background(), bs); err != nil {
		g.t.Fatal(err)
	}
	g.waitCached(func(c client.Client) error {
		return c.Get(context.Background(), client.ObjectKeyFromObject(bs), &backstopv1alpha1.BackupSchedule{})
	})
	return bs, bs.CreationTimestamp.Time.Truncate(time.Minute).Add(time.Minute)
}

func (g *scheduleRig) reconcile() (ctrl.Result, error) {
	ctx := ctrl.LoggerInto(context.Background(), g.logs.logger())
	return g.r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: g.ns, Name: "nightly"}})
}

func (g *scheduleRig) mustReconcile() ctrl.Result {
	g.t.Helper()
	res, err := g.reconcile()
	if err != nil {
		g.t.Fatalf("reconcile: %v", err)
	}
	return res
}

// schedule reads the schedule from the API server.
func (g *scheduleRig) schedule() *backstopv1alpha1.BackupSchedule {
	g.t.Helper()
	bs := &backstopv1alpha1.BackupSchedule{}
	if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: "nightly"}, bs); err != nil {
		g.t.Fatal(err)
	}
	return bs
}

// backup reads a Backup from the API server; nil when there is none.
func (g *scheduleRig) backup(name string) *backstopv1alpha1.Backup {
	g.t.Helper()
	bk := &backstopv1alpha1.Backup{}
	if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: name}, bk); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		g.t.Fatal(err)
	}
	return bk
}

// waitCached waits until the cache answers f without error.
func (g *scheduleRig) waitCached(f func(client.Client) error) {
	g.t.Helper()
	eventually(g.t, 30*time.Second, func() error { return f(g.cached) })
}

// waitBackupCached waits until the cache holds a Backup in a phase.
func (g *scheduleRig) waitBackupCached(name string, phase backstopv1alpha1.BackupPhase) {
	g.t.Helper()
	g.waitCached(func(c client.Client) error {
		bk := &backstopv1alpha1.Backup{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: name}, bk); err != nil {
			return err
		}
		if bk.Status.Phase != phase {
			return fmt.Errorf("Backup %s is %q in the cache, want %q", name, bk.Status.Phase, phase)
		}
		return nil
	})
}

// setLastScheduleTime writes the schedule's status as a previous reconcile would.
func (g *scheduleRig) setLastScheduleTime(t time.Time) {
	g.t.Helper()
	bs := g.schedule()
	mt := metav1.NewTime(t)
	bs.Status.LastScheduleTime = &mt
	if err := g.c.Status().Update(context.Background(), bs); err != nil {
		g.t.Fatal(err)
	}
	g.waitCached(func(c client.Client) error {
		got := &backstopv1alpha1.BackupSchedule{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(bs), got); err != nil {
			return err
		}
		if got.ResourceVersion != bs.ResourceVersion {
			return fmt.Errorf("the cache holds resourceVersion %s, want %s", got.ResourceVersion, bs.ResourceVersion)
		}
		return nil
	})
}

// scheduledBackup creates the Backup the schedule creates for a due time, in
// a phase, as if an earlier reconcile had made it and the Backup controller
// had moved it.
func (g *scheduleRig) scheduledBackup(due time.Time, phase backstopv1alpha1.BackupPhase) *backstopv1alpha1.Backup {
	g.t.Helper()
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{
			Name: schedule.BackupName("nightly", due), Namespace: g.ns,
			Labels:      map[string]string{LabelSchedule: "nightly", LabelTarget: "orders", LabelManagedBy: managedBy},
			Annotations: map[string]string{AnnotationScheduledTime: due.UTC().Format(time.RFC3339)},
			Finalizers:  []string{FinalizerArtifact},
		},
		Spec: backstopv1alpha1.BackupSpec{
			ScheduleRef: &backstopv1alpha1.LocalObjectReference{Name: "nightly"},
			TargetRef:   backstopv1alpha1.LocalObjectReference{Name: "orders"},
			StoreRef:    backstopv1alpha1.LocalObjectReference{Name: "s3"},
		},
	}
	if err := g.c.Create(context.Background(), bk); err != nil {
		g.t.Fatal(err)
	}
	g.setPhase(bk.Name, phase)
	return bk
}

// setPhase moves a Backup to a phase, as the Backup controller would.
func (g *scheduleRig) setPhase(name string, phase backstopv1alpha1.BackupPhase) {
	g.t.Helper()
	bk := g.backup(name)
	bk.Status.Phase = phase
	if phase == backstopv1alpha1.BackupSucceeded || phase == backstopv1alpha1.BackupFailed {
		now := metav1.NewTime(g.clk.Now())
		bk.Status.CompletionTime = &now
	}
	if err := g.c.Status().Update(context.Background(), bk); err != nil {
		g.t.Fatal(err)
	}
	g.waitBackupCached(name, phase)
}

// noteMentions: the events whose note names s.
func noteMentions(evs []recordedEvent, s string) []recordedEvent {
	var out []recordedEvent
	for _, ev := range evs {
		if strings.Contains(ev.Note, s) {
			out = append(out, ev)
		}
	}
	return out
}

var allPolicies = []backstopv1alpha1.ConcurrencyPolicy{backstopv1alpha1.ConcurrencyForbid, backstopv1alpha1.ConcurrencyAllow, backstopv1alpha1.ConcurrencyReplace}

// TestBackupScheduleReconciler_StaleReadKeepsOwnBackup: the reconcile that
// the new Backup triggers reads the schedule from before its own write. The
// due time is still the one just handled; its Backup is neither deleted
// (Replace) nor named as running beside itself (Forbid). With staleAPI the
// read past the cache is stale too, and the Backup's deterministic name is
// all that tells the reconciler the due time is handled.
func TestBackupScheduleReconciler_StaleReadKeepsOwnBackup(t *testing.T) {
	for _, policy := range allPolicies {
		for _, staleAPI := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/staleAPI=%v", policy, staleAPI), func(t *testing.T) {
				g := newScheduleRig(t, staleAPI)
				created, due := g.createSchedule(policy, false)
				g.clk.SetTime(due.Add(time.Second))
				g.mustReconcile()
				own := schedule.BackupName("nightly", due)
				if g.backup(own) == nil {
					t.Fatalf("no Backup %s for the due time %s", own, due)
				}
				g.waitBackupCached(own, "")

				// The cache has seen the Backup, not yet the schedule's status.
				g.stale.serveStale(created)
				for i := 0; i < 3; i++ {
					if _, err := g.reconcile(); err != nil && !(staleAPI && apierrors.IsConflict(err)) {
						t.Fatalf("reconcile on a stale read: %v", err)
					}
				}
				g.stale.serveFresh()

				bk := g.backup(own)
				if bk == nil || !bk.DeletionTimestamp.IsZero() {
					t.Fatalf("the due time's own Backup %s was deleted: %+v", own, bk)
				}
				if evs := g.events.withReason(ReasonReplaced); len(evs) != 0 {
					t.Errorf("Replaced events with nothing earlier to replace: %+v", evs)
				}
				if evs := g.events.withReason(ReasonSkippedConcurrent); len(evs) != 0 {
					t.Errorf("SkippedConcurrent for a due time that has its Backup: %+v", evs)
				}
				if evs := g.events.withReason(ReasonBackupCreated); len(evs) != 1 || !strings.Contains(evs[0].Note, own) {
					t.Errorf("BackupCreated events %+v, want one for %s", evs, own)
				}
				bs := g.schedule()
				if bs.Status.LastScheduleTime == nil || !bs.Status.LastScheduleTime.Time.Equal(due) || bs.Status.LastBackupName != own {
					t.Errorf("status: lastScheduleTime %v, lastBackupName %q; want %s, %s", bs.Status.LastScheduleTime, bs.Status.LastBackupName, due, own)
				}
			})
		}
	}
}

// TestBackupScheduleReconciler_ReplaceDeletesEarlierDueTimesOnly: Replace
// deletes the running Backup of the earlier due time, says so in an event
// and a log line naming both Backups, and never deletes the Backup it made,
// stale read or not.
func TestBackupScheduleReconciler_ReplaceDeletesEarlierDueTimesOnly(t *testing.T) {
	g := newScheduleRig(t, false)
	_, due := g.createSchedule(backstopv1alpha1.ConcurrencyReplace, false)
	prev := due.Add(-time.Minute)
	old := g.scheduledBackup(prev, backstopv1alpha1.BackupRunning)
	g.setLastScheduleTime(prev)
	stale := g.schedule()

	g.clk.SetTime(due.Add(time.Second))
	g.mustReconcile()
	own := schedule.BackupName("nightly", due)
	if bk := g.backup(old.Name); bk == nil || bk.DeletionTimestamp.IsZero() {
		t.Fatalf("the running Backup %s of the earlier due time was not deleted", old.Name)
	}
	if bk := g.backup(own); bk == nil || !bk.DeletionTimestamp.IsZero() {
		t.Fatalf("no live Backup %s for the due time: %+v", own, bk)
	}
	evs := g.events.withReason(ReasonReplaced)
	if len(evs) != 1 || evs[0].Related != old.Name || !strings.Contains(evs[0].Note, old.Name) || !strings.Contains(evs[0].Note, own) {
		t.Fatalf("Replaced events %+v, want one naming %s and %s", evs, old.Name, own)
	}
	if lines := g.logs.containing(old.Name, own); len(lines) != 1 {
		t.Errorf("log lines naming both Backups: %q", lines)
	}

	// The reconcile the new Backup triggers, on the stale schedule.
	g.waitBackupCached(own, "")
	g.stale.serveStale(stale)
	g.mustReconcile()
	g.stale.serveFresh()
	if bk := g.backup(own); bk == nil || !bk.DeletionTimestamp.IsZero() {
		t.Fatalf("the stale reconcile deleted the due time's own Backup %s", own)
	}
	if evs := g.events.withReason(ReasonReplaced); len(evs) != 1 {
		t.Errorf("Replaced events after the stale reconcile: %+v", evs)
	}

	// At the next due time, the Backup made above is the earlier one.
	g.setPhase(own, backstopv1alpha1.BackupRunning)
	next := due.Add(time.Minute)
	g.clk.SetTime(next.Add(time.Second))
	g.mustReconcile()
	newer := schedule.BackupName("nightly", next)
	if bk := g.backup(own); bk == nil || bk.DeletionTimestamp.IsZero() {
		t.Errorf("Backup %s of the earlier due time was not replaced", own)
	}
	if bk := g.backup(newer); bk == nil || !bk.DeletionTimestamp.IsZero() {
		t.Errorf("no live Backup %s", newer)
	}
	if evs := g.events.withReason(ReasonReplaced); len(evs) != 2 || !strings.Contains(evs[1].Note, own) || !strings.Contains(evs[1].Note, newer) {
		t.Errorf("Replaced events %+v, want a second naming %s and %s", evs, own, newer)
	}
}

// TestBackupScheduleReconciler_ForbidSkipHoldsAgainstStaleReads: a due time
// skipped because an earlier Backup ran stays skipped when that Backup ends
// and a reconcile reads the schedule from before the skip; the skip names
// the running Backup, and is reported once.
func TestBackupScheduleReconciler_ForbidSkipHoldsAgainstStaleReads(t *testing.T) {
	g := newScheduleRig(t, false)
	_, due := g.createSchedule(backstopv1alpha1.ConcurrencyForbid, false)
	prev := due.Add(-time.Minute)
	old := g.scheduledBackup(prev, backstopv1alpha1.BackupRunning)
	g.setLastScheduleTime(prev)
	stale := g.schedule()

	g.clk.SetTime(due.Add(time.Second))
	g.mustReconcile()
	own := schedule.BackupName("nightly", due)
	if g.backup(own) != nil {
		t.Fatalf("Forbid created %s beside the running %s", own, old.Name)
	}
	evs := g.events.withReason(ReasonSkippedConcurrent)
	if len(evs) != 1 || !strings.Contains(evs[0].Note, old.Name) || !strings.Contains(evs[0].Note, due.Format(time.RFC3339)) {
		t.Fatalf("SkippedConcurrent events %+v, want one naming %s and %s", evs, old.Name, due.Format(time.RFC3339))
	}

	// The running Backup ends; its phase change wakes the schedule, whose
	// cached copy is from before the skip.
	g.setPhase(old.Name, backstopv1alpha1.BackupSucceeded)
	g.stale.serveStale(stale)
	for i := 0; i < 3; i++ {
		g.mustReconcile()
	}
	g.stale.serveFresh()
	if g.backup(own) != nil {
		t.Errorf("the skipped due time %s got a Backup after all", due)
	}
	if evs := g.events.withReason(ReasonSkippedConcurrent, ReasonBackupCreated); len(evs) != 1 {
		t.Errorf("events about the due time: %+v, want the one skip", evs)
	}
	if bs := g.schedule(); !bs.Status.LastScheduleTime.Time.Equal(due) {
		t.Errorf("lastScheduleTime %v, want %s", bs.Status.LastScheduleTime, due)
	}
}

// TestBackupScheduleReconciler_SuspendedDueTimesNeverRun: due times that
// pass while a schedule is suspended are recorded as skipped, whether the
// operator looks at them while suspended or only once resumed, and the first
// Backup after resuming is the first due time after it.
func TestBackupScheduleReconciler_SuspendedDueTimesNeverRun(t *testing.T) {
	g := newScheduleRig(t, false)
	_, due := g.createSchedule(backstopv1alpha1.ConcurrencyForbid, true)

	g.clk.SetTime(due.Add(time.Second))
	res := g.mustReconcile()
	if res.RequeueAfter <= 0 || res.RequeueAfter > time.Minute {
		t.Errorf("suspended: requeue after %v, want at the next due time", res.RequeueAfter)
	}
	bs := g.schedule()
	ready := readyOf(bs)
	if ready == nil || ready.Reason != backstopv1alpha1.ReasonSuspended || !strings.Contains(ready.Message, "skipped the backup due at "+due.Format(time.RFC3339)) {
		t.Errorf("Ready while suspended: %+v", ready)
	}
	if bs.Status.NextScheduleTime != nil || bs.Status.LastScheduleTime == nil || !bs.Status.LastScheduleTime.Time.Equal(due) {
		t.Errorf("suspended status: next %v, last %v", bs.Status.NextScheduleTime, bs.Status.LastScheduleTime)
	}

	// The next due time passes with nobody looking; then the user resumes.
	second := due.Add(time.Minute)
	g.clk.SetTime(second.Add(30 * time.Second))
	bs.Spec.Suspend = false
	if err := g.c.Update(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
	g.waitCached(func(c client.Client) error {
		got := &backstopv1alpha1.BackupSchedule{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(bs), got); err != nil {
			return err
		}
		if got.Spec.Suspend {
			return fmt.Errorf("still suspended in the cache")
		}
		return nil
	})
	g.mustReconcile()
	if name := schedule.BackupName("nightly", second); g.backup(name) != nil {
		t.Fatalf("resuming ran %s, due while the schedule was suspended", name)
	}
	bs = g.schedule()
	ready = readyOf(bs)
	if ready == nil || ready.Reason != backstopv1alpha1.ReasonSucceeded || !strings.Contains(ready.Message, "skipped the backup due at "+second.Format(time.RFC3339)) {
		t.Errorf("Ready after resuming: %+v", ready)
	}
	skips := g.events.withReason(ReasonSkippedSuspended)
	if len(skips) != 2 || len(noteMentions(skips[:1], due.Format(time.RFC3339))) != 1 || len(noteMentions(skips[1:], second.Format(time.RFC3339))) != 1 {
		t.Errorf("SkippedSuspended events %+v, want one for %s and one for %s", skips, due, second)
	}

	third := second.Add(time.Minute)
	g.clk.SetTime(third.Add(time.Second))
	g.mustReconcile()
	if name := schedule.BackupName("nightly", third); g.backup(name) == nil {
		t.Errorf("no Backup %s for the first due time after resuming", name)
	}
	if n := len(g.events.withReason(ReasonSkippedSuspended)); n != 2 {
		t.Errorf("%d SkippedSuspended events, want 2", n)
	}
}

// TestBackupScheduleReconciler_StaleReadAfterResume: a reconcile that still
// reads the schedule as suspended after it was resumed writes nothing over
// the newer status, so the next due time runs.
func TestBackupScheduleReconciler_StaleReadAfterResume(t *testing.T) {
	g := newScheduleRig(t, false)
	_, due := g.createSchedule(backstopv1alpha1.ConcurrencyForbid, true)
	g.clk.SetTime(due.Add(time.Second))
	g.mustReconcile() // skips the due time: suspended
	suspended := g.schedule()

	bs := g.schedule()
	bs.Spec.Suspend = false
	if err := g.c.Update(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
	g.waitCached(func(c client.Client) error {
		got := &backstopv1alpha1.BackupSchedule{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(bs), got); err != nil {
			return err
		}
		if got.Spec.Suspend {
			return fmt.Errorf("still suspended in the cache")
		}
		return nil
	})
	g.clk.SetTime(due.Add(30 * time.Second))
	g.mustReconcile()
	if ready := readyOf(g.schedule()); ready == nil || ready.Reason != backstopv1alpha1.ReasonSucceeded {
		t.Fatalf("Ready after resuming: %+v", ready)
	}

	// A reconcile on the copy from before the resume.
	g.stale.serveStale(suspended)
	g.clk.SetTime(due.Add(40 * time.Second))
	if _, err := g.reconcile(); err != nil {
		t.Fatalf("reconcile on a stale read: %v", err)
	}
	g.stale.serveFresh()
	if ready := readyOf(g.schedule()); ready == nil || ready.Reason != backstopv1alpha1.ReasonSucceeded {
		t.Errorf("a stale read wrote Ready back: %+v", ready)
	}

	next := due.Add(time.Minute)
	g.clk.SetTime(next.Add(time.Second))
	g.mustReconcile()
	if name := schedule.BackupName("nightly", next); g.backup(name) == nil {
		t.Errorf("no Backup %s for the first due time after resuming; events %+v", name, g.events.withReason(ReasonSkippedSuspended))
	}
}

// TestBackupScheduleReconciler_OwnBackupNotYetInCache: the due time's Backup
// exists (a reconcile made it and the operator stopped before it wrote the
// status), an earlier one still runs, and the cache does not list the new
// one yet. Under Forbid the due time is handled, not skipped as concurrent
// with its own Backup; under Replace the earlier Backup is replaced once and
// the due time's own Backup is kept.
func TestBackupScheduleReconciler_OwnBackupNotYetInCache(t *testing.T) {
	for _, policy := range []backstopv1alpha1.ConcurrencyPolicy{backstopv1alpha1.ConcurrencyForbid, backstopv1alpha1.ConcurrencyReplace} {
		t.Run(string(policy), func(t *testing.T) {
			g := newScheduleRig(t, false)
			_, due := g.createSchedule(policy, false)
			prev := due.Add(-time.Minute)
			old := g.scheduledBackup(prev, backstopv1alpha1.BackupRunning)
			g.setLastScheduleTime(prev)
			own := g.scheduledBackup(due, "")
			g.stale.hide(own.Name)

			g.clk.SetTime(due.Add(time.Second))
			g.mustReconcile()
			g.stale.serveFresh()

			if evs := g.events.withReason(ReasonSkippedConcurrent); len(evs) != 0 {
				t.Errorf("SkippedConcurrent for a due time that has its Backup: %+v", evs)
			}
			if bk := g.backup(own.Name); bk == nil || !bk.DeletionTimestamp.IsZero() {
				t.Errorf("the due time's own Backup %s was deleted", own.Name)
			}
			bs := g.schedule()
			if !bs.Status.LastScheduleTime.Time.Equal(due) || bs.Status.LastBackupName != own.Name {
				t.Errorf("status: lastScheduleTime %v, lastBackupName %q", bs.Status.LastScheduleTime, bs.Status.LastBackupName)
			}
			if bk := g.backup(old.Name); bk == nil || !bk.DeletionTimestamp.IsZero() {
				t.Errorf("the earlier Backup %s was deleted: the due time was already handled", old.Name)
			}
		})
	}
}

// With the operator running: a schedule's Ready follows its target and
// store as they appear and as the target's Secret goes and comes back,
// with no change to the schedule itself.
func TestBackupScheduleReconciler_ReadyFollowsTargetAndStore(t *testing.T) {
	cl := realCluster(t)
	ctx := context.Background()
	ns := testNamespace(t, cl.Client)
	startManager(t, cl.Config, ns, nil, func(mgr ctrl.Manager) error { return SetupAll(ctx, mgr, Options{}) })
	bs := &backstopv1alpha1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns},
		Spec: backstopv1alpha1.BackupScheduleSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: "orders"},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: "vol"},
			Schedule:  "0 2 * * *",
		},
	}
	create := func(o client.Object) {
		t.Helper()
		if err := cl.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(reason, inMessage string) {
		t.Helper()
		waitForReady(t, cl.Client, &backstopv1alpha1.BackupSchedule{ObjectMeta: bs.ObjectMeta}, reason, inMessage)
	}
	create(bs)
	waitFor(backstopv1alpha1.ReasonTargetNotFound, "BackupTarget orders not found")

	secret := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
			Data: map[string][]byte{"user": []byte("app"), "password": []byte("pw")}}
	}
	create(secret())
	target := testTarget()
	target.Namespace = ns
	create(target)
	waitFor(backstopv1alpha1.ReasonStoreNotFound, "BackupStore vol not found")

	create(&backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "vol", Namespace: ns},
		Spec: backstopv1alpha1.BackupStoreSpec{
			Volume:     &backstopv1alpha1.VolumeStore{ClaimName: "backups"},
			Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}},
		},
	})
	waitFor(backstopv1alpha1.ReasonSucceeded, "next backup at")

	if err := cl.Client.Delete(ctx, secret()); err != nil {
		t.Fatal(err)
	}
	waitFor(backstopv1alpha1.ReasonTargetNotReady, `BackupTarget orders is not ready: Secret "db" not found`)
	create(secret())
	waitFor(backstopv1alpha1.ReasonSucceeded, "next backup at")
}
