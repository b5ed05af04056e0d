package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/agent"
	"github.com/backstop-io/backstop/internal/conditions"
)

func newBackupReconciler(t *testing.T, objs ...client.Object) *BackupReconciler {
	t.Helper()
	targetIndex := func(o client.Object) []string {
		switch o := o.(type) {
		case *backstopv1alpha1.Backup:
			return []string{o.Spec.TargetRef.Name}
		case *backstopv1alpha1.Restore:
			return []string{o.Spec.TargetRef.Name}
		}
		return nil
	}
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).
		WithStatusSubresource(&backstopv1alpha1.Backup{}, &backstopv1alpha1.Restore{}, &backstopv1alpha1.BackupStore{}, &backstopv1alpha1.BackupTarget{}).
		WithIndex(&backstopv1alpha1.Backup{}, indexTargetName, targetIndex).
		WithIndex(&backstopv1alpha1.Restore{}, indexTargetName, targetIndex).
		WithIndex(&backstopv1alpha1.BackupDrill{}, indexBackupName, func(o client.Object) []string {
			return []string{o.(*backstopv1alpha1.BackupDrill).Spec.BackupRef.Name}
		}).
		WithObjects(objs...).Build()
	return &BackupReconciler{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(100),
		Clock: clocktesting.NewFakeClock(time.Now()), Agent: DefaultAgentOptions()}
}

func readyStoreAndTarget() (*backstopv1alpha1.BackupStore, *backstopv1alpha1.BackupTarget) {
	st, tg := testStore(), testTarget()
	st.Generation, tg.Generation = 1, 1
	conditions.MarkReady(st, backstopv1alpha1.ReasonSucceeded, "ok")
	conditions.MarkReady(tg, backstopv1alpha1.ReasonSucceeded, "ok")
	return st, tg
}

func reconcileBackup(t *testing.T, r *BackupReconciler, name string) *backstopv1alpha1.Backup {
	t.Helper()
	for i := 0; i < 2; i++ { // the first pass adds the finalizer
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "shop", Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	bk := &backstopv1alpha1.Backup{}
	if err := r.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: name}, bk); err != nil {
		t.Fatal(err)
	}
	return bk
}

func TestBackupReconciler_WaitsForRestoreOfSameTarget(t *testing.T) {
	st, tg := readyStoreAndTarget()
	restore := &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "rollback", Namespace: "shop"},
		Spec:       backstopv1alpha1.RestoreSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name}},
		Status:     backstopv1alpha1.RestoreStatus{Phase: backstopv1alpha1.RestoreRestoring},
	}
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "shop", Generation: 1},
		Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name},
			StoreRef: backstopv1alpha1.LocalObjectReference{Name: st.Name}},
	}
	r := newBackupReconciler(t, st, tg, restore, bk)
	got := reconcileBackup(t, r, "b")
	if got.Status.Phase != backstopv1alpha1.BackupPending {
		t.Errorf("phase %s, want Pending", got.Status.Phase)
	}
	if c := conditions.Get(got, backstopv1alpha1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("not Reconciling while waiting: %v", got.Status.Conditions)
	}
	jobs := &batchv1.JobList{}
	if err := r.List(context.Background(), jobs); err != nil || len(jobs.Items) != 0 {
		t.Fatalf("a backup Job started during a restore: %v %v", jobs.Items, err)
	}

	// Once the restore is over, the backup starts.
	restore.Status.Phase = backstopv1alpha1.RestoreSucceeded
	if err := r.Status().Update(context.Background(), restore); err != nil {
		t.Fatal(err)
	}
	got = reconcileBackup(t, r, "b")
	if got.Status.Phase != backstopv1alpha1.BackupRunning || got.Status.JobName == "" {
		t.Fatalf("phase %s job %q, want Running with a Job", got.Status.Phase, got.Status.JobName)
	}
	if err := r.List(context.Background(), jobs); err != nil || len(jobs.Items) != 1 {
		t.Fatalf("jobs: %d %v", len(jobs.Items), err)
	}
	if !metav1.IsControlledBy(&jobs.Items[0], got) {
		t.Error("the Job is not controlled by its Backup")
	}
}

