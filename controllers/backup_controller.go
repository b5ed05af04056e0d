package controllers

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

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
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/internal/humanize"
	"github.com/backstop-io/backstop/internal/pipeline"
	"github.com/backstop-io/backstop/internal/store"
)

// How long to wait before looking again at something that changes by itself
// but sends no event we watch (another kind's Ready, a Restore ending).
const waitRequeue = 5 * time.Second

// BackupReconciler runs one backup in a Job and records its result.
type BackupReconciler struct {
	client.Client
	// Concurrency is how many objects are reconciled at once.
	Concurrency int
	// APIReader reads Pods uncached: the operator never caches every Pod.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Agent     AgentOptions
	// OpenStore opens a BackupStore for the operator; nil means openStore.
	// Tests of one step give it a store of their own.
	OpenStore func(context.Context, client.Reader, *backstopv1alpha1.BackupStore) (store.Store, error)
}

// SetupWithManager registers the reconciler and its field indexes.
func (r *BackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&backstopv1alpha1.Backup{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// A Job's progress waits behind new Backups, whose Jobs are to start.
		Watches(&batchv1.Job{}, behind(handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &backstopv1alpha1.Backup{}, handler.OnlyControllerOwner()))).
		// A delete Job is not owned by its Backup (it must outlive it): it
		// names it in a label, and wakes it when it ends.
		Watches(&batchv1.Job{}, behind(handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			job, ok := o.(*batchv1.Job)
			if !ok || job.Labels[LabelComponent] != agentComponent(opDelete) || job.Labels[LabelBackup] == "" {
				return nil
			}
			if done, _, _ := jobFinished(job); !done {
				return nil
			}
			return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: job.Namespace, Name: job.Labels[LabelBackup]}}}
		}))).
		// A drill that ends changes the Verified condition of its Backup.
		Watches(&backstopv1alpha1.BackupDrill{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			dr, ok := o.(*backstopv1alpha1.BackupDrill)
			if !ok {
				return nil
			}
			return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: dr.Namespace, Name: dr.Spec.BackupRef.Name}}}
		}), builder.WithPredicates(drillEnded())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency}).
		Named("backup").
		Complete(r)
}

// Reconcile moves one Backup along: Pending -> Running -> Succeeded or Failed.
func (r *BackupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	bk := &backstopv1alpha1.Backup{}
	if err := r.Get(ctx, req.NamespacedName, bk); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bk.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, bk)
	}
	if !controllerutil.ContainsFinalizer(bk, FinalizerArtifact) {
		orig := bk.DeepCopy()
		controllerutil.AddFinalizer(bk, FinalizerArtifact)
		if err := r.Patch(ctx, bk, client.MergeFrom(orig)); err != nil {
			return ctrl.Result{}, err
		}
	}
	// A finished Backup is a record; nothing changes it again but what its
	// drills found.
	if isFinal(bk.Status.Phase) {
		return r.reconcileVerification(ctx, bk)
	}

	before := readySnapshot(bk)
	patch := newStatusPatch(bk)
	var jobCreated bool
	defer func() {
		// The new Job wakes this Backup again through the Job watch, and the
		// status is written then, from the Job in the cache (followJob).
		// Writing it now as well would put a second round trip in series in
		// the reconcile, when a thousand schedules fire at once.
		if jobCreated && err == nil {
			return
		}
		bk.Status.ObservedGeneration = bk.Generation
		if _, perr := patch.write(ctx, r.Client, bk); perr != nil && err == nil {
			err = perr
		}
		announceTransition(r.Recorder, bk, before, "Backup")
		if isFinal(bk.Status.Phase) && (before == nil || before.Status == metav1.ConditionUnknown) {
			recordBackupMetrics(bk)
		}
	}()
	if bk.Status.Phase == "" {
		bk.Status.Phase = backstopv1alpha1.BackupPending
	}
	result, jobCreated, err = r.reconcileRun(ctx, bk)
	return result, err
}

func isFinal(p backstopv1alpha1.BackupPhase) bool {
	return p == backstopv1alpha1.BackupSucceeded || p == backstopv1alpha1.BackupFailed
}

