package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// Deleting a Backup from a volume store runs a delete Job, which the Backup
// does not own (it must outlive it). Its end wakes the Backup through the
// Job watch: the Backup is gone well before the controller's own recheck.
func TestBackupReconciler_DeleteJobsEndWakesItsBackup(t *testing.T) {
	ctx := context.Background()
	// The drill rig's helpers make the store; only the Backup controller runs.
	g := newRig(t, func(mgr ctrl.Manager, g *drillRig, agentOpts AgentOptions) error {
		return (&BackupReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: g.events,
			Clock: clocktesting.NewFakeClock(time.Now()), Agent: agentOpts}).SetupWithManager(mgr)
	})
	ns := g.ns
	g.store("vol", false)

	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "old", Finalizers: []string{FinalizerArtifact}},
		Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: "db"},
			StoreRef: backstopv1alpha1.LocalObjectReference{Name: "vol"}},
	}
	g.create(bk)
	now := metav1.Now()
	bk.Status = backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupSucceeded, Engine: "postgres", ArtifactPath: ns + "/db/old", CompletionTime: &now}
	if err := g.c.Status().Update(ctx, bk); err != nil {
		t.Fatal(err)
	}
	if err := g.c.Delete(ctx, bk); err != nil {
		t.Fatal(err)
	}

	job := &batchv1.Job{}
	key := client.ObjectKey{Namespace: ns, Name: jobName("old", "delete")}
	eventually(t, 20*time.Second, func() error { return g.c.Get(ctx, key, job) })
	if job.Labels[LabelBackup] != "old" || len(job.OwnerReferences) != 0 {
		t.Fatalf("the delete Job must name its Backup and not be owned by it: labels %v, owners %v", job.Labels, job.OwnerReferences)
	}
	// The Backup waits for the Job: it is still there.
	if err := g.c.Get(ctx, client.ObjectKeyFromObject(bk), &backstopv1alpha1.Backup{}); err != nil {
		t.Fatalf("the Backup went before its artifact was deleted: %v", err)
	}

	// The Job ends, as the Job controller would record it.
	ended := metav1.Now()
	job.Status.StartTime, job.Status.CompletionTime, job.Status.Succeeded = &ended, &ended, 1
	job.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: ended},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: ended},
	}
	if err := g.c.Status().Update(ctx, job); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, jobWaitRecheck/3, func() error {
		if err := g.c.Get(ctx, client.ObjectKeyFromObject(bk), &backstopv1alpha1.Backup{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the Backup is still there once its delete Job ended (get: %v)", err)
		}
		return nil
	})
	t.Logf("the Backup went %s after its delete Job ended", time.Since(start).Round(10*time.Millisecond))
}
