package controllers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// TestBackupScheduleReconciler_Metrics checks the gauges the chart's alerts
// read: the expected interval from the cron, the newest success, ready and
// suspended, and that a deleted schedule leaves no series behind.
func TestBackupScheduleReconciler_Metrics(t *testing.T) {
	key := client.ObjectKey{Namespace: "shop", Name: "nightly"}
	forgetSchedule("shop", "nightly")
	t.Cleanup(func() { forgetSchedule("shop", "nightly") })
	// Weekdays at 02:00 UTC; 2026-12-05 is a Saturday.
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	sched := testSchedule(created, "0 2 * * 1-5")
	sched.Status.LastScheduleTime = ptr.To(metav1.NewTime(time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)))
	done := metav1.NewTime(time.Date(2026, 12, 4, 2, 7, 0, 0, time.UTC))
	older := metav1.NewTime(time.Date(2026, 12, 3, 2, 7, 0, 0, time.UTC))
	backup := func(name string, phase backstopv1alpha1.BackupPhase, at metav1.Time) *backstopv1alpha1.Backup {
		return &backstopv1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{LabelSchedule: "nightly"}},
			Spec: backstopv1alpha1.BackupSpec{
				TargetRef: backstopv1alpha1.LocalObjectReference{Name: "orders"}, StoreRef: backstopv1alpha1.LocalObjectReference{Name: "s3"},
				ScheduleRef: &backstopv1alpha1.LocalObjectReference{Name: "nightly"},
			},
			Status: backstopv1alpha1.BackupStatus{Phase: phase, CompletionTime: &at},
		}
	}
	failedLater := backup("failed", backstopv1alpha1.BackupFailed, metav1.NewTime(done.Add(time.Hour)))
	st, tg := readyStoreAndTarget()
	r, _ := newScheduleReconciler(t, time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), sched, st, tg,
		backup("ok-old", backstopv1alpha1.BackupSucceeded, older), backup("ok", backstopv1alpha1.BackupSucceeded, done), failedLater)
	reconcileSchedule(t, r)

	if got := series(t, "backstop_schedule_expected_interval_seconds", "namespace", "shop", "schedule", "nightly"); got != 72*3600 {
		t.Errorf("expected interval on a Saturday = %vs, want 72h", got)
	}
	if got := series(t, "backstop_schedule_last_success_timestamp_seconds", "namespace", "shop", "schedule", "nightly"); got != float64(done.Unix()) {
		t.Errorf("last success = %v, want %v (the newest Succeeded, not the later Failed)", got, done.Unix())
	}
	if got := series(t, "backstop_schedule_ready", "namespace", "shop", "reason", backstopv1alpha1.ReasonSucceeded, "schedule", "nightly"); got != 1 {
		t.Errorf("ready = %v, want 1", got)
	}
	if got := series(t, "backstop_schedule_suspended", "namespace", "shop", "schedule", "nightly"); got != 0 {
		t.Errorf("suspended = %v, want 0", got)
	}

	// Suspended: still Ready (reason Suspended), suspended 1, no next run.
	got := &backstopv1alpha1.BackupSchedule{}
	if err := r.Get(context.Background(), key, got); err != nil {
		t.Fatal(err)
	}
	got.Spec.Suspend = true
	if err := r.Update(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	reconcileSchedule(t, r)
	if got := series(t, "backstop_schedule_suspended", "namespace", "shop", "schedule", "nightly"); got != 1 {
		t.Errorf("suspended = %v, want 1", got)
	}
	if series(t, "backstop_schedule_ready", "namespace", "shop", "reason", backstopv1alpha1.ReasonSucceeded, "schedule", "nightly") != -1 {
		t.Error("the ready series of the old reason is still there")
	}
	if got := series(t, "backstop_schedule_ready", "namespace", "shop", "reason", backstopv1alpha1.ReasonSuspended, "schedule", "nightly"); got != 1 {
		t.Errorf("ready (Suspended) = %v, want 1", got)
	}

	// An invalid cron: not ready, no expected interval.
	if err := r.Get(context.Background(), key, got); err != nil {
		t.Fatal(err)
	}
	got.Spec.Suspend, got.Spec.Schedule = false, "61 * * * *"
	if err := r.Update(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	reconcileSchedule(t, r)
	if got := series(t, "backstop_schedule_ready", "namespace", "shop", "reason", backstopv1alpha1.ReasonInvalidSchedule, "schedule", "nightly"); got != 0 {
		t.Errorf("ready (InvalidSchedule) = %v, want 0", got)
	}
	if series(t, "backstop_schedule_expected_interval_seconds", "namespace", "shop", "schedule", "nightly") != -1 {
		t.Error("an invalid schedule still has an expected interval")
	}

	// Deleted: nothing left.
	if err := r.Delete(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if series(t, "backstop_schedule_last_success_timestamp_seconds", "namespace", "shop", "schedule", "nightly") != -1 ||
		series(t, "backstop_schedule_suspended", "namespace", "shop", "schedule", "nightly") != -1 ||
		series(t, "backstop_schedule_ready", "namespace", "shop", "reason", backstopv1alpha1.ReasonInvalidSchedule, "schedule", "nightly") != -1 {
		t.Error("series of the deleted schedule remain")
	}
}

// series scrapes the manager's metrics registry as /metrics serves it and
// returns the value of one series (labels as name, value pairs in
// alphabetical order), or -1 when it is not served.
func series(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	sort.Strings(pairs)
	want := name + "{" + strings.Join(pairs, ",") + "} "
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}

// TestBackupScheduleReconciler_VerifiedMetric: a schedule with drills serves
// when its newest verified Backup's drill finished (its creation time until
// one has); a schedule without drills serves no series.
func TestBackupScheduleReconciler_VerifiedMetric(t *testing.T) {
	forgetSchedule("shop", "nightly")
	t.Cleanup(func() { forgetSchedule("shop", "nightly") })
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	sched := testSchedule(created, "0 2 * * *")
	sched.Spec.Drill = &backstopv1alpha1.DrillPolicy{Schedule: "0 5 * * 0"}
	drilled := metav1.NewTime(time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC))
	verified := func(name string, day int, status metav1.ConditionStatus, at metav1.Time) *backstopv1alpha1.Backup {
		done := metav1.NewTime(time.Date(2026, 12, day, 2, 5, 0, 0, time.UTC))
		return &backstopv1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{LabelSchedule: "nightly"}},
			Spec: backstopv1alpha1.BackupSpec{
				TargetRef: backstopv1alpha1.LocalObjectReference{Name: "orders"}, StoreRef: backstopv1alpha1.LocalObjectReference{Name: "s3"},
				ScheduleRef: &backstopv1alpha1.LocalObjectReference{Name: "nightly"},
			},
			Status: backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupSucceeded, CompletionTime: &done,
				ObjectStatus: backstopv1alpha1.ObjectStatus{Conditions: []metav1.Condition{{Type: backstopv1alpha1.ConditionVerified, Status: status, Reason: "x", LastTransitionTime: at}}},
				Verification: &backstopv1alpha1.BackupVerification{DrillName: name + "-drill", Time: &at}},
		}
	}
	// The newer Backup's drill failed: the older one is the newest verified.
	r, _ := newScheduleReconciler(t, time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), sched,
		verified("thu", 4, metav1.ConditionTrue, drilled), verified("fri", 5, metav1.ConditionFalse, metav1.NewTime(drilled.Add(24*time.Hour))))
	_, got := reconcileSchedule(t, r)
	if v := series(t, "backstop_backup_verified_timestamp_seconds", "namespace", "shop", "schedule", "nightly"); v != float64(drilled.Unix()) {
		t.Errorf("verified timestamp = %v, want %v", v, drilled.Unix())
	}
	if got.Status.LastVerifiedBackup != "thu" {
		t.Errorf("lastVerifiedBackup %q, want thu", got.Status.LastVerifiedBackup)
	}

	got.Spec.Drill = nil
	if err := r.Update(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	reconcileSchedule(t, r)
	if series(t, "backstop_backup_verified_timestamp_seconds", "namespace", "shop", "schedule", "nightly") != -1 {
		t.Error("a schedule without drills still serves a verified timestamp")
	}
}