// reconcileRun starts the Backup's Job or follows it; jobCreated says
// that this reconcile created it.
func (r *BackupReconciler) reconcileRun(ctx context.Context, bk *backstopv1alpha1.Backup) (_ ctrl.Result, jobCreated bool, _ error) {
	job := &batchv1.Job{}
	name := jobName(bk.Name, "backup")
	err := r.Get(ctx, types.NamespacedName{Namespace: bk.Namespace, Name: name}, job)
	switch {
	case apierrors.IsNotFound(err):
		if bk.Status.JobName != "" {
			// The Job is gone (deleted by hand, or its TTL) before its result was read.
			return notCreated(r.finish(bk, backstopv1alpha1.ReasonJobFailed, "backup Job %s disappeared before it reported a result", name))
		}
		return r.startJob(ctx, bk, name)
	case err != nil:
		return ctrl.Result{}, false, err
	}
	if !metav1.IsControlledBy(job, bk) {
		return notCreated(r.finish(bk, backstopv1alpha1.ReasonInvalidSpec, "a Job named %s exists and does not belong to this Backup", name))
	}
	bk.Status.JobName = name
	return notCreated(r.followJob(ctx, bk, job))
}

// startJob checks the target and store, then creates the backup Job. It
// leaves the status as it was once the Job is created (created is true):
// the Job's creation wakes the Backup, and followJob records it.
func (r *BackupReconciler) startJob(ctx context.Context, bk *backstopv1alpha1.Backup, name string) (_ ctrl.Result, created bool, _ error) {
	target, store, wait, err := resolveTargetAndStore(ctx, r, bk.Namespace, bk.Spec.TargetRef.Name, bk.Spec.StoreRef.Name)
	if err != nil {
		if ue, ok := asUserError(err); ok {
			return notCreated(r.finish(bk, ue.Reason, "%s", ue.Message))
		}
		return ctrl.Result{}, false, err
	}
	if wait != "" {
		conditions.MarkReconciling(bk, backstopv1alpha1.ReasonPending, "%s", wait)
		return ctrl.Result{RequeueAfter: waitRequeue}, false, nil
	}
	// No backup starts on a target that is being restored.
	// A Restore's own safety backup runs before that Restore touches the target.
	if busy, err := restoreInProgress(ctx, r, bk.Namespace, target.Name, bk.Labels[LabelRestore]); err != nil {
		return ctrl.Result{}, false, err
	} else if busy != "" {
		conditions.MarkReconciling(bk, backstopv1alpha1.ReasonPending, "waiting for Restore %s of target %s to finish", busy, target.Name)
		return ctrl.Result{RequeueAfter: waitRequeue}, false, nil
	}

	artifactPath := backupArtifactPath(bk)
	tmpl := bk.Spec.JobTemplate
	job := buildAgentJob(r.Agent, agentJobSpec{
		Op:           opBackup,
		Name:         name,
		Namespace:    bk.Namespace,
		Labels:       map[string]string{LabelBackup: bk.Name, LabelTarget: target.Name, LabelComponent: agentComponent(opBackup), LabelManagedBy: managedBy},
		Target:       target,
		Store:        store,
		ArtifactPath: artifactPath,
		Template:     tmpl,
	})
	node, pod, err := placeBesideClaimUsers(ctx, r.APIReader, job, target)
	if err != nil {
		if ue, ok := asUserError(err); ok {
			return notCreated(r.finish(bk, ue.Reason, "%s", ue.Message))
		}
		return ctrl.Result{}, false, err
	}
	if node != "" {
		// For the status, written once the Job is seen (followJob).
		job.Annotations = map[string]string{AnnotationPlacedOnNode: node, AnnotationPlacedBesidePod: pod}
	}
	if err := ctrl.SetControllerReference(bk, job, r.Scheme()); err != nil {
		return ctrl.Result{}, false, err
	}
	if err := createJob(ctx, r.Client, r.APIReader, bk, "Backup", job); err != nil {
		if ue, ok := asUserError(err); ok {
			return notCreated(r.finish(bk, ue.Reason, "%s", ue.Message))
		}
		return ctrl.Result{}, false, err
	}
	ctrl.LoggerFrom(ctx).Info("Started backup Job", "job", name, "target", target.Name, "store", store.Name)
	return ctrl.Result{}, true, nil
}

