package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
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
	ReasonBackupCreated     = "BackupCreated"
	ReasonMissedSchedule    = "MissedSchedule"
	ReasonSkippedConcurrent = "SkippedConcurrent"
	// ReasonSkippedSuspended: a due time passed while the schedule was
	// suspended; it is skipped, never run on resume.
	ReasonSkippedSuspended = "SkippedSuspended"
	// ReasonReplaced: under concurrencyPolicy Replace, a running Backup of an
	// earlier due time was deleted so that the due one could start.
	ReasonReplaced = "Replaced"
	ReasonPruned   = "Pruned"
)

// BackupScheduleReconciler creates a Backup at each due time and prunes old
// ones. Due times are computed from the clock, never held in timers.
//
// Reads from the cache may be stale: a reconcile can see the schedule as it
// was before the last reconcile wrote its status. Whether a due time is
// handled is therefore decided from a current read of the schedule and from
// the Backups themselves, whose names are deterministic: a Backup that
// exists for a due time means that due time is handled. The cached schedule
// is current when it is the very version this process last wrote; else it
// is read from the API server.
type BackupScheduleReconciler struct {
	client.Client
	// APIReader reads from the API server, past the cache. Nil means Client.
	APIReader client.Reader
	// Concurrency is how many objects are reconciled at once.
	Concurrency int
	Recorder    events.EventRecorder
	Clock       clock.PassiveClock
	// Resync bounds a requeue, so that a wall-clock jump is noticed.
	Resync time.Duration

	// written maps a schedule's UID to the resourceVersion of this
	// process's last status write to it.
	written sync.Map
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
		// What a Backup did waits behind the schedules that are due.
		Watches(&backstopv1alpha1.Backup{}, behind(handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			bk, ok := o.(*backstopv1alpha1.Backup)
			if !ok || bk.Spec.ScheduleRef == nil {
				return nil
			}
			return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: bk.Namespace, Name: bk.Spec.ScheduleRef.Name}}}
		})), builder.WithPredicates(backupChangedForSchedule())).
		// A target or store that appears, goes or changes its Ready changes
		// the schedules' own Ready (dependencyProblem).
		Watches(&backstopv1alpha1.BackupTarget{}, behind(handler.EnqueueRequestsFromMapFunc(r.schedulesUsing(func(bs *backstopv1alpha1.BackupSchedule) string {
			return bs.Spec.TargetRef.Name
		}))), builder.WithPredicates(readinessChanged())).
		Watches(&backstopv1alpha1.BackupStore{}, behind(handler.EnqueueRequestsFromMapFunc(r.schedulesUsing(func(bs *backstopv1alpha1.BackupSchedule) string {
			return bs.Spec.StoreRef.Name
		}))), builder.WithPredicates(readinessChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency}).
		Named("backupschedule").
		Complete(r)
}

