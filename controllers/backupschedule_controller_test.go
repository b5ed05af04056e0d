package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/internal/schedule"
)

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := backstopv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func newScheduleReconciler(t *testing.T, now time.Time, objs ...client.Object) (*BackupScheduleReconciler, *clocktesting.FakeClock) {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).
		WithStatusSubresource(&backstopv1alpha1.BackupSchedule{}, &backstopv1alpha1.Backup{}).
		WithIndex(&backstopv1alpha1.Backup{}, indexScheduleName, func(o client.Object) []string {
			if ref := o.(*backstopv1alpha1.Backup).Spec.ScheduleRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}).
		WithObjects(objs...).Build()
	clk := clocktesting.NewFakeClock(now)
	return &BackupScheduleReconciler{Client: c, Recorder: events.NewFakeRecorder(100), Clock: clk, Resync: time.Hour}, clk
}

func testSchedule(created time.Time, expr string) *backstopv1alpha1.BackupSchedule {
	return &backstopv1alpha1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "shop", Generation: 1, CreationTimestamp: metav1.NewTime(created)},
		Spec: backstopv1alpha1.BackupScheduleSpec{
			TargetRef:         backstopv1alpha1.LocalObjectReference{Name: "orders"},
			StoreRef:          backstopv1alpha1.LocalObjectReference{Name: "s3"},
			Schedule:          expr,
			ConcurrencyPolicy: backstopv1alpha1.ConcurrencyForbid,
		},
	}
}

func reconcileSchedule(t *testing.T, r *BackupScheduleReconciler) (ctrl.Result, *backstopv1alpha1.BackupSchedule) {
	t.Helper()
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "shop", Name: "nightly"}})
	if err != nil {
		t.Fatal(err)
	}
	got := &backstopv1alpha1.BackupSchedule{}
	if err := r.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "nightly"}, got); err != nil {
		t.Fatal(err)
	}
	return res, got
}

func backupNames(t *testing.T, c client.Client) []string {
	t.Helper()
	list := &backstopv1alpha1.BackupList{}
	if err := c.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range list.Items {
		names = append(names, b.Name)
	}
	return names
}

func TestBackupScheduleReconciler_InvalidSchedule(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ expr, tz, want string }{
		{"61 * * * *", "", "end of range (61) above maximum (59)"},
		{"0 3 * * *", "Mars/Olympus", "invalid time zone \"Mars/Olympus\""},
		{"0 0 30 2 *", "", "never fires"},
	} {
		sched := testSchedule(now.Add(-time.Hour), tc.expr)
		if tc.tz != "" {
			sched.Spec.TimeZone = ptr.To(tc.tz)
		}
		r, _ := newScheduleReconciler(t, now, sched)
		res, got := reconcileSchedule(t, r)
		ready := readyOf(got)
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != backstopv1alpha1.ReasonInvalidSchedule || !strings.Contains(ready.Message, tc.want) {
			t.Errorf("%q %q: Ready = %+v, want False/InvalidSchedule with %q", tc.expr, tc.tz, ready, tc.want)
		}
		if stalled := conditionOf(got, backstopv1alpha1.ConditionStalled); stalled == nil || stalled.Status != metav1.ConditionTrue {
			t.Errorf("%q: not Stalled", tc.expr)
		}
		if res.RequeueAfter != 0 || len(backupNames(t, r)) != 0 {
			t.Errorf("%q: an invalid schedule must neither requeue nor create Backups", tc.expr)
		}
	}
}