func TestBackupReconciler_FailsWithTheStoreReason(t *testing.T) {
	st, tg := readyStoreAndTarget()
	conditions.MarkFailed(st, backstopv1alpha1.ReasonAuthenticationFailed, "s3 bucket: SignatureDoesNotMatch")
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "shop", Generation: 1},
		Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name},
			StoreRef: backstopv1alpha1.LocalObjectReference{Name: st.Name}},
	}
	r := newBackupReconciler(t, st, tg, bk)
	got := reconcileBackup(t, r, "b")
	if got.Status.Phase != backstopv1alpha1.BackupFailed || got.Status.Reason != backstopv1alpha1.ReasonAuthenticationFailed {
		t.Fatalf("phase %s reason %s, want Failed/AuthenticationFailed", got.Status.Phase, got.Status.Reason)
	}
	if c := conditions.Get(got, backstopv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Error("a failed Backup must be Stalled")
	}
	// A finished Backup is a record: another pass changes nothing.
	again := reconcileBackup(t, r, "b")
	if again.ResourceVersion != got.ResourceVersion {
		t.Error("a finished Backup was changed again")
	}
}

func TestBackupReconciler_JobPastItsDeadline(t *testing.T) {
	st, tg := readyStoreAndTarget()
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "slow", Namespace: "shop", Generation: 1, UID: "uid-slow"},
		Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name},
			StoreRef: backstopv1alpha1.LocalObjectReference{Name: st.Name}},
		Status: backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupRunning, JobName: "slow-backup"},
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "slow-backup", Namespace: "shop", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: backstopv1alpha1.GroupVersion.String(), Kind: "Backup", Name: "slow", UID: "uid-slow", Controller: ptrBool(true)}}},
		Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{
			Type: batchv1.JobFailed, Status: "True", Reason: batchv1.JobReasonDeadlineExceeded, Message: "Job was active longer than specified deadline"}}},
	}
	r := newBackupReconciler(t, st, tg, bk, job)
	got := reconcileBackup(t, r, "slow")
	if got.Status.Phase != backstopv1alpha1.BackupFailed || got.Status.Reason != backstopv1alpha1.ReasonDeadlineExceeded {
		t.Fatalf("phase %s reason %s (%s), want Failed/DeadlineExceeded", got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
	if got.Status.CompletionTime == nil {
		t.Error("no completion time")
	}
}

func ptrBool(b bool) *bool { return &b }

// finishedBackup is a Running Backup whose Job completed and whose agent
// reported a backup with this content digest.
func finishedBackup(name, content string) (*backstopv1alpha1.Backup, *batchv1.Job, *corev1.Pod) {
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Generation: 1, UID: types.UID("uid-" + name)},
		Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: "orders"},
			StoreRef: backstopv1alpha1.LocalObjectReference{Name: "s3"}},
		Status: backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupRunning, JobName: name + "-backup"},
	}
	res := agent.Result{Phase: agent.PhaseSucceeded, Engine: "postgres", ArtifactPath: "shop/orders/" + name, DataObject: "data.sql.zst.age",
		StoredBytes: 100, PlaintextBytes: 400, SHA256: strings.Repeat("1", 64), PlaintextSHA256: strings.Repeat("2", 64), ContentSHA256: content,
		StartTime: "2026-12-03T10:00:00Z", CompletionTime: "2026-12-03T10:01:00Z"}
	job, pod := completedAgentJob("Backup", bk, name+"-backup", res)
	return bk, job, pod
}

// completedAgentJob is a Job of owner (of that kind) that completed, and its
// ended pod, whose agent left res as its termination message.
func completedAgentJob(kind string, owner client.Object, name string, res agent.Result) (*batchv1.Job, *corev1.Pod) {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: owner.GetNamespace(), OwnerReferences: []metav1.OwnerReference{{
			APIVersion: backstopv1alpha1.GroupVersion.String(), Kind: kind, Name: owner.GetName(), UID: owner.GetUID(), Controller: ptrBool(true)}}},
		Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: "True"}}, Succeeded: 1},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-pod", Namespace: owner.GetNamespace(), Labels: map[string]string{batchv1.JobNameLabel: name}},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: "agent",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: string(res.Encode())}}}}},
	}
	return job, pod
}

