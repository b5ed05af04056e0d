package controllers

import (
	"context"
	"fmt"
	"path"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/agent"
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/internal/manifest"
)

// ReasonSafetyBackupFailed: the safety backup taken before a restore failed,
// so the restore did not touch the target.
const ReasonSafetyBackupFailed = "SafetyBackupFailed"

// ReasonRestoredWithWarning: an event on a Restore that Succeeded, for what
// did not go as planned once the data was in place.
const ReasonRestoredWithWarning = "RestoredWithWarning"

// RestoreReconciler runs a Restore once: optional safety backup, then a
// verify Job, then the restore Job. A finished Restore never runs again.
type RestoreReconciler struct {
	client.Client
	// Concurrency is how many objects are reconciled at once.
	Concurrency int
	APIReader   client.Reader
	Recorder    events.EventRecorder
	Clock       clock.PassiveClock
	Agent       AgentOptions
}

// SetupWithManager registers the reconciler.
func (r *RestoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&backstopv1alpha1.Restore{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&batchv1.Job{}).
		Watches(&backstopv1alpha1.Backup{}, handler.EnqueueRequestsFromMapFunc(r.restoresOfTarget)).
		// A Restore that ends lets the next one of its target go.
		Watches(&backstopv1alpha1.Restore{}, handler.EnqueueRequestsFromMapFunc(r.restoresOfTarget), builder.WithPredicates(restoreEnded())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency}).
		Named("restore").
		Complete(r)
}

// restoresOfTarget wakes the unfinished Restores of the target of a Backup
// or a Restore that changed: a Restore waits for running backups of its
// target, and for the Restores ahead of it.
func (r *RestoreReconciler) restoresOfTarget(ctx context.Context, o client.Object) []ctrl.Request {
	var target, self string
	switch o := o.(type) {
	case *backstopv1alpha1.Backup:
		target = o.Spec.TargetRef.Name
	case *backstopv1alpha1.Restore:
		target, self = o.Spec.TargetRef.Name, o.Name
	default:
		return nil
	}
	list := &backstopv1alpha1.RestoreList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexTargetName: target}); err != nil {
		return nil
	}
	var reqs []ctrl.Request
	for _, rs := range list.Items {
		if rs.Name != self && !restoreFinal(rs.Status.Phase) {
			reqs = append(reqs, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: rs.Namespace, Name: rs.Name}})
		}
	}
	return reqs
}

func restoreFinal(p backstopv1alpha1.RestorePhase) bool {
	return p == backstopv1alpha1.RestoreSucceeded || p == backstopv1alpha1.RestoreFailed
}