func TestBackupScheduleReconciler_RunsOnTimeOnce(t *testing.T) {
	created := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)
	sched := testSchedule(created, "30 2 * * *")
	sched.Spec.TimeZone = ptr.To("Europe/Paris") // 02:30 in Paris is 01:30 UTC
	r, clk := newScheduleReconciler(t, created.Add(10*time.Minute), sched)

	res, got := reconcileSchedule(t, r)
	due := time.Date(2026, 3, 1, 1, 30, 0, 0, time.UTC)
	if got.Status.NextScheduleTime == nil || !got.Status.NextScheduleTime.Time.Equal(due) {
		t.Fatalf("next = %v, want %v", got.Status.NextScheduleTime, due)
	}
	if res.RequeueAfter < 19*time.Minute || res.RequeueAfter > 21*time.Minute {
		t.Errorf("requeue after %v, want about 20m", res.RequeueAfter)
	}
	if n := backupNames(t, r); len(n) != 0 {
		t.Fatalf("backups before the due time: %v", n)
	}

	clk.SetTime(due.Add(time.Second))
	reconcileSchedule(t, r)
	_, got = reconcileSchedule(t, r) // a second pass at the same time creates nothing more
	want := schedule.BackupName("nightly", due)
	if n := backupNames(t, r); len(n) != 1 || n[0] != want {
		t.Fatalf("backups = %v, want [%s]", n, want)
	}
	if got.Status.LastBackupName != want || !got.Status.LastScheduleTime.Time.Equal(due) {
		t.Errorf("status: last %v %q", got.Status.LastScheduleTime, got.Status.LastBackupName)
	}
	bk := &backstopv1alpha1.Backup{}
	if err := r.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: want}, bk); err != nil {
		t.Fatal(err)
	}
	if bk.Labels[LabelSchedule] != "nightly" || bk.Spec.ScheduleRef.Name != "nightly" || len(bk.OwnerReferences) != 0 {
		t.Errorf("backup labels %v, scheduleRef %v, owners %v", bk.Labels, bk.Spec.ScheduleRef, bk.OwnerReferences)
	}
}

func TestBackupScheduleReconciler_AfterDowntime(t *testing.T) {
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	last := created.Add(time.Hour)
	for _, tc := range []struct {
		name     string
		deadline *int64
		wantRun  bool
	}{
		{"no deadline: the newest missed run only", nil, true},
		{"inside the deadline", ptr.To[int64](3600), true},
		{"outside the deadline: none", ptr.To[int64](60), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sched := testSchedule(created, "0 * * * *")
			sched.Spec.StartingDeadlineSeconds = tc.deadline
			sched.Status.LastScheduleTime = &metav1.Time{Time: last}
			// Down for five hours and ten minutes: five runs were missed.
			r, _ := newScheduleReconciler(t, last.Add(5*time.Hour+10*time.Minute), sched)
			reconcileSchedule(t, r)
			names := backupNames(t, r)
			if tc.wantRun {
				want := schedule.BackupName("nightly", last.Add(5*time.Hour))
				if len(names) != 1 || names[0] != want {
					t.Fatalf("backups = %v, want only the newest missed run %s", names, want)
				}
			} else if len(names) != 0 {
				t.Fatalf("backups = %v, want none past the deadline", names)
			}
			// The four older due times are recorded as missed, not dropped
			// silently.
			want := "Warning MissedSchedule missed 4 backups due after 2026-03-01T01:00:00Z and before 2026-03-01T06:00:00Z"
			var got []string
			for len(r.Recorder.(*events.FakeRecorder).Events) > 0 {
				got = append(got, <-r.Recorder.(*events.FakeRecorder).Events)
			}
			if !slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, want) }) {
				t.Errorf("events %q, want one starting %q", got, want)
			}
		})
	}
}

func TestBackupScheduleReconciler_ForbidAndSuspend(t *testing.T) {
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sched := testSchedule(created, "0 * * * *")
	running := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "still-running", Namespace: "shop"},
		Spec:       backstopv1alpha1.BackupSpec{ScheduleRef: &backstopv1alpha1.LocalObjectReference{Name: "nightly"}},
		Status:     backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupRunning},
	}
	r, _ := newScheduleReconciler(t, created.Add(time.Hour+time.Second), sched, running)
	_, got := reconcileSchedule(t, r)
	if n := backupNames(t, r); len(n) != 1 {
		t.Fatalf("Forbid started a run beside a running one: %v", n)
	}
	if len(got.Status.Active) != 1 || got.Status.Active[0] != "still-running" {
		t.Errorf("active = %v", got.Status.Active)
	}

	sched2 := testSchedule(created, "0 * * * *")
	sched2.Spec.Suspend = true
	r2, _ := newScheduleReconciler(t, created.Add(time.Hour+time.Second), sched2)
	_, got = reconcileSchedule(t, r2)
	if n := backupNames(t, r2); len(n) != 0 {
		t.Fatalf("a suspended schedule created %v", n)
	}
	if ready := readyOf(got); ready == nil || ready.Reason != backstopv1alpha1.ReasonSuspended || got.Status.NextScheduleTime != nil {
		t.Errorf("suspended: Ready %+v next %v", ready, got.Status.NextScheduleTime)
	}
}

func readyOf(obj interface{ GetConditions() []metav1.Condition }) *metav1.Condition {
	return conditionOf(obj, backstopv1alpha1.ConditionReady)
}