func TestBackupReconciler_NotesContentEqualToThePreviousBackup(t *testing.T) {
	st, tg := readyStoreAndTarget()
	done := metav1.NewTime(time.Date(2026, 12, 2, 10, 1, 0, 0, time.UTC))
	same, other := strings.Repeat("c", 64), strings.Repeat("d", 64)
	prev := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "yesterday", Namespace: "shop"},
		Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name},
			StoreRef: backstopv1alpha1.LocalObjectReference{Name: st.Name}},
		Status: backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupSucceeded, CompletionTime: &done, ContentSHA256: same},
	}
	unchanged, job1, pod1 := finishedBackup("unchanged", same)
	changed, job2, pod2 := finishedBackup("changed", other)
	r := newBackupReconciler(t, st, tg, prev, unchanged, job1, pod1, changed, job2, pod2)
	stored := storeReachedBy(t, r)
	storeArtifact(t, stored, unchanged.Name, nil)
	storeArtifact(t, stored, changed.Name, nil)

	unchangedCount := func() float64 {
		return max(0, series(t, "backstop_backups_unchanged_total", "namespace", "shop", "target", tg.Name))
	}
	before := unchangedCount()
	got := reconcileBackup(t, r, "unchanged")
	ready := conditions.Get(got, backstopv1alpha1.ConditionReady)
	if got.Status.Phase != backstopv1alpha1.BackupSucceeded || got.Status.ContentSHA256 != same || got.Status.SameContentAs != "yesterday" ||
		ready == nil || !strings.Contains(ready.Message, "same content as Backup yesterday") {
		t.Fatalf("phase %s content %q sameContentAs %q ready %+v", got.Status.Phase, got.Status.ContentSHA256, got.Status.SameContentAs, ready)
	}

	if n := unchangedCount() - before; n != 1 {
		t.Errorf("backstop_backups_unchanged_total rose by %v, want 1", n)
	}

	got = reconcileBackup(t, r, "changed")
	ready = conditions.Get(got, backstopv1alpha1.ConditionReady)
	if got.Status.Phase != backstopv1alpha1.BackupSucceeded || got.Status.ContentSHA256 != other || got.Status.SameContentAs != "" ||
		ready == nil || strings.Contains(ready.Message, "same content") {
		t.Fatalf("phase %s content %q sameContentAs %q ready %+v", got.Status.Phase, got.Status.ContentSHA256, got.Status.SameContentAs, ready)
	}
	if n := unchangedCount() - before; n != 1 {
		t.Errorf("backstop_backups_unchanged_total rose by %v after a changed backup, want still 1", n)
	}
}