// Reconcile moves one Restore along its phases.
func (r *RestoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	rs := &backstopv1alpha1.Restore{}
	if err := r.Get(ctx, req.NamespacedName, rs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Once finished, never again: a re-apply or an operator restart changes nothing.
	if !rs.DeletionTimestamp.IsZero() || restoreFinal(rs.Status.Phase) {
		return ctrl.Result{}, nil
	}
	before := readySnapshot(rs)
	patch := newStatusPatch(rs)
	defer func() {
		rs.Status.ObservedGeneration = rs.Generation
		if _, perr := patch.write(ctx, r.Client, rs); perr != nil && err == nil {
			err = perr
		}
		announceTransition(r.Recorder, rs, before, "Restore")
		if restoreFinal(rs.Status.Phase) {
			recordRestoreMetrics(rs)
		}
	}()
	if rs.Status.Phase == "" {
		rs.Status.Phase = backstopv1alpha1.RestorePending
	}
	res, err := r.reconcileRestore(ctx, rs)
	if ue, ok := asUserError(err); ok {
		return r.fail(rs, ue.Reason, "%s", ue.Message)
	}
	return res, err
}

func (r *RestoreReconciler) reconcileRestore(ctx context.Context, rs *backstopv1alpha1.Restore) (ctrl.Result, error) {
	// Jobs already started decide the phase, whatever else changed since.
	verifyName, restoreName := jobName(rs.Name, "verify"), jobName(rs.Name, "restore")
	if rs.Status.Phase == backstopv1alpha1.RestoreRestoring {
		return r.followRestoreJob(ctx, rs, restoreName)
	}

	// Restores of one target run one at a time, in creation order.
	if ahead, err := restoreAhead(ctx, r, rs); err != nil {
		return ctrl.Result{}, err
	} else if ahead != "" {
		conditions.MarkReconciling(rs, backstopv1alpha1.ReasonPending, "waiting for Restore %s of target %s to finish: restores of one target run one at a time, in creation order", ahead, rs.Spec.TargetRef.Name)
		return ctrl.Result{RequeueAfter: waitRequeue}, nil
	}

	// Resolve the artifact once and keep it in status, so a later backup
	// never changes what this Restore restores.
	if rs.Status.Artifact == nil {
		art, wait, err := r.resolveArtifact(ctx, rs)
		if err != nil || wait != "" {
			if wait != "" {
				conditions.MarkReconciling(rs, backstopv1alpha1.ReasonPending, "%s", wait)
				return ctrl.Result{RequeueAfter: waitRequeue}, nil
			}
			return ctrl.Result{}, err
		}
		rs.Status.Artifact = art
	}
	target, store, wait, err := resolveTargetAndStore(ctx, r, rs.Namespace, rs.Spec.TargetRef.Name, rs.Status.Artifact.StoreName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wait != "" {
		conditions.MarkReconciling(rs, backstopv1alpha1.ReasonPending, "%s", wait)
		return ctrl.Result{RequeueAfter: waitRequeue}, nil
	}
	if rs.Status.StartTime == nil {
		now := metav1.NewTime(r.Clock.Now())
		rs.Status.StartTime = &now
	}

	// The artifact is verified in full before anything else happens.
	if rs.Status.Phase == backstopv1alpha1.RestorePending || rs.Status.Phase == backstopv1alpha1.RestoreVerifying {
		res, err := r.runJob(ctx, rs, opVerify, verifyName, target, store)
		if res == nil || err != nil {
			if err == nil {
				rs.Status.Phase = backstopv1alpha1.RestoreVerifying
				conditions.MarkReconciling(rs, backstopv1alpha1.ReasonProgressing, "verifying %s", rs.Status.Artifact.Path)
			}
			return ctrl.Result{}, err
		}
	}

	// Then the safety backup of what the target holds now.
	if sb := rs.Spec.SafetyBackup; sb != nil && sb.Enabled {
		done, err := r.safetyBackup(ctx, rs, sb)
		if !done || err != nil {
			return ctrl.Result{}, err
		}
	}

	// No restore while a backup of the same target runs.
	if busy, err := backupRunning(ctx, r, rs.Namespace, target.Name, rs.Status.SafetyBackupName); err != nil {
		return ctrl.Result{}, err
	} else if busy != "" {
		conditions.MarkReconciling(rs, backstopv1alpha1.ReasonPending, "waiting for Backup %s of target %s to finish", busy, target.Name)
		return ctrl.Result{RequeueAfter: waitRequeue}, nil
	}

	if busy, err := restoreJobActive(ctx, r, rs.Namespace, target.Name, rs.Name); err != nil {
		return ctrl.Result{}, err
	} else if busy != "" {
		conditions.MarkReconciling(rs, backstopv1alpha1.ReasonPending, "waiting for restore Job %s of target %s to finish", busy, target.Name)
		return ctrl.Result{RequeueAfter: waitRequeue}, nil
	}

	if _, err := r.runJob(ctx, rs, opRestore, restoreName, target, store); err != nil {
		return ctrl.Result{}, err
	}
	rs.Status.Phase = backstopv1alpha1.RestoreRestoring
	rs.Status.JobName = restoreName
	conditions.MarkReconciling(rs, backstopv1alpha1.ReasonProgressing, "restoring %s into target %s", rs.Status.Artifact.Path, target.Name)
	return ctrl.Result{}, nil
}

// runJob creates the Job when missing and returns the agent's result once
// the Job succeeded (nil while it runs); a failed Job is a user error with
// the agent's reason.
func (r *RestoreReconciler) runJob(ctx context.Context, rs *backstopv1alpha1.Restore, op agentOp, name string, target *backstopv1alpha1.BackupTarget, store *backstopv1alpha1.BackupStore) (*agent.Result, error) {
	job := &batchv1.Job{}
	err := r.Get(ctx, types.NamespacedName{Namespace: rs.Namespace, Name: name}, job)
	if apierrors.IsNotFound(err) {
		job = buildAgentJob(r.Agent, agentJobSpec{
			Op:           op,
			Name:         name,
			Namespace:    rs.Namespace,
			Labels:       map[string]string{LabelRestore: rs.Name, LabelTarget: target.Name, LabelComponent: agentComponent(op), LabelManagedBy: managedBy},
			Target:       target,
			Store:        store,
			ArtifactPath: rs.Status.Artifact.Path,
			// Known from the Backup or its manifest, or from the verify Job
			// for the restore Job: the restore reads what was verified.
			ExpectSHA256: rs.Status.Artifact.SHA256,
			Template:     rs.Spec.JobTemplate,
			LockTimeout:  rs.Spec.LockTimeout,
		})
		if _, _, err := placeBesideClaimUsers(ctx, r.APIReader, job, target); err != nil {
			return nil, err
		}
		if err := ctrl.SetControllerReference(rs, job, r.Scheme()); err != nil {
			return nil, err
		}
		if err := createJob(ctx, r.Client, r.APIReader, rs, "Restore", job); err != nil {
			return nil, err
		}
		rs.Status.JobName = name
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !metav1.IsControlledBy(job, rs) {
		return nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "a Job named %s exists and does not belong to this Restore", name)
	}
	done, failedReason, failedMsg := jobFinished(job)
	if !done {
		return nil, nil
	}
	res, err := readAgentResult(ctx, r.APIReader, job)
	if err != nil {
		return nil, err
	}
	switch {
	case res != nil && res.Phase != "Succeeded":
		reason := res.Reason
		if failedReason == backstopv1alpha1.ReasonDeadlineExceeded {
			reason = failedReason
		}
		return nil, userErrorf(reason, "%s", res.Message)
	case failedReason != "":
		return nil, userErrorf(failedReason, "%s", failedMsg)
	case res == nil:
		return nil, userErrorf(backstopv1alpha1.ReasonJobFailed, "Job %s finished without a result from the agent", name)
	}
	if rs.Status.Artifact.SHA256 == "" {
		rs.Status.Artifact.SHA256 = res.SHA256
	}
	return res, nil
}

func (r *RestoreReconciler) followRestoreJob(ctx context.Context, rs *backstopv1alpha1.Restore, name string) (ctrl.Result, error) {
	job := &batchv1.Job{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: rs.Namespace, Name: name}, job); err != nil {
		if apierrors.IsNotFound(err) {
			// Never start a second restore: report instead.
			return r.fail(rs, backstopv1alpha1.ReasonJobFailed, "restore Job %s disappeared before it reported a result; the restore is not repeated", name)
		}
		return ctrl.Result{}, err
	}
	target, store := &backstopv1alpha1.BackupTarget{}, &backstopv1alpha1.BackupStore{}
	res, err := r.runJob(ctx, rs, opRestore, name, target, store)
	if err != nil {
		if ue, ok := asUserError(err); ok {
			return r.fail(rs, ue.Reason, "%s", ue.Message)
		}
		return ctrl.Result{}, err
	}
	if res == nil {
		conditions.MarkReconciling(rs, backstopv1alpha1.ReasonProgressing, "restoring %s into target %s", rs.Status.Artifact.Path, rs.Spec.TargetRef.Name)
		return ctrl.Result{}, nil
	}
	now := metav1.NewTime(r.Clock.Now())
	rs.Status.Phase = backstopv1alpha1.RestoreSucceeded
	rs.Status.CompletionTime = &now
	if res.Warning != "" {
		// The data is restored; what went wrong after the swap is for a human.
		conditions.MarkReady(rs, backstopv1alpha1.ReasonSucceeded, "restored %s into target %s; warning: %s", rs.Status.Artifact.Path, rs.Spec.TargetRef.Name, res.Warning)
		r.Recorder.Eventf(rs, nil, corev1.EventTypeWarning, ReasonRestoredWithWarning, "Restore", "restored %s into target %s, but: %s", rs.Status.Artifact.Path, rs.Spec.TargetRef.Name, res.Warning)
		return ctrl.Result{}, nil
	}
	conditions.MarkReady(rs, backstopv1alpha1.ReasonSucceeded, "restored %s into target %s", rs.Status.Artifact.Path, rs.Spec.TargetRef.Name)
	return ctrl.Result{}, nil
}

// safetyBackup creates the safety Backup and reports whether it succeeded.
func (r *RestoreReconciler) safetyBackup(ctx context.Context, rs *backstopv1alpha1.Restore, sb *backstopv1alpha1.SafetyBackup) (bool, error) {
	name := jobName(rs.Name, "safety")
	bk := &backstopv1alpha1.Backup{}
	err := r.Get(ctx, types.NamespacedName{Namespace: rs.Namespace, Name: name}, bk)
	if apierrors.IsNotFound(err) {
		storeName := rs.Status.Artifact.StoreName
		if sb.StoreRef != nil {
			storeName = sb.StoreRef.Name
		}
		bk = &backstopv1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: rs.Namespace, Labels: map[string]string{LabelRestore: rs.Name, LabelTarget: rs.Spec.TargetRef.Name, LabelManagedBy: managedBy}},
			Spec: backstopv1alpha1.BackupSpec{
				TargetRef: rs.Spec.TargetRef,
				StoreRef:  backstopv1alpha1.LocalObjectReference{Name: storeName},
				// The safety copy outlives the Restore object.
				DeletionPolicy: backstopv1alpha1.DeletionRetain,
				JobTemplate:    rs.Spec.JobTemplate,
			},
		}
		if err := r.Create(ctx, bk); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, err
		}
		rs.Status.SafetyBackupName = name
		conditions.MarkReconciling(rs, backstopv1alpha1.ReasonProgressing, "taking safety Backup %s of the current data", name)
		return false, nil
	} else if err != nil {
		return false, err
	}
	rs.Status.SafetyBackupName = name
	switch bk.Status.Phase {
	case backstopv1alpha1.BackupSucceeded:
		return true, nil
	case backstopv1alpha1.BackupFailed:
		return false, userErrorf(ReasonSafetyBackupFailed, "safety Backup %s failed (%s): %s; the target was not touched", name, bk.Status.Reason, bk.Status.Message)
	}
	conditions.MarkReconciling(rs, backstopv1alpha1.ReasonProgressing, "taking safety Backup %s of the current data", name)
	return false, nil
}