func notCreated(res ctrl.Result, err error) (ctrl.Result, bool, error) { return res, false, err }

// backupArtifactPath is where a Backup's Job writes its artifact in the store.
func backupArtifactPath(bk *backstopv1alpha1.Backup) string {
	return path.Join(bk.Namespace, bk.Spec.TargetRef.Name, bk.Name)
}

// followJob turns the Job's state and the agent's result into the Backup's status.
func (r *BackupReconciler) followJob(ctx context.Context, bk *backstopv1alpha1.Backup, job *batchv1.Job) (ctrl.Result, error) {
	done, failedReason, failedMsg := jobFinished(job)
	if !done {
		if bk.Status.Phase == backstopv1alpha1.BackupRunning {
			// A Job that goes on running is no news, and costs no write.
			return ctrl.Result{}, nil
		}
		bk.Status.Phase = backstopv1alpha1.BackupRunning
		if bk.Status.StartTime == nil {
			t := metav1.NewTime(job.CreationTimestamp.Time)
			bk.Status.StartTime = &t
		}
		if bk.Status.ArtifactPath == "" {
			bk.Status.ArtifactPath = backupArtifactPath(bk)
		}
		if bk.Status.Engine == "" {
			// Shown while it runs; the agent's result sets it in any case.
			target := &backstopv1alpha1.BackupTarget{}
			if err := r.Get(ctx, types.NamespacedName{Namespace: bk.Namespace, Name: bk.Spec.TargetRef.Name}, target); err == nil {
				bk.Status.Engine = targetEngine(target)
			}
		}
		conditions.MarkReconciling(bk, backstopv1alpha1.ReasonProgressing, "backup Job %s started%s", job.Name,
			placementMessage(job.Annotations[AnnotationPlacedOnNode], job.Annotations[AnnotationPlacedBesidePod]))
		return ctrl.Result{}, nil
	}
	res, err := readAgentResult(ctx, r.APIReader, job)
	if err != nil {
		return ctrl.Result{}, err
	}
	if res == nil {
		// No result: the pod never ran the agent to the end.
		return r.finish(bk, failedReason, "%s", failedMsg)
	}
	if t, ok := parseTime(res.StartTime); ok {
		bk.Status.StartTime = &t
	}
	if res.Phase != "Succeeded" {
		reason := res.Reason
		if failedReason == backstopv1alpha1.ReasonDeadlineExceeded {
			reason = failedReason
		}
		return r.finish(bk, reason, "%s", res.Message)
	}
	if failedReason != "" {
		return r.finish(bk, failedReason, "the agent reported success but the Job failed: %s", failedMsg)
	}
	bk.Status.ArtifactPath = res.ArtifactPath
	bk.Status.DataObject = res.DataObject
	bk.Status.StoredBytes = res.StoredBytes
	bk.Status.StoredSize = humanize.Bytes(res.StoredBytes)
	bk.Status.PlaintextBytes = res.PlaintextBytes
	bk.Status.SHA256 = res.SHA256
	bk.Status.PlaintextSHA256 = res.PlaintextSHA256
	if res.Engine != "" {
		bk.Status.Engine = res.Engine
	}
	// Succeeded only once the manifest is in the store and agrees with the
	// agent: a backup is what the store holds, not what a pod said.
	if reason, msg, err := r.checkManifest(ctx, bk); err != nil {
		// Not read back yet: the Backup stays Running, saying why, and the
		// check is tried again.
		conditions.MarkReconciling(bk, backstopv1alpha1.ReasonProgressing, "the agent reported success; reading its manifest back from the store failed, trying again: %v", err)
		return ctrl.Result{RequeueAfter: manifestRetry}, nil
	} else if reason != "" {
		return r.finish(bk, reason, "%s", msg)
	}
	bk.Status.Phase = backstopv1alpha1.BackupSucceeded
	now := metav1.NewTime(r.Clock.Now())
	if t, ok := parseTime(res.CompletionTime); ok {
		now = t
	}
	bk.Status.CompletionTime = &now
	bk.Status.Reason, bk.Status.Message = "", ""
	bk.Status.ContentSHA256 = res.ContentSHA256
	conditions.Set(bk, backstopv1alpha1.ConditionVerified, metav1.ConditionUnknown, backstopv1alpha1.ReasonNotDrilled, notDrilledMessage)
	same := ""
	if prev, err := r.previousSuccess(ctx, bk); err != nil {
		return ctrl.Result{}, err
	} else if prev != nil && bk.Status.ContentSHA256 != "" && prev.Status.ContentSHA256 == bk.Status.ContentSHA256 {
		bk.Status.SameContentAs = prev.Name
		same = fmt.Sprintf("; same content as Backup %s", prev.Name)
		backupsUnchanged.WithLabelValues(bk.Namespace, bk.Spec.TargetRef.Name).Inc()
	}
	conditions.MarkReady(bk, backstopv1alpha1.ReasonSucceeded, "stored %s (%d bytes, sha256 %s)%s", path.Join(bk.Status.ArtifactPath, bk.Status.DataObject), bk.Status.StoredBytes, shortSum(bk.Status.SHA256), same)
	return ctrl.Result{}, nil
}