// TestBackupReconciler_SafetyBackupOfStartedRestore: two Restores of one
// target created in the same second, the one with the larger name created
// and started first. Its safety backup runs: the other Restore, ahead in
// line by name but not started, waits for it and is not in its way. An
// ordinary Backup still waits for both.
func TestBackupReconciler_SafetyBackupOfStartedRestore(t *testing.T) {
	st, tg := readyStoreAndTarget()
	sameSecond := metav1.NewTime(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	restore := func(name string, phase backstopv1alpha1.RestorePhase) *backstopv1alpha1.Restore {
		return &backstopv1alpha1.Restore{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", CreationTimestamp: sameSecond},
			Spec:       backstopv1alpha1.RestoreSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name}},
			Status:     backstopv1alpha1.RestoreStatus{Phase: phase},
		}
	}
	started, waiting := restore("rollback-b", backstopv1alpha1.RestoreVerifying), restore("rollback-a", backstopv1alpha1.RestorePending)
	backup := func(name string, labels map[string]string) *backstopv1alpha1.Backup {
		return &backstopv1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Generation: 1, Labels: labels},
			Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name},
				StoreRef: backstopv1alpha1.LocalObjectReference{Name: st.Name}},
		}
	}
	safety := backup(jobName(started.Name, "safety"), map[string]string{LabelRestore: started.Name})
	ordinary := backup("nightly", nil)
	r := newBackupReconciler(t, st, tg, started, waiting, safety, ordinary)

	if got := reconcileBackup(t, r, safety.Name); got.Status.Phase != backstopv1alpha1.BackupRunning {
		t.Errorf("safety Backup of the started Restore: phase %s (%v), want Running", got.Status.Phase, readyOf(got))
	}
	got := reconcileBackup(t, r, ordinary.Name)
	if c := conditions.Get(got, backstopv1alpha1.ConditionReconciling); got.Status.Phase != backstopv1alpha1.BackupPending || c == nil || !strings.Contains(c.Message, "waiting for Restore") {
		t.Errorf("ordinary Backup during restores: phase %s, Reconciling %+v", got.Status.Phase, c)
	}

	// The Restore that has not started waits for the started one, whose
	// name comes later: it was created first.
	rr := &RestoreReconciler{Client: r.Client, APIReader: r.Client, Recorder: r.Recorder, Clock: r.Clock, Agent: r.Agent}
	if _, err := rr.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(waiting)}); err != nil {
		t.Fatal(err)
	}
	rs := &backstopv1alpha1.Restore{}
	if err := r.Get(context.Background(), client.ObjectKeyFromObject(waiting), rs); err != nil {
		t.Fatal(err)
	}
	if c := conditions.Get(rs, backstopv1alpha1.ConditionReconciling); rs.Status.Phase != backstopv1alpha1.RestorePending || c == nil ||
		c.Reason != backstopv1alpha1.ReasonPending || !strings.Contains(c.Message, "waiting for Restore "+started.Name+" ") {
		t.Errorf("the Restore behind: phase %s, Reconciling %+v", rs.Status.Phase, c)
	}
}

// Deleting a Backup waits for a Job that may still write its manifest, and
// only for such a Job: a Backup whose Job has stopped (pruned by retention)
// is let go at once, its Job left to the garbage collector.
func TestBackupReconciler_DeletionWaitsOnlyForAJobStillRunning(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  batchv1.JobStatus
		waits   bool // the Backup stays, its Job being deleted
		jobKept bool // the Job is left to the garbage collector
	}{
		{name: "job complete", status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: "True"}}}, jobKept: true},
		{name: "job failed", status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: "True", Reason: "BackoffLimitExceeded"}}}, jobKept: true},
		{name: "job running", status: batchv1.JobStatus{Active: 1}, waits: true},
		{name: "job failed, a pod still terminating", status: batchv1.JobStatus{
			Conditions:  []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: "True", Reason: "DeadlineExceeded"}},
			Terminating: ptrInt32(1)}, waits: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, tg := readyStoreAndTarget()
			bk := &backstopv1alpha1.Backup{
				ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: "shop", Generation: 1, UID: "uid-old", Finalizers: []string{FinalizerArtifact}},
				Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name},
					StoreRef: backstopv1alpha1.LocalObjectReference{Name: st.Name}, DeletionPolicy: backstopv1alpha1.DeletionRetain},
				Status: backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupRunning, JobName: "old-backup"},
			}
			job := &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "old-backup", Namespace: "shop", OwnerReferences: []metav1.OwnerReference{{
					APIVersion: backstopv1alpha1.GroupVersion.String(), Kind: "Backup", Name: "old", UID: "uid-old", Controller: ptrBool(true)}}},
				Status: tc.status,
			}
			r := newBackupReconciler(t, st, tg, bk, job)
			if err := r.Delete(ctx, bk); err != nil {
				t.Fatal(err)
			}
			req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "shop", Name: "old"}}
			res, err := r.Reconcile(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			backupErr := r.Get(ctx, req.NamespacedName, &backstopv1alpha1.Backup{})
			jobErr := r.Get(ctx, client.ObjectKeyFromObject(job), &batchv1.Job{})
			if tc.waits {
				if backupErr != nil || res.RequeueAfter == 0 {
					t.Fatalf("the Backup must wait for its running Job: get %v, result %+v", backupErr, res)
				}
				if jobErr == nil {
					t.Fatal("the running Job was not deleted")
				}
				// The Job's deletion wakes the Backup, which then goes.
				if _, err := r.Reconcile(ctx, req); err != nil {
					t.Fatal(err)
				}
				if err := r.Get(ctx, req.NamespacedName, &backstopv1alpha1.Backup{}); err == nil {
					t.Fatal("the Backup stayed once its Job was gone")
				}
				return
			}
			if backupErr == nil || res.RequeueAfter != 0 {
				t.Fatalf("a Backup whose Job has stopped must go at once: get %v, result %+v", backupErr, res)
			}
			if (jobErr == nil) != tc.jobKept {
				t.Fatalf("the stopped Job: get %v; it is the garbage collector's to delete", jobErr)
			}
		})
	}
}