// resolveArtifact finds the store and path the source names.
func (r *RestoreReconciler) resolveArtifact(ctx context.Context, rs *backstopv1alpha1.Restore) (*backstopv1alpha1.RestoredArtifact, string, error) {
	src := rs.Spec.Source
	switch {
	case src.BackupRef != nil:
		bk := &backstopv1alpha1.Backup{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: rs.Namespace, Name: src.BackupRef.Name}, bk); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, "", userErrorf(backstopv1alpha1.ReasonBackupNotFound, "Backup %q not found", src.BackupRef.Name)
			}
			return nil, "", err
		}
		switch bk.Status.Phase {
		case backstopv1alpha1.BackupSucceeded:
		case backstopv1alpha1.BackupFailed:
			return nil, "", userErrorf(backstopv1alpha1.ReasonBackupNotFound, "Backup %q failed (%s); it holds nothing to restore", bk.Name, bk.Status.Reason)
		default:
			return nil, fmt.Sprintf("waiting for Backup %s to finish", bk.Name), nil
		}
		return &backstopv1alpha1.RestoredArtifact{BackupName: bk.Name, StoreName: bk.Spec.StoreRef.Name, Path: bk.Status.ArtifactPath, SHA256: bk.Status.SHA256}, "", nil
	case src.Path != "":
		return &backstopv1alpha1.RestoredArtifact{StoreName: src.StoreRef.Name, Path: src.Path}, "", nil
	case src.LatestOf != "":
		return r.latestOf(ctx, rs)
	}
	return nil, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "no source set")
}

