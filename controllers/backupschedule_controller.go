package controllers

import (
	"context"
	"sort"
	"time"

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
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/internal/retention"
	"github.com/backstop-io/backstop/internal/schedule"
)

// Event reasons of a schedule that are not condition reasons.
const (
	ReasonBackupCreated    = "BackupCreated"
	ReasonMissedSchedule   = "MissedSchedule"
	ReasonSkippedConcurent = "SkippedConcurrent"
	ReasonPruned           = "Pruned"
)

// BackupScheduleReconciler creates a Backup at each due time and prunes old
// ones. Due times are computed from the clock, never held in timers.
type BackupScheduleReconciler struct {
	client.Client
	// Concurrency is how many objects are reconciled at once.
	Concurrency int
	Recorder    events.EventRecorder
	Clock       clock.PassiveClock
	// Resync bounds a requeue, so that a wall-clock jump is noticed.
	Resync time.Duration
}

const defaultScheduleResync = 5 * time.Minute

// SetupWithManager registers the reconciler.
func (r *BackupScheduleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Resync <= 0 {
		r.Resync = defaultScheduleResync
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&backstopv1alpha1.BackupSchedule{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Backups carry no owner reference (deleting a schedule must not
		// delete its backups), so they are mapped back by their scheduleRef.
		Watches(&backstopv1alpha1.Backup{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			bk, ok := o.(*backstopv1alpha1.Backup)
			if !ok || bk.Spec.ScheduleRef == nil {
				return nil
			}
			return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: bk.Namespace, Name: bk.Spec.ScheduleRef.Name}}}
		}), builder.WithPredicates(backupPhaseChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency}).
		Named("backupschedule").
		Complete(r)
}

// Reconcile creates the Backup that is due, if any, prunes, and requeues for the next due time.
func (r *BackupScheduleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	log := ctrl.LoggerFrom(ctx)
	bs := &backstopv1alpha1.BackupSchedule{}
	if err := r.Get(ctx, req.NamespacedName, bs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bs.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	before := readySnapshot(bs)
	patch := client.MergeFrom(bs.DeepCopy())
	defer func() {
		bs.Status.ObservedGeneration = bs.Generation
		if perr := r.Status().Patch(ctx, bs, patch); perr != nil && err == nil {
			err = perr
		}
		announceTransition(r.Recorder, bs, before, "Schedule")
	}()

	sched, err := schedule.Parse(bs.Spec.Schedule, bs.Spec.TimeZone)
	if err != nil {
		bs.Status.NextScheduleTime = nil
		scheduleNextRun.DeleteLabelValues(bs.Namespace, bs.Name)
		conditions.MarkStalled(bs, backstopv1alpha1.ReasonInvalidSchedule, "%v", err)
		return ctrl.Result{}, nil
	}

	backups, err := r.backupsOf(ctx, bs)
	if err != nil {
		return ctrl.Result{}, err
	}
	active := r.updateHistory(bs, backups)
	if err := r.prune(ctx, bs, backups, sched.Location()); err != nil {
		return ctrl.Result{}, err
	}

	if bs.Spec.Suspend {
		bs.Status.NextScheduleTime = nil
		scheduleNextRun.DeleteLabelValues(bs.Namespace, bs.Name)
		conditions.MarkReady(bs, backstopv1alpha1.ReasonSuspended, "suspended: no new backups start")
		return ctrl.Result{}, nil
	}

	now := r.Clock.Now()
	var last *time.Time
	if bs.Status.LastScheduleTime != nil {
		t := bs.Status.LastScheduleTime.Time
		last = &t
	}
	due := sched.Due(now, bs.CreationTimestamp.Time, last, bs.Spec.StartingDeadlineSeconds)
	if !due.Missed.IsZero() {
		if err := r.runDue(ctx, bs, due, active); err != nil {
			return ctrl.Result{}, err
		}
	}
	if due.Next.IsZero() {
		bs.Status.NextScheduleTime = nil
		conditions.MarkReady(bs, backstopv1alpha1.ReasonSucceeded, "the schedule fires no more")
		return ctrl.Result{}, nil
	}
	next := metav1.NewTime(due.Next)
	bs.Status.NextScheduleTime = &next
	scheduleNextRun.WithLabelValues(bs.Namespace, bs.Name).Set(float64(due.Next.Unix()))
	conditions.MarkReady(bs, backstopv1alpha1.ReasonSucceeded, "next backup at %s", due.Next.In(sched.Location()).Format(time.RFC3339))
	wait := due.Next.Sub(now)
	log.V(1).Info("Next backup", "at", due.Next, "in", wait)
	// A little past the due time, so that the clock has reached it.
	return ctrl.Result{RequeueAfter: min(wait+100*time.Millisecond, r.Resync)}, nil
}

// runDue creates the Backup for the due time, or records why it does not.
func (r *BackupScheduleReconciler) runDue(ctx context.Context, bs *backstopv1alpha1.BackupSchedule, due schedule.Due, active []*backstopv1alpha1.Backup) error {
	scheduled := metav1.NewTime(due.Missed)
	if due.TooLate {
		bs.Status.LastScheduleTime = &scheduled
		r.Recorder.Eventf(bs, nil, corev1.EventTypeWarning, ReasonMissedSchedule, "Schedule",
			"missed the backup due at %s: past startingDeadlineSeconds", due.Missed.Format(time.RFC3339))
		return nil
	}
	if len(active) > 0 {
		switch bs.Spec.ConcurrencyPolicy {
		case backstopv1alpha1.ConcurrencyAllow:
		case backstopv1alpha1.ConcurrencyReplace:
			for _, bk := range active {
				if err := r.Delete(ctx, bk); client.IgnoreNotFound(err) != nil {
					return err
				}
			}
		default: // Forbid
			bs.Status.LastScheduleTime = &scheduled
			r.Recorder.Eventf(bs, nil, corev1.EventTypeWarning, ReasonSkippedConcurent, "Schedule",
				"skipped the backup due at %s: Backup %s is still running", due.Missed.Format(time.RFC3339), active[0].Name)
			return nil
		}
	}
	name := schedule.BackupName(bs.Name, due.Missed)
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: bs.Namespace,
			// The schedule's own labels are not copied: GitOps tools would
			// take the Backups for their own and prune them.
			Labels:      map[string]string{LabelSchedule: bs.Name, LabelTarget: bs.Spec.TargetRef.Name, LabelManagedBy: managedBy},
			Annotations: map[string]string{AnnotationScheduledTime: due.Missed.UTC().Format(time.RFC3339)},
			// Set here, it saves the Backup controller a write before the Job.
			Finalizers: []string{FinalizerArtifact},
		},
		Spec: backstopv1alpha1.BackupSpec{
			ScheduleRef:    &backstopv1alpha1.LocalObjectReference{Name: bs.Name},
			TargetRef:      bs.Spec.TargetRef,
			StoreRef:       bs.Spec.StoreRef,
			DeletionPolicy: bs.Spec.DeletionPolicy,
			JobTemplate:    bs.Spec.JobTemplate,
		},
	}
	if err := r.Create(ctx, bk); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	} else if err == nil {
		r.Recorder.Eventf(bs, bk, corev1.EventTypeNormal, ReasonBackupCreated, "Schedule", "created Backup %s for %s", name, due.Missed.Format(time.RFC3339))
	}
	bs.Status.LastScheduleTime = &scheduled
	bs.Status.LastBackupName = name
	return nil
}