// previousSuccess returns the newest other successful Backup of bk's target
// that completed before bk, or nil. It is the cache's object: read it only.
func (r *BackupReconciler) previousSuccess(ctx context.Context, bk *backstopv1alpha1.Backup) (*backstopv1alpha1.Backup, error) {
	// The cache's own objects, not copies: a target's Backups are read here
	// once per Backup that ends, and copying them all each time grows with
	// the square of their number. Nothing here writes to them.
	list := &backstopv1alpha1.BackupList{}
	if err := r.List(ctx, list, client.InNamespace(bk.Namespace), client.MatchingFields{indexTargetName: bk.Spec.TargetRef.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var prev *backstopv1alpha1.Backup
	for i := range list.Items {
		b := &list.Items[i]
		if b.Name == bk.Name || b.Status.Phase != backstopv1alpha1.BackupSucceeded || b.Status.CompletionTime == nil ||
			!b.Status.CompletionTime.Before(bk.Status.CompletionTime) {
			continue
		}
		if prev == nil || prev.Status.CompletionTime.Before(b.Status.CompletionTime) {
			prev = b
		}
	}
	return prev, nil
}

// openStore opens a store for the operator (nil for a volume store).
func (r *BackupReconciler) openStore(ctx context.Context, bs *backstopv1alpha1.BackupStore) (store.Store, error) {
	if r.OpenStore != nil {
		return r.OpenStore(ctx, r, bs)
	}
	return openStore(ctx, r, bs)
}

// manifestRetry is how long a Backup waits before it tries again to read
// its manifest back from a store it could not read.
const manifestRetry = 30 * time.Second

// checkManifest reads the manifest back from the store and checks it
// against what the agent reported, and that the data object is there with
// the manifest's size. A reason means the backup is not in the store as
// reported; an error, that the store could not be read (it is tried
// again). Volume stores are reached only by Jobs: there the agent's own
// report stands.
func (r *BackupReconciler) checkManifest(ctx context.Context, bk *backstopv1alpha1.Backup) (reason, msg string, err error) {
	bs := &backstopv1alpha1.BackupStore{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: bk.Namespace, Name: bk.Spec.StoreRef.Name}, bs); err != nil {
		if apierrors.IsNotFound(err) {
			return "", "", fmt.Errorf("BackupStore %s not found", bk.Spec.StoreRef.Name)
		}
		return "", "", err
	}
	st, err := r.openStore(ctx, bs)
	if err != nil {
		return "", "", err
	}
	if st == nil {
		return "", "", nil
	}
	m, err := readManifest(ctx, st, bk.Status.ArtifactPath)
	if store.IsNotFound(err) {
		return backstopv1alpha1.ReasonManifestNotFound, fmt.Sprintf("the agent reported success but there is no manifest in the store: %v", err), nil
	} else if errors.Is(err, errManifestParse) {
		return backstopv1alpha1.ReasonIntegrityMismatch, fmt.Sprintf("the agent reported success but %v", err), nil
	} else if err != nil {
		return "", "", err
	}
	if m.SHA256 != bk.Status.SHA256 || m.StoredSize != bk.Status.StoredBytes || m.DataObject != bk.Status.DataObject {
		return backstopv1alpha1.ReasonIntegrityMismatch, "the manifest in the store does not match what the agent reported", nil
	}
	info, err := st.Stat(ctx, path.Join(bk.Status.ArtifactPath, m.DataObject))
	if store.IsNotFound(err) {
		return backstopv1alpha1.ReasonIntegrityMismatch, fmt.Sprintf("the data object cannot be found: %v", err), nil
	} else if err != nil {
		return "", "", err
	}
	if info.Size != m.StoredSize {
		return backstopv1alpha1.ReasonIntegrityMismatch, fmt.Sprintf("the data object holds %d bytes, the manifest says %d", info.Size, m.StoredSize), nil
	}
	return "", "", nil
}

// finish marks the Backup Failed for good.
func (r *BackupReconciler) finish(bk *backstopv1alpha1.Backup, reason, format string, args ...any) (ctrl.Result, error) {
	if reason == "" {
		reason = backstopv1alpha1.ReasonJobFailed
	}
	msg := fmt.Sprintf(format, args...)
	now := metav1.NewTime(r.Clock.Now())
	bk.Status.Phase = backstopv1alpha1.BackupFailed
	bk.Status.CompletionTime = &now
	bk.Status.Reason = reason
	bk.Status.Message = msg
	conditions.MarkStalled(bk, reason, "%s", msg)
	return ctrl.Result{}, nil
}

// jobWaitRecheck is how long a Backup being deleted waits on a Job (its
// stopped backup Job to be gone, its delete Job to end) before it looks
// again without being woken: the Job watch wakes it when the Job changes.
const jobWaitRecheck = 30 * time.Second

// reconcileDelete stops a running Job, then deletes the artifact unless the
// policy is Retain, then lets the Backup go.
func (r *BackupReconciler) reconcileDelete(ctx context.Context, bk *backstopv1alpha1.Backup) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(bk, FinalizerArtifact) {
		return ctrl.Result{}, nil
	}
	log := ctrl.LoggerFrom(ctx)
	// A Job still writing could commit a manifest after we delete: stop it
	// and wait until it is gone, which wakes this Backup (the Job watch).
	// A stopped Job writes nothing more, and the garbage collector removes
	// it with the Backup: a Backup pruned after it ended is let go at once,
	// with no Job deletion to wait for.
	job, err := ownBackupJob(ctx, r, bk)
	if err != nil {
		return ctrl.Result{}, err
	}
	if job != nil && !jobStopped(job) {
		if job.DeletionTimestamp.IsZero() {
			if err := r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationForeground)); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
		}
		// The Job's deletion wakes this Backup; this is only a safety net.
		return ctrl.Result{RequeueAfter: jobWaitRecheck}, nil
	}

	if bk.Spec.DeletionPolicy != backstopv1alpha1.DeletionRetain && bk.Status.ArtifactPath != "" {
		done, err := r.deleteArtifact(ctx, bk)
		if err != nil && r.leftInDeletedNamespace(ctx, bk, err) {
			done, err = true, nil
		}
		if err != nil {
			if ue, ok := asUserError(err); ok {
				// Keep the finalizer: deleting the Backup must not orphan data silently.
				r.Recorder.Eventf(bk, nil, corev1.EventTypeWarning, ue.Reason, "Delete", "cannot delete the artifact: %s", ue.Message)
				return ctrl.Result{RequeueAfter: time.Minute}, nil
			}
			return ctrl.Result{}, err
		}
		if !done {
			return ctrl.Result{RequeueAfter: jobWaitRecheck}, nil
		}
		log.Info("Deleted the artifact", "path", bk.Status.ArtifactPath)
	}
	orig := bk.DeepCopy()
	controllerutil.RemoveFinalizer(bk, FinalizerArtifact)
	return ctrl.Result{}, r.Patch(ctx, bk, client.MergeFrom(orig))
}