func conditionOf(obj interface{ GetConditions() []metav1.Condition }, t string) *metav1.Condition {
	for _, c := range obj.GetConditions() {
		if c.Type == t {
			c := c
			return &c
		}
	}
	return nil
}

// countingReader counts reads past the cache.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// A due time is decided on a current read of the schedule: from the API
// server, unless the cache holds the very version this process last wrote.
func TestBackupScheduleReconciler_ReadsPastTheCacheOnlyWhenNeeded(t *testing.T) {
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	r, clk := newScheduleReconciler(t, created.Add(time.Hour+time.Second), testSchedule(created, "0 * * * *"))
	api := &countingReader{Reader: r.Client}
	r.APIReader = api
	reconcileSchedule(t, r)
	if api.gets != 1 {
		t.Fatalf("first due time: %d reads past the cache, want 1 (nothing written yet)", api.gets)
	}
	// The Backups finish between due times: nothing is in the way of the next.
	finishAll := func() {
		list := &backstopv1alpha1.BackupList{}
		if err := r.List(context.Background(), list); err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			list.Items[i].Status.Phase = backstopv1alpha1.BackupSucceeded
			if err := r.Status().Update(context.Background(), &list.Items[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	finishAll()
	clk.SetTime(created.Add(2*time.Hour + time.Second))
	reconcileSchedule(t, r)
	if api.gets != 1 {
		t.Errorf("second due time: %d reads past the cache in all, want still 1 (the cache holds this process's own write)", api.gets)
	}
	if n := backupNames(t, r); len(n) != 2 {
		t.Errorf("backups = %v, want one per due time", n)
	}

	// Someone else changed the schedule since: read it again.
	finishAll()
	sched := &backstopv1alpha1.BackupSchedule{}
	if err := r.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "nightly"}, sched); err != nil {
		t.Fatal(err)
	}
	sched.Annotations = map[string]string{"touched": "yes"}
	if err := r.Update(context.Background(), sched); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(created.Add(3*time.Hour + time.Second))
	reconcileSchedule(t, r)
	if api.gets != 2 {
		t.Errorf("after another writer: %d reads past the cache in all, want 2", api.gets)
	}
}

// A Backup whose Job is over is not in the way of the next due time, even
// before its own controller records how it ended: Forbid runs the due time,
// and Replace does not delete it. While its Job is active, it is.
func TestBackupScheduleReconciler_ABackupWhoseJobIsOverIsNotRunning(t *testing.T) {
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	due := created.Add(time.Hour)
	for _, policy := range []backstopv1alpha1.ConcurrencyPolicy{backstopv1alpha1.ConcurrencyForbid, backstopv1alpha1.ConcurrencyReplace} {
		for _, jobDone := range []bool{true, false} {
			sched := testSchedule(created, "0 * * * *")
			sched.Spec.ConcurrencyPolicy = policy
			earlier := &backstopv1alpha1.Backup{
				ObjectMeta: metav1.ObjectMeta{Name: "earlier", Namespace: "shop", UID: "uid-earlier"},
				Spec:       backstopv1alpha1.BackupSpec{ScheduleRef: &backstopv1alpha1.LocalObjectReference{Name: "nightly"}},
				Status:     backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupRunning},
			}
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: jobName("earlier", "backup"), Namespace: "shop",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "backstop.io/v1alpha1", Kind: "Backup", Name: "earlier", UID: "uid-earlier", Controller: ptr.To(true)}}}}
			if jobDone {
				job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
			}
			r, _ := newScheduleReconciler(t, due.Add(time.Second), sched, earlier, job)
			reconcileSchedule(t, r)

			names := backupNames(t, r)
			slices.Sort(names)
			want := []string{"earlier", schedule.BackupName("nightly", due)}
			switch {
			case !jobDone && policy == backstopv1alpha1.ConcurrencyForbid:
				want = []string{"earlier"}
			case !jobDone && policy == backstopv1alpha1.ConcurrencyReplace:
				want = []string{schedule.BackupName("nightly", due)}
			}
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Errorf("%s, Job over %v: Backups %v, want %v", policy, jobDone, names, want)
			}
		}
	}
}

