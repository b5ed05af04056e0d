package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/internal/schedule"
)

// ReasonDrillCreated: a schedule created a BackupDrill of one of its Backups.
const ReasonDrillCreated = "DrillCreated"

// DrillNameFor is the name of the BackupDrill a schedule creates for a
// Backup: one per Backup, so that a retried reconcile never drills twice.
func DrillNameFor(backup string) string { return jobName(backup, "drill") }

// isVerified: the Backup's newest drill passed.
func isVerified(bk *backstopv1alpha1.Backup) bool {
	c := conditions.Get(bk, backstopv1alpha1.ConditionVerified)
	return c != nil && c.Status == metav1.ConditionTrue
}

// recordVerified shows the newest verified Backup of the schedule.
func recordVerified(bs *backstopv1alpha1.BackupSchedule, backups []*backstopv1alpha1.Backup) {
	items := make([]backstopv1alpha1.Backup, 0, len(backups))
	for _, bk := range backups {
		items = append(items, *bk)
	}
	recordVerifiedOf(items, &bs.Status.LastVerifiedBackup, &bs.Status.LastVerifiedTime)
}

// recordVerifiedOf sets name and at to the newest Succeeded Backup whose
// Verified condition is True, and to when its drill finished; both are
// cleared when none is.
func recordVerifiedOf(backups []backstopv1alpha1.Backup, name *string, at **metav1.Time) {
	var best *backstopv1alpha1.Backup
	for i := range backups {
		bk := &backups[i]
		if bk.Status.Phase != backstopv1alpha1.BackupSucceeded || !bk.DeletionTimestamp.IsZero() || !isVerified(bk) {
			continue
		}
		if best == nil || backupTime(best).Before(backupTime(bk)) {
			best = bk
		}
	}
	if best == nil {
		*name, *at = "", nil
		return
	}
	*name = best.Name
	*at = nil
	if v := best.Status.Verification; v != nil && v.Time != nil {
		t := *v.Time
		*at = &t
	}
}

// drills creates the BackupDrills the schedule's drill policy calls for, and
// returns when the next drill is due (zero: not by the clock). Without a
// drill schedule, every successful Backup newer than the newest drilled one
// is drilled (when none has been, the newest only); with one, the newest
// successful Backup is drilled at each due time, unless it has been already.
func (r *BackupScheduleReconciler) drills(ctx context.Context, bs *backstopv1alpha1.BackupSchedule, backups []*backstopv1alpha1.Backup, now time.Time, pending *[]scheduleEvent) (time.Time, error) {
	policy := bs.Spec.Drill
	if policy == nil {
		bs.Status.NextDrillTime = nil
		return time.Time{}, nil
	}
	var succeeded []*backstopv1alpha1.Backup
	for _, bk := range backups {
		if bk.Status.Phase == backstopv1alpha1.BackupSucceeded {
			succeeded = append(succeeded, bk)
		}
	}
	sort.Slice(succeeded, func(i, j int) bool {
		if ti, tj := backupTime(succeeded[i]), backupTime(succeeded[j]); !ti.Equal(tj) {
			return ti.After(tj)
		}
		return succeeded[i].Name > succeeded[j].Name
	})

	if policy.Schedule == "" {
		bs.Status.NextDrillTime = nil
		if bs.Spec.Suspend {
			return time.Time{}, nil
		}
		var todo []*backstopv1alpha1.Backup
		drilled := false
		for _, bk := range succeeded {
			exists, err := r.drillExists(ctx, bk)
			if err != nil {
				return time.Time{}, err
			}
			if exists {
				drilled = true
				break
			}
			todo = append(todo, bk)
		}
		if !drilled && len(todo) > 1 {
			todo = todo[:1]
		}
		for _, bk := range todo {
			if err := r.createDrill(ctx, bs, bk, pending); err != nil {
				return time.Time{}, err
			}
		}
		return time.Time{}, nil
	}

	sched, err := schedule.Parse(policy.Schedule, bs.Spec.TimeZone)
	if err != nil {
		bs.Status.NextDrillTime = nil
		*pending = append(*pending, scheduleEvent{eventType: corev1.EventTypeWarning, reason: backstopv1alpha1.ReasonInvalidSchedule, note: fmt.Sprintf("spec.drill.schedule: %v", err)})
		return time.Time{}, nil
	}
	var last *time.Time
	if t := bs.Status.LastDrillScheduleTime; t != nil {
		tt := t.Time
		last = &tt
	}
	due := sched.Due(now, bs.CreationTimestamp.Time, last, nil)
	if !due.Missed.IsZero() {
		if !bs.Spec.Suspend && len(succeeded) > 0 {
			exists, err := r.drillExists(ctx, succeeded[0])
			if err != nil {
				return time.Time{}, err
			}
			if !exists {
				if err := r.createDrill(ctx, bs, succeeded[0], pending); err != nil {
					return time.Time{}, err
				}
			}
		}
		missed := metav1.NewTime(due.Missed)
		bs.Status.LastDrillScheduleTime = &missed
	}
	if due.Next.IsZero() {
		bs.Status.NextDrillTime = nil
		return time.Time{}, nil
	}
	next := metav1.NewTime(due.Next)
	bs.Status.NextDrillTime = &next
	return due.Next, nil
}

// drillExists: the cache shows the schedule's drill of the Backup. A cache
// that trails is harmless: a drill it does not show yet is created again,
// and the API server answers AlreadyExists; and when it hides the newest
// drilled Backup, only Backups newer than an older drilled one, or the
// newest alone, are drilled.
func (r *BackupScheduleReconciler) drillExists(ctx context.Context, bk *backstopv1alpha1.Backup) (bool, error) {
	key := types.NamespacedName{Namespace: bk.Namespace, Name: DrillNameFor(bk.Name)}
	err := r.Get(ctx, key, &backstopv1alpha1.BackupDrill{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// createDrill creates the BackupDrill of a Backup with the schedule's drill
// settings. The Backup owns it: it goes with the Backup.
func (r *BackupScheduleReconciler) createDrill(ctx context.Context, bs *backstopv1alpha1.BackupSchedule, bk *backstopv1alpha1.Backup, pending *[]scheduleEvent) error {
	dr := &backstopv1alpha1.BackupDrill{
		ObjectMeta: metav1.ObjectMeta{
			Name:      DrillNameFor(bk.Name),
			Namespace: bs.Namespace,
			Labels:    map[string]string{LabelSchedule: bs.Name, LabelBackup: bk.Name, LabelTarget: bk.Spec.TargetRef.Name, LabelManagedBy: managedBy},
		},
		Spec: backstopv1alpha1.BackupDrillSpec{
			BackupRef:     backstopv1alpha1.LocalObjectReference{Name: bk.Name},
			DrillSettings: *bs.Spec.Drill.DrillSettings.DeepCopy(),
		},
	}
	if err := ctrl.SetControllerReference(bk, dr, r.Scheme()); err != nil {
		return err
	}
	err := r.Create(ctx, dr)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	*pending = append(*pending, scheduleEvent{eventType: corev1.EventTypeNormal, reason: ReasonDrillCreated, note: fmt.Sprintf("created BackupDrill %s of Backup %s", dr.Name, bk.Name)})
	return nil
}