// leftInDeletedNamespace tells whether a Backup whose artifact could not be
// deleted (err) may go anyway, leaving the artifact in the store: only when
// its namespace is being deleted and the failure will not pass. The
// namespace controller deletes the store and its Secret at the same time
// as the Backups, and nothing created in a terminating namespace (a delete
// Job) can run, so waiting would hold the namespace in Terminating for
// ever. A store that exists but does not answer is waited for: it may come
// back. The log line names what was left.
func (r *BackupReconciler) leftInDeletedNamespace(ctx context.Context, bk *backstopv1alpha1.Backup, err error) bool {
	if ue, ok := asUserError(err); ok && ue.Reason == backstopv1alpha1.ReasonStoreUnreachable {
		return false
	}
	ns := &corev1.Namespace{}
	if gerr := r.APIReader.Get(ctx, types.NamespacedName{Name: bk.Namespace}, ns); gerr != nil || ns.DeletionTimestamp.IsZero() {
		return false
	}
	ctrl.LoggerFrom(ctx).Info("Left the artifact in the store: the namespace is being deleted and the artifact cannot be deleted",
		"path", bk.Status.ArtifactPath, "store", bk.Spec.StoreRef.Name, "error", err.Error())
	return true
}

// deleteArtifact deletes the manifest first (so a half-deleted artifact is
// never taken for a backup), then the rest. Volume stores are reached by a Job.
func (r *BackupReconciler) deleteArtifact(ctx context.Context, bk *backstopv1alpha1.Backup) (done bool, err error) {
	bs := &backstopv1alpha1.BackupStore{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: bk.Namespace, Name: bk.Spec.StoreRef.Name}, bs); err != nil {
		if apierrors.IsNotFound(err) {
			return false, userErrorf(backstopv1alpha1.ReasonStoreNotFound, "BackupStore %q not found", bk.Spec.StoreRef.Name)
		}
		return false, err
	}
	st, err := r.openStore(ctx, bs)
	if err != nil {
		return false, err
	}
	if st == nil {
		return r.deleteWithJob(ctx, bk, bs)
	}
	if err := pipeline.DeleteArtifact(ctx, st, bk.Status.ArtifactPath); err != nil {
		return false, userErrorf(backstopv1alpha1.ReasonStoreUnreachable, "%v", err)
	}
	return true, nil
}