// The reconcile that creates a Backup's Job writes no status: the Job's
// creation wakes the Backup again, and that reconcile records the Job from
// the cache, with where it was placed. A Restore of the target waits for
// the Job meanwhile.
func TestBackupReconciler_StatusWrittenOnceTheJobIsSeen(t *testing.T) {
	st, _ := readyStoreAndTarget()
	tg := &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: "shop", Generation: 1},
		Spec:       backstopv1alpha1.BackupTargetSpec{Files: &backstopv1alpha1.FilesTarget{ClaimName: "uploads"}},
	}
	conditions.MarkReady(tg, backstopv1alpha1.ReasonSucceeded, "ok")
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: "shop"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}}}
	app := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "shop"},
		Spec: corev1.PodSpec{NodeName: "node-b", Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "uploads"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "shop", Generation: 1, Finalizers: []string{FinalizerArtifact}},
		Spec: backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: tg.Name},
			StoreRef: backstopv1alpha1.LocalObjectReference{Name: st.Name}},
	}
	r := newBackupReconciler(t, st, tg, claim, app, bk)
	ctx := context.Background()
	reconcile := func() *backstopv1alpha1.Backup {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bk)}); err != nil {
			t.Fatal(err)
		}
		got := &backstopv1alpha1.Backup{}
		if err := r.Get(ctx, client.ObjectKeyFromObject(bk), got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	created := reconcile()
	job := &batchv1.Job{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "b-backup"}, job); err != nil {
		t.Fatalf("no backup Job after the first reconcile: %v", err)
	}
	if created.ResourceVersion != bk.ResourceVersion || created.Status.Phase != "" {
		t.Errorf("the reconcile that created the Job wrote the status (phase %q)", created.Status.Phase)
	}
	// Until the Backup's status says Running, its Job keeps a Restore out.
	if busy, err := backupRunning(ctx, r, "shop", tg.Name, ""); err != nil || busy != "b" {
		t.Errorf("backupRunning = %q, %v; want b, whose Job runs", busy, err)
	}

	// (The start time is the Job's creation time, which this fake client
	// does not set.)
	got := reconcile()
	if got.Status.Phase != backstopv1alpha1.BackupRunning || got.Status.JobName != job.Name ||
		got.Status.ArtifactPath != "shop/uploads/b" || got.Status.Engine != "files" {
		t.Fatalf("status once the Job is seen: %+v", got.Status)
	}
	want := "backup Job b-backup started on node node-b beside pod app (ReadWriteOnce claim)"
	if c := conditions.Get(got, backstopv1alpha1.ConditionReconciling); c == nil || c.Message != want {
		t.Errorf("Reconciling = %v, want the message %q", c, want)
	}
	// A Job that goes on running costs no more writes.
	if again := reconcile(); again.ResourceVersion != got.ResourceVersion {
		t.Error("the status was written again for a Job still running")
	}
}