func (r *BackupScheduleReconciler) backupsOf(ctx context.Context, bs *backstopv1alpha1.BackupSchedule) ([]*backstopv1alpha1.Backup, error) {
	list := &backstopv1alpha1.BackupList{}
	if err := r.List(ctx, list, client.InNamespace(bs.Namespace), client.MatchingFields{indexScheduleName: bs.Name}); err != nil {
		return nil, err
	}
	out := make([]*backstopv1alpha1.Backup, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp.IsZero() {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// updateHistory fills the status from the Backups and returns the active ones.
func (r *BackupScheduleReconciler) updateHistory(bs *backstopv1alpha1.BackupSchedule, backups []*backstopv1alpha1.Backup) []*backstopv1alpha1.Backup {
	var active []*backstopv1alpha1.Backup
	bs.Status.Active = nil
	for _, bk := range backups {
		switch bk.Status.Phase {
		case backstopv1alpha1.BackupSucceeded:
			if t := bk.Status.CompletionTime; t != nil && (bs.Status.LastSuccessfulTime == nil || t.After(bs.Status.LastSuccessfulTime.Time)) {
				tt := *t
				bs.Status.LastSuccessfulTime = &tt
			}
		case backstopv1alpha1.BackupFailed:
		default:
			active = append(active, bk)
			bs.Status.Active = append(bs.Status.Active, bk.Name)
		}
	}
	sort.Strings(bs.Status.Active)
	return active
}

// prune deletes the Backups the retention policy does not keep. Deleting a
// Backup deletes its artifact through the Backup's finalizer.
func (r *BackupScheduleReconciler) prune(ctx context.Context, bs *backstopv1alpha1.BackupSchedule, backups []*backstopv1alpha1.Backup, loc *time.Location) error {
	entries := make([]retention.Entry, 0, len(backups))
	byName := map[string]*backstopv1alpha1.Backup{}
	for _, bk := range backups {
		byName[bk.Name] = bk
		entries = append(entries, retention.Entry{
			Name:      bk.Name,
			Time:      backupTime(bk),
			Succeeded: bk.Status.Phase == backstopv1alpha1.BackupSucceeded,
			Failed:    bk.Status.Phase == backstopv1alpha1.BackupFailed,
			Running:   !isFinal(bk.Status.Phase),
		})
	}
	plan := retention.Apply(entries, bs.Spec.Retention, loc)
	for _, name := range plan.Delete {
		bk := byName[name]
		if err := r.Delete(ctx, bk, client.Preconditions{UID: &bk.UID}); client.IgnoreNotFound(err) != nil {
			return err
		}
		r.Recorder.Eventf(bs, bk, corev1.EventTypeNormal, ReasonPruned, "Prune", "deleted Backup %s (retention)", name)
	}
	return nil
}

// backupTime is when a Backup was scheduled, or created for an on-demand one.
func backupTime(bk *backstopv1alpha1.Backup) time.Time {
	if s, ok := bk.Annotations[AnnotationScheduledTime]; ok {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t
		}
	}
	return bk.CreationTimestamp.Time
}