// deleteWithJob runs `backstop-agent delete` with the volume mounted.
func (r *BackupReconciler) deleteWithJob(ctx context.Context, bk *backstopv1alpha1.Backup, bs *backstopv1alpha1.BackupStore) (bool, error) {
	name := jobName(bk.Name, "delete")
	job := &batchv1.Job{}
	err := r.Get(ctx, types.NamespacedName{Namespace: bk.Namespace, Name: name}, job)
	if apierrors.IsNotFound(err) {
		job = buildAgentJob(r.Agent, agentJobSpec{
			Op:           opDelete,
			Name:         name,
			Namespace:    bk.Namespace,
			Labels:       map[string]string{LabelBackup: bk.Name, LabelComponent: agentComponent(opDelete), LabelManagedBy: managedBy},
			Store:        bs,
			ArtifactPath: bk.Status.ArtifactPath,
			Template:     &backstopv1alpha1.JobTemplate{TTLSecondsAfterFinished: ptrInt32(300)},
		})
		// Not owned by the Backup: it must outlive the Backup's deletion.
		return false, client.IgnoreAlreadyExists(r.Create(ctx, job))
	} else if err != nil {
		return false, err
	}
	done, reason, msg := jobFinished(job)
	if !done {
		return false, nil
	}
	if reason != "" {
		return false, userErrorf(reason, "delete Job %s failed: %s", name, msg)
	}
	return true, nil
}

func ptrInt32(v int32) *int32 { return &v }

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func parseTime(s string) (metav1.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return metav1.Time{}, false
	}
	return metav1.NewTime(t), true
}