func (r *BackupScheduleReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// scheduleEvent is an event about a decision recorded in the status; it is
// sent only once the status holds the decision, so that a reconcile retried
// after a failed write never reports the same due time twice.
type scheduleEvent struct {
	eventType, reason, note string
	// action is "Schedule" unless set. It and related tell apart events of
	// one reconcile that share a reason: the event recorder folds events
	// with the same object, type, reason, action and related object into
	// one series, and keeps only the first note.
	action  string
	related client.Object
}

// Reconcile creates the Backup that is due, if any, prunes, and requeues for the next due time.
func (r *BackupScheduleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	log := ctrl.LoggerFrom(ctx)
	bs := &backstopv1alpha1.BackupSchedule{}
	if err := r.Get(ctx, req.NamespacedName, bs); err != nil {
		if apierrors.IsNotFound(err) {
			forgetSchedule(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bs.DeletionTimestamp.IsZero() {
		r.written.Delete(bs.UID)
		forgetSchedule(bs.Namespace, bs.Name)
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	sched, perr := schedule.Parse(bs.Spec.Schedule, bs.Spec.TimeZone)
	all, err := r.backupsOf(ctx, bs)
	if err != nil {
		return ctrl.Result{}, err
	}

	// A due time is decided on a current read: the cached schedule may not
	// hold yet the lastScheduleTime the previous reconcile wrote, and would
	// show the same due time as due again. When the due time's Backup is
	// already in the cache, it is handled, and no read is needed; nor when
	// the cache holds what this process last wrote.
	decides := false
	if perr == nil {
		if due := dueAt(sched, bs, now); !due.Missed.IsZero() && findBackup(all, schedule.BackupName(bs.Name, due.Missed)) == nil {
			last, ok := r.written.Load(bs.UID)
			decides = !ok || last.(string) != bs.ResourceVersion
		}
	}
	if decides {
		fresh := &backstopv1alpha1.BackupSchedule{}
		if err := r.reader().Get(ctx, req.NamespacedName, fresh); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if !fresh.DeletionTimestamp.IsZero() {
			return ctrl.Result{}, nil
		}
		bs = fresh
		sched, perr = schedule.Parse(bs.Spec.Schedule, bs.Spec.TimeZone)
	}

	before := readySnapshot(bs)
	// The status is written only over the version it was computed from: a
	// write from a stale read would put back what the schedule was (its
	// conditions, a suspension since lifted) over what it is. On a conflict
	// the reconcile runs again, on a newer read.
	patch := newLockedStatusPatch(bs)
	var pending []scheduleEvent
	var nextDrill time.Time
	defer func() {
		// The next due time comes at the default priority, whatever woke
		// this reconcile (a Backup's change comes behind).
		result.Priority = ptr.To(0)
		if !nextDrill.IsZero() && err == nil {
			// Wake for the next drill too, a little past its due time.
			if wait := nextDrill.Sub(now) + 100*time.Millisecond; result.RequeueAfter == 0 || wait < result.RequeueAfter {
				result.RequeueAfter = max(wait, 100*time.Millisecond)
			}
		}
		var interval time.Duration
		if perr == nil { // the parse error; perr below is the patch's
			interval = sched.ExpectedInterval(now)
		}
		bs.Status.ObservedGeneration = bs.Generation
		changed, perr := patch.write(ctx, r.Client, bs)
		if perr == nil && changed {
			r.written.Store(bs.UID, bs.ResourceVersion)
		}
		if perr != nil {
			if apierrors.IsConflict(perr) && err == nil {
				log.V(1).Info("The schedule changed since it was read; reconciling again")
				result, err = ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
				return
			}
			if err == nil {
				err = perr
			}
			return
		}
		for _, ev := range pending {
			action := ev.action
			if action == "" {
				action = "Schedule"
			}
			r.Recorder.Eventf(bs, ev.related, ev.eventType, ev.reason, action, "%s", ev.note)
		}
		announceTransition(r.Recorder, bs, before, "Schedule")
		recordScheduleMetrics(bs, interval, all)
	}()

	if perr != nil {
		bs.Status.NextScheduleTime = nil
		scheduleNextRun.DeleteLabelValues(bs.Namespace, bs.Name)
		conditions.MarkStalled(bs, backstopv1alpha1.ReasonInvalidSchedule, "%v", perr)
		return ctrl.Result{}, nil
	}

	backups := make([]*backstopv1alpha1.Backup, 0, len(all))
	for _, bk := range all {
		if bk.DeletionTimestamp.IsZero() {
			backups = append(backups, bk)
		}
	}
	active := r.updateHistory(bs, backups)
	recordVerified(bs, backups)
	if err := r.prune(ctx, bs, backups, sched.Location()); err != nil {
		return ctrl.Result{}, err
	}
	if nextDrill, err = r.drills(ctx, bs, backups, now, &pending); err != nil {
		return ctrl.Result{}, err
	}

	catchUp(sched, bs, all, now, &pending)
	due := dueAt(sched, bs, now)
	// The schedule was suspended when last seen: due times that passed
	// since then passed while it was suspended, and are skipped too.
	wasSuspended := bs.Spec.Suspend || readyReason(bs) == backstopv1alpha1.ReasonSuspended
	var note string
	if !due.Missed.IsZero() {
		if wasSuspended {
			note = r.skipSuspended(bs, due, all, sched.Location(), &pending)
		} else if err := r.runDue(ctx, bs, due, all, active, &pending); err != nil {
			return ctrl.Result{}, err
		}
	}

	if bs.Spec.Suspend {
		bs.Status.NextScheduleTime = nil
		scheduleNextRun.DeleteLabelValues(bs.Namespace, bs.Name)
		conditions.MarkReady(bs, backstopv1alpha1.ReasonSuspended, "suspended: no new backups start%s", note)
		if due.Next.IsZero() {
			return ctrl.Result{}, nil
		}
		// Wake at the next due time to record it as skipped.
		return ctrl.Result{RequeueAfter: min(due.Next.Sub(now)+100*time.Millisecond, r.Resync)}, nil
	}
	if due.Next.IsZero() {
		bs.Status.NextScheduleTime = nil
		conditions.MarkReady(bs, backstopv1alpha1.ReasonSucceeded, "the schedule fires no more%s", note)
		return ctrl.Result{}, nil
	}
	next := metav1.NewTime(due.Next)
	bs.Status.NextScheduleTime = &next
	scheduleNextRun.WithLabelValues(bs.Namespace, bs.Name).Set(float64(due.Next.Unix()))
	nextAt := due.Next.In(sched.Location()).Format(time.RFC3339)
	if reason, msg, err := r.dependencyProblem(ctx, bs); err != nil {
		return ctrl.Result{}, err
	} else if reason != "" {
		conditions.MarkStalled(bs, reason, "%s; next backup at %s%s", msg, nextAt, note)
	} else {
		conditions.MarkReady(bs, backstopv1alpha1.ReasonSucceeded, "next backup at %s%s", nextAt, note)
	}
	wait := due.Next.Sub(now)
	log.V(1).Info("Next backup", "at", due.Next, "in", wait)
	// A little past the due time, so that the clock has reached it.
	return ctrl.Result{RequeueAfter: min(wait+100*time.Millisecond, r.Resync)}, nil
}

// dependencyProblem says what keeps the schedule's Backups from running:
// a target or store that is missing (they wait for it) or checked and not
// Ready (they fail). Due times still create their Backups, so that each is
// recorded and starts as soon as it can; the schedule's Ready condition
// says why they do not run.
func (r *BackupScheduleReconciler) dependencyProblem(ctx context.Context, bs *backstopv1alpha1.BackupSchedule) (reason, msg string, err error) {
	target := &backstopv1alpha1.BackupTarget{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: bs.Namespace, Name: bs.Spec.TargetRef.Name}, target); apierrors.IsNotFound(err) {
		return backstopv1alpha1.ReasonTargetNotFound, fmt.Sprintf("BackupTarget %s not found: Backups wait for it", bs.Spec.TargetRef.Name), nil
	} else if err != nil {
		return "", "", err
	}
	store := &backstopv1alpha1.BackupStore{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: bs.Namespace, Name: bs.Spec.StoreRef.Name}, store); apierrors.IsNotFound(err) {
		return backstopv1alpha1.ReasonStoreNotFound, fmt.Sprintf("BackupStore %s not found: Backups wait for it", bs.Spec.StoreRef.Name), nil
	} else if err != nil {
		return "", "", err
	}
	// Being checked is no problem: Backups wait for the check.
	if _, err := readiness("BackupStore", store); err != nil {
		return backstopv1alpha1.ReasonStoreNotReady, err.Error() + ": Backups fail", nil
	}
	if _, err := readiness("BackupTarget", target); err != nil {
		return backstopv1alpha1.ReasonTargetNotReady, err.Error() + ": Backups fail", nil
	}
	return "", "", nil
}

// schedulesUsing maps a target or store to the schedules that name it.
func (r *BackupScheduleReconciler) schedulesUsing(ref func(*backstopv1alpha1.BackupSchedule) string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []ctrl.Request {
		list := &backstopv1alpha1.BackupScheduleList{}
		if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
			return nil
		}
		var reqs []ctrl.Request
		for i := range list.Items {
			if ref(&list.Items[i]) == o.GetName() {
				reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return reqs
	}
}

// catchUp moves lastScheduleTime to the newest due time up to now that
// has a Backup. Such a Backup was made by a reconcile whose status write was
// lost (the operator killed between the two), and whose events were lost
// with it, since they are sent only once the status is written. The due
// times before it that have no Backup are recorded here as missed, as that
// reconcile would have (the same note, one per gap between Backups), so
// that they are neither left unrecorded nor counted again in the next range.
func catchUp(sched schedule.Schedule, bs *backstopv1alpha1.BackupSchedule, all []*backstopv1alpha1.Backup, now time.Time, pending *[]scheduleEvent) {
	after := bs.CreationTimestamp.Time
	if last := bs.Status.LastScheduleTime; last != nil {
		after = last.Time
	}
	var made []*backstopv1alpha1.Backup
	for _, bk := range all {
		if _, ok := bk.Annotations[AnnotationScheduledTime]; ok && backupTime(bk).After(after) && !backupTime(bk).After(now) {
			made = append(made, bk)
		}
	}
	sort.Slice(made, func(i, j int) bool { return backupTime(made[i]).Before(backupTime(made[j])) })
	for _, bk := range made {
		t := backupTime(bk)
		// The due times in (last, t): those in (last, t], but t itself,
		// which ran (t may not be one if the spec changed since).
		due := dueAt(sched, bs, t)
		older := due.Passed()
		if due.Missed.Equal(t) {
			older--
		}
		if note := missedBefore(bs, older, t); note != "" {
			*pending = append(*pending, scheduleEvent{eventType: corev1.EventTypeWarning, reason: ReasonMissedSchedule, note: note, related: bk})
		}
		at := metav1.NewTime(t)
		bs.Status.LastScheduleTime, bs.Status.LastBackupName = &at, bk.Name
	}
}

// dueAt is where the schedule stands at now, by the status it was read with.
func dueAt(sched schedule.Schedule, bs *backstopv1alpha1.BackupSchedule, now time.Time) schedule.Due {
	var last *time.Time
	if bs.Status.LastScheduleTime != nil {
		t := bs.Status.LastScheduleTime.Time
		last = &t
	}
	return sched.Due(now, bs.CreationTimestamp.Time, last, bs.Spec.StartingDeadlineSeconds)
}

func readyReason(bs *backstopv1alpha1.BackupSchedule) string {
	if c := conditions.Get(bs, backstopv1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// skipSuspended records the due times that passed while the schedule was
// suspended as skipped: lastScheduleTime moves to the newest, so that none of
// them runs on resume. It returns a note for the Ready message.
func (r *BackupScheduleReconciler) skipSuspended(bs *backstopv1alpha1.BackupSchedule, due schedule.Due, all []*backstopv1alpha1.Backup, loc *time.Location, pending *[]scheduleEvent) string {
	name := schedule.BackupName(bs.Name, due.Missed)
	scheduled := metav1.NewTime(due.Missed)
	bs.Status.LastScheduleTime = &scheduled
	if findBackup(all, name) != nil {
		// Created before the suspension was seen: handled, not skipped.
		bs.Status.LastBackupName = name
		return ""
	}
	n := due.Skipped
	if !due.TooLate {
		n++ // Missed itself is skipped too
	}
	at := due.Missed.In(loc).Format(time.RFC3339)
	note := fmt.Sprintf("skipped the backup due at %s while the schedule was suspended", at)
	if n > 1 {
		note = fmt.Sprintf("skipped %d backups due while the schedule was suspended, the newest at %s", n, at)
	}
	*pending = append(*pending, scheduleEvent{eventType: corev1.EventTypeNormal, reason: ReasonSkippedSuspended, note: note})
	return "; " + note
}

// runDue creates the Backup for the due time, or records why it does not.
// all holds every Backup of the schedule, terminating ones included; active
// the unfinished ones.
func (r *BackupScheduleReconciler) runDue(ctx context.Context, bs *backstopv1alpha1.BackupSchedule, due schedule.Due, all, active []*backstopv1alpha1.Backup, pending *[]scheduleEvent) error {
	log := ctrl.LoggerFrom(ctx)
	scheduled := metav1.NewTime(due.Missed)
	name := schedule.BackupName(bs.Name, due.Missed)
	handled := func() {
		bs.Status.LastScheduleTime = &scheduled
		bs.Status.LastBackupName = name
	}
	// The Backup of this due time exists (even if it is being deleted): the
	// due time is handled. It is never concurrent with itself.
	if findBackup(all, name) != nil {
		handled()
		return nil
	}
	older := due.Passed() - 1 // Missed itself runs, or is reported on its own
	if note := missedBefore(bs, older, due.Missed); note != "" {
		*pending = append(*pending, scheduleEvent{eventType: corev1.EventTypeWarning, reason: ReasonMissedSchedule, note: note})
	}
	if due.TooLate {
		bs.Status.LastScheduleTime = &scheduled
		// Its own action: beside the range above, with the same reason, it
		// would be folded into it.
		*pending = append(*pending, scheduleEvent{eventType: corev1.EventTypeWarning, reason: ReasonMissedSchedule, action: "Skip",
			note: fmt.Sprintf("missed the backup due at %s: past startingDeadlineSeconds", due.Missed.Format(time.RFC3339))})
		return nil
	}

	// Only Backups of earlier due times can be in the way.
	var earlier []*backstopv1alpha1.Backup
	for _, bk := range active {
		if bk.Name != name && backupTime(bk).Before(due.Missed) {
			earlier = append(earlier, bk)
		}
	}
	if len(earlier) > 0 && bs.Spec.ConcurrencyPolicy != backstopv1alpha1.ConcurrencyAllow {
		// The cache may not show this due time's Backup yet: ask the API
		// server before skipping or deleting anything.
		if exists, err := r.backupExists(ctx, bs.Namespace, name); err != nil {
			return err
		} else if exists {
			handled()
			return nil
		}
		// And only Backups still running by the API server count.
		var running []*backstopv1alpha1.Backup
		for _, bk := range earlier {
			cur, err := r.stillRunning(ctx, bk)
			if err != nil {
				return err
			}
			if cur != nil {
				running = append(running, cur)
			}
		}
		switch bs.Spec.ConcurrencyPolicy {
		case backstopv1alpha1.ConcurrencyReplace:
			for _, old := range running {
				err := r.Delete(ctx, old, client.Preconditions{UID: &old.UID, ResourceVersion: &old.ResourceVersion})
				if apierrors.IsNotFound(err) {
					continue
				}
				if err != nil {
					// A conflict: it changed since it was read; decide again.
					return err
				}
				r.Recorder.Eventf(bs, old, corev1.EventTypeNormal, ReasonReplaced, "Replace",
					"deleted Backup %s (due at %s, still running) to start Backup %s for %s: concurrencyPolicy is Replace",
					old.Name, backupTime(old).Format(time.RFC3339), name, due.Missed.Format(time.RFC3339))
				log.Info("Deleted a running Backup to replace it", "deleted", old.Name, "deletedDueAt", backupTime(old), "replacement", name, "dueAt", due.Missed)
			}
		case backstopv1alpha1.ConcurrencyAllow:
		default: // Forbid
			if len(running) > 0 {
				bs.Status.LastScheduleTime = &scheduled
				*pending = append(*pending, scheduleEvent{eventType: corev1.EventTypeWarning, reason: ReasonSkippedConcurrent,
					note: fmt.Sprintf("skipped the backup due at %s: Backup %s (due at %s) is still running",
						due.Missed.Format(time.RFC3339), running[0].Name, backupTime(running[0]).Format(time.RFC3339))})
				return nil
			}
		}
	}
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
		Spec: BackupSpecOf(bs),
	}
	bk.Spec.ScheduleRef = &backstopv1alpha1.LocalObjectReference{Name: bs.Name}
	if err := r.Create(ctx, bk); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	} else if err == nil {
		r.Recorder.Eventf(bs, bk, corev1.EventTypeNormal, ReasonBackupCreated, "Schedule", "created Backup %s for %s", name, due.Missed.Format(time.RFC3339))
	}
	handled()
	// Active now, as the next reconcile will find it: that one then has
	// nothing to write.
	if !slices.Contains(bs.Status.Active, name) {
		bs.Status.Active = append(bs.Status.Active, name)
		sort.Strings(bs.Status.Active)
	}
	return nil
}

// BackupSpecOf is the spec of a Backup with a schedule's settings: its
// target, store, deletion policy and Job overrides. The schedule sets
// scheduleRef on the Backups it creates; an on-demand Backup run with the
// schedule's settings (kubectl backstop backup) leaves it unset, so that it
// is not counted in the schedule's history and retention.
func BackupSpecOf(bs *backstopv1alpha1.BackupSchedule) backstopv1alpha1.BackupSpec {
	return backstopv1alpha1.BackupSpec{
		TargetRef:      bs.Spec.TargetRef,
		StoreRef:       bs.Spec.StoreRef,
		DeletionPolicy: bs.Spec.DeletionPolicy,
		JobTemplate:    bs.Spec.JobTemplate.DeepCopy(),
	}
}

// missedBefore says that the older due times after lastScheduleTime and
// before "before" will never run (the operator was down, or fell behind,
// across more than one), or "" when there are none.
func missedBefore(bs *backstopv1alpha1.BackupSchedule, older int, before time.Time) string {
	if older <= 0 {
		return ""
	}
	after := "the schedule was created at " + bs.CreationTimestamp.UTC().Format(time.RFC3339)
	if last := bs.Status.LastScheduleTime; last != nil {
		after = last.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("missed %d backups due after %s and before %s: the operator was not running or fell behind, and only the newest due time runs",
		older, after, before.UTC().Format(time.RFC3339))
}

// backupExists asks the API server whether a Backup exists.
func (r *BackupScheduleReconciler) backupExists(ctx context.Context, ns, name string) (bool, error) {
	err := r.reader().Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &backstopv1alpha1.Backup{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// stillRunning reads a Backup from the API server and returns it if it is
// still unfinished and not being deleted, and its Job is not over, or nil.
func (r *BackupScheduleReconciler) stillRunning(ctx context.Context, bk *backstopv1alpha1.Backup) (*backstopv1alpha1.Backup, error) {
	cur := &backstopv1alpha1.Backup{}
	if err := r.reader().Get(ctx, client.ObjectKeyFromObject(bk), cur); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if cur.UID != bk.UID || isFinal(cur.Status.Phase) || !cur.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	// A Backup whose Job is over no longer touches the target, and what it
	// stored is about to be recorded (its Backup controller may be behind,
	// or restarting): Forbid need not wait for it, and Replace must not
	// delete it.
	job, err := ownBackupJob(ctx, r, cur)
	if err != nil {
		return nil, err
	}
	if job != nil && jobStopped(job) {
		return nil, nil
	}
	return cur, nil
}

func findBackup(list []*backstopv1alpha1.Backup, name string) *backstopv1alpha1.Backup {
	for _, bk := range list {
		if bk.Name == name {
			return bk
		}
	}
	return nil
}

// backupsOf lists the schedule's Backups, those being deleted included.
func (r *BackupScheduleReconciler) backupsOf(ctx context.Context, bs *backstopv1alpha1.BackupSchedule) ([]*backstopv1alpha1.Backup, error) {
	list := &backstopv1alpha1.BackupList{}
	if err := r.List(ctx, list, client.InNamespace(bs.Namespace), client.MatchingFields{indexScheduleName: bs.Name}); err != nil {
		return nil, err
	}
	out := make([]*backstopv1alpha1.Backup, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
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
			Verified:  bk.Status.Phase == backstopv1alpha1.BackupSucceeded && isVerified(bk),
		})
	}
	plan := retention.Apply(entries, bs.Spec.Retention, loc)
	for _, name := range plan.Delete {
		bk := byName[name]
		// The resourceVersion too: a cache that does not show yet the
		// deletion a previous reconcile made would prune (and report) the
		// same Backup again.
		err := r.Delete(ctx, bk, client.Preconditions{UID: &bk.UID, ResourceVersion: &bk.ResourceVersion})
		switch {
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Gone, or changed since this read: the reconcile its change
			// triggers decides again.
			continue
		case err != nil:
			return err
		}
		// The log line is written at once, the event later, by another
		// goroutine: if the operator dies in between, the log still says
		// who deleted the Backup and why.
		ctrl.LoggerFrom(ctx).Info("Deleted a Backup the retention policy does not keep", "backup", name, "dueAt", backupTime(bk))
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