// A schedule's Ready names a target or store that is missing or not Ready;
// its due times still create their Backups, which wait or fail on their own.
func TestBackupScheduleReconciler_ReadyNamesAMissingOrNotReadyTargetOrStore(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r, clk := newScheduleReconciler(t, created.Add(time.Hour), testSchedule(created, "0 2 * * *"))
	expect := func(status metav1.ConditionStatus, reason string, inMessage ...string) {
		t.Helper()
		_, got := reconcileSchedule(t, r)
		ready, stalled := readyOf(got), conditionOf(got, backstopv1alpha1.ConditionStalled)
		if ready == nil || ready.Status != status || ready.Reason != reason {
			t.Fatalf("Ready = %+v, want %s %s", ready, status, reason)
		}
		for _, part := range inMessage {
			if !strings.Contains(ready.Message, part) {
				t.Errorf("Ready message %q does not say %q", ready.Message, part)
			}
		}
		if (stalled != nil) != (status == metav1.ConditionFalse) {
			t.Errorf("Stalled = %+v with Ready %s", stalled, status)
		}
	}
	expect(metav1.ConditionFalse, backstopv1alpha1.ReasonTargetNotFound, "BackupTarget orders not found: Backups wait for it", "next backup at 2026-12-01T02:00:00Z")

	st, tg := readyStoreAndTarget()
	if err := r.Create(ctx, tg); err != nil {
		t.Fatal(err)
	}
	expect(metav1.ConditionFalse, backstopv1alpha1.ReasonStoreNotFound, "BackupStore s3 not found: Backups wait for it")

	conditions.MarkStalled(st, backstopv1alpha1.ReasonSecretNotFound, `Secret "s3" not found`)
	if err := r.Create(ctx, st); err != nil {
		t.Fatal(err)
	}
	expect(metav1.ConditionFalse, backstopv1alpha1.ReasonStoreNotReady, `BackupStore s3 is not ready: Secret "s3" not found: Backups fail`)

	// Its spec changed and not checked yet: Backups wait for the check; no problem.
	st.Generation = 2
	if err := r.Update(ctx, st); err != nil {
		t.Fatal(err)
	}
	expect(metav1.ConditionTrue, backstopv1alpha1.ReasonSucceeded, "next backup at")

	conditions.MarkReady(st, backstopv1alpha1.ReasonSucceeded, "ok")
	if err := r.Update(ctx, st); err != nil {
		t.Fatal(err)
	}
	expect(metav1.ConditionTrue, backstopv1alpha1.ReasonSucceeded, "next backup at 2026-12-01T02:00:00Z")

	// The target goes; the due time still makes its Backup.
	if err := r.Delete(ctx, tg); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(time.Date(2026, 12, 1, 2, 0, 1, 0, time.UTC))
	expect(metav1.ConditionFalse, backstopv1alpha1.ReasonTargetNotFound, "next backup at 2026-12-02T02:00:00Z")
	if names := backupNames(t, r); len(names) != 1 || names[0] != schedule.BackupName("nightly", time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("Backups %v, want the one due at 02:00", names)
	}
}

// A schedule wakes for a change of its target's or store's readiness, not
// for each status write that leaves it.
func TestReadinessChanged(t *testing.T) {
	p := readinessChanged()
	target := func(status metav1.ConditionStatus, reason, msg string, observed int64) *backstopv1alpha1.BackupTarget {
		tg := testTarget()
		tg.Generation = 2
		tg.Status.Conditions = []metav1.Condition{{Type: backstopv1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: observed}}
		return tg
	}
	ready := target(metav1.ConditionTrue, backstopv1alpha1.ReasonSucceeded, "postgres target: Secrets and keys present", 2)
	for _, tc := range []struct {
		name     string
		old, new *backstopv1alpha1.BackupTarget
		want     bool
	}{
		{"last successful backup written", ready, func() *backstopv1alpha1.BackupTarget {
			tg := ready.DeepCopy()
			tg.Status.LastSuccessfulBackup = "nightly-20261207010000"
			return tg
		}(), false},
		{"Ready message of a Ready target", ready, target(metav1.ConditionTrue, backstopv1alpha1.ReasonSucceeded, "other words", 2), false},
		{"not Ready", ready, target(metav1.ConditionFalse, backstopv1alpha1.ReasonSecretNotFound, `Secret "db" not found`, 2), true},
		{"another missing Secret", target(metav1.ConditionFalse, backstopv1alpha1.ReasonSecretNotFound, `Secret "db" not found`, 2),
			target(metav1.ConditionFalse, backstopv1alpha1.ReasonSecretNotFound, `Secret "ca" not found`, 2), true},
		{"spec changed, not checked yet", ready, target(metav1.ConditionTrue, backstopv1alpha1.ReasonSucceeded, "postgres target: Secrets and keys present", 1), true},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: passes = %v, want %v", tc.name, got, tc.want)
		}
	}
}
