package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/agent"
	"github.com/backstop-io/backstop/internal/conditions"
)

// A restore whose agent reports the data restored with a warning (an old
// tree it could not remove) is Succeeded, and says the warning in its Ready
// message and a Warning event.
func TestRestoreReconciler_SucceededWithTheAgentsWarning(t *testing.T) {
	started := metav1.NewTime(time.Now().Add(-time.Minute))
	durations := func() float64 {
		return max(0, series(t, "backstop_restore_duration_seconds_count", "namespace", "shop", "target", "orders", "result", "Succeeded"))
	}
	durationsBefore := durations()
	rs := &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "back", Namespace: "shop", Generation: 1, UID: types.UID("uid-back")},
		Spec:       backstopv1alpha1.RestoreSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: "orders"}},
		Status: backstopv1alpha1.RestoreStatus{Phase: backstopv1alpha1.RestoreRestoring, JobName: jobName("back", "restore"), StartTime: &started,
			Artifact: &backstopv1alpha1.RestoredArtifact{StoreName: "s3", Path: "shop/orders/nightly"}},
	}
	warning := "files: restored, but removing the old tree /data/.backstop-old-x1 failed: operation not permitted"
	res := agent.Result{Phase: agent.PhaseSucceeded, Engine: "files", Message: "Restored data.tar.zst.age after verifying it in full", Warning: warning}
	job, pod := completedAgentJob("Restore", rs, jobName("back", "restore"), res)
	br := newBackupReconciler(t, rs, job, pod)
	rec := events.NewFakeRecorder(10)
	r := &RestoreReconciler{Client: br.Client, APIReader: br.Client, Recorder: rec, Clock: br.Clock, Agent: br.Agent}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(rs)}); err != nil {
		t.Fatal(err)
	}
	got := &backstopv1alpha1.Restore{}
	if err := r.Get(context.Background(), client.ObjectKeyFromObject(rs), got); err != nil {
		t.Fatal(err)
	}
	ready := conditions.Get(got, backstopv1alpha1.ConditionReady)
	if got.Status.Phase != backstopv1alpha1.RestoreSucceeded || ready == nil || ready.Status != metav1.ConditionTrue ||
		!strings.Contains(ready.Message, "restored shop/orders/nightly into target orders; warning: "+warning) {
		t.Fatalf("phase %s, Ready %+v; want Succeeded with the warning", got.Status.Phase, ready)
	}
	if last := series(t, "backstop_restore_last_success_timestamp_seconds", "namespace", "shop", "target", "orders"); last != float64(got.Status.CompletionTime.Unix()) {
		t.Errorf("backstop_restore_last_success_timestamp_seconds = %v, want %d", last, got.Status.CompletionTime.Unix())
	}
	if n := durations() - durationsBefore; n != 1 {
		t.Errorf("backstop_restore_duration_seconds observed %v restores, want 1", n)
	}
	var warned bool
	for len(rec.Events) > 0 {
		ev := <-rec.Events
		warned = warned || (strings.HasPrefix(ev, "Warning "+ReasonRestoredWithWarning+" ") && strings.Contains(ev, warning))
	}
	if !warned {
		t.Error("no RestoredWithWarning event")
	}
}