// latestOf finds the newest complete artifact (one with a manifest) of a
// target name in this namespace's part of the store.
func (r *RestoreReconciler) latestOf(ctx context.Context, rs *backstopv1alpha1.Restore) (*backstopv1alpha1.RestoredArtifact, string, error) {
	bs := &backstopv1alpha1.BackupStore{}
	storeName := rs.Spec.Source.StoreRef.Name
	if err := r.Get(ctx, types.NamespacedName{Namespace: rs.Namespace, Name: storeName}, bs); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("waiting for BackupStore %s to exist", storeName), nil
		}
		return nil, "", err
	}
	st, err := openStore(ctx, r, bs)
	if err != nil {
		return nil, "", err
	}
	if st == nil {
		return nil, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "source.latestOf needs a store the operator can list; restore from a volume store by source.path")
	}
	prefix := path.Join(rs.Namespace, rs.Spec.Source.LatestOf) + "/"
	objs, err := st.List(ctx, prefix)
	if err != nil {
		return nil, "", userErrorf(backstopv1alpha1.ReasonStoreUnreachable, "listing %s: %v", prefix, err)
	}
	var best *manifest.Manifest
	bestPath := ""
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, "/"+manifest.FileName) {
			continue
		}
		dir := path.Dir(o.Key)
		m, err := readManifest(ctx, st, dir)
		if err != nil {
			continue
		}
		if best == nil || m.CompletedAt.After(best.CompletedAt) {
			best, bestPath = m, dir
		}
	}
	if best == nil {
		return nil, "", userErrorf(backstopv1alpha1.ReasonBackupNotFound, "no complete backup of target %q under %s in store %s", rs.Spec.Source.LatestOf, prefix, storeName)
	}
	return &backstopv1alpha1.RestoredArtifact{StoreName: storeName, Path: bestPath, SHA256: best.SHA256}, "", nil
}

func (r *RestoreReconciler) fail(rs *backstopv1alpha1.Restore, reason, format string, args ...any) (ctrl.Result, error) {
	if reason == "" {
		reason = backstopv1alpha1.ReasonRestoreFailed
	}
	msg := fmt.Sprintf(format, args...)
	now := metav1.NewTime(r.Clock.Now())
	rs.Status.Phase = backstopv1alpha1.RestoreFailed
	rs.Status.CompletionTime = &now
	rs.Status.Reason = reason
	rs.Status.Message = msg
	conditions.MarkStalled(rs, reason, "%s", msg)
	return ctrl.Result{}, nil
}
