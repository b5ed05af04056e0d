package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
)

// backupPhaseChanged passes creates, deletes and Backup updates that change
// the phase: what schedules and targets care about. Other updates (status
// timestamps, the finalizer) would only wake them for nothing.
func backupPhaseChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldBk, ok1 := e.ObjectOld.(*backstopv1alpha1.Backup)
			newBk, ok2 := e.ObjectNew.(*backstopv1alpha1.Backup)
			if !ok1 || !ok2 {
				return true
			}
			return oldBk.Status.Phase != newBk.Status.Phase || !newBk.DeletionTimestamp.IsZero()
		},
	}
}

// successChanged passes Backups that are, or just became, Succeeded, and
// Succeeded ones on their way out (being deleted, or gone): what a target's
// last successful backup is made of.
func successChanged() predicate.Predicate {
	succeeded := func(o any) bool {
		bk, ok := o.(*backstopv1alpha1.Backup)
		return ok && bk.Status.Phase == backstopv1alpha1.BackupSucceeded
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return succeeded(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return succeeded(e.Object) },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			if !succeeded(e.ObjectNew) {
				return false
			}
			return !succeeded(e.ObjectOld) || (e.ObjectOld.GetDeletionTimestamp() == nil && e.ObjectNew.GetDeletionTimestamp() != nil)
		},
	}
}

// restoreEnded passes a Restore that just reached a final phase, or was deleted.
func restoreEnded() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldRs, ok1 := e.ObjectOld.(*backstopv1alpha1.Restore)
			newRs, ok2 := e.ObjectNew.(*backstopv1alpha1.Restore)
			return ok1 && ok2 && !restoreFinal(oldRs.Status.Phase) && restoreFinal(newRs.Status.Phase)
		},
	}
}

// drillEnded passes a BackupDrill that is, or just became, finished, and
// one deleted.
func drillEnded() predicate.Predicate {
	ended := func(o any) bool {
		dr, ok := o.(*backstopv1alpha1.BackupDrill)
		return ok && drillFinal(dr.Status.Phase)
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return ended(e.Object) },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !ended(e.ObjectOld) && ended(e.ObjectNew)
		},
	}
}

// backupChangedForSchedule passes what backupPhaseChanged passes, and a
// change of a Backup's Verified condition: a schedule shows its newest
// verified Backup, and retention keeps it.
func backupChangedForSchedule() predicate.Predicate {
	phase := backupPhaseChanged()
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			if phase.Update(e) {
				return true
			}
			oldBk, ok1 := e.ObjectOld.(*backstopv1alpha1.Backup)
			newBk, ok2 := e.ObjectNew.(*backstopv1alpha1.Backup)
			if !ok1 || !ok2 {
				return true
			}
			return verifiedKey(oldBk) != verifiedKey(newBk)
		},
	}
}

// verifiedKey sums up a Backup's Verified condition and the drill it comes from.
func verifiedKey(bk *backstopv1alpha1.Backup) string {
	c := meta.FindStatusCondition(bk.Status.Conditions, backstopv1alpha1.ConditionVerified)
	if c == nil {
		return ""
	}
	key := string(c.Status) + "/" + c.Reason
	if v := bk.Status.Verification; v != nil {
		key += "/" + v.DrillName
	}
	return key
}

// verifiedChanged passes Backup updates that change its Verified condition.
func verifiedChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldBk, ok1 := e.ObjectOld.(*backstopv1alpha1.Backup)
			newBk, ok2 := e.ObjectNew.(*backstopv1alpha1.Backup)
			return ok1 && ok2 && verifiedKey(oldBk) != verifiedKey(newBk)
		},
	}
}

// readinessChanged passes creates, deletes and updates that change what
// readiness says of an object: its Ready status or reason, whether that
// condition is for the current generation, and while it is False its
// message. Status writes that leave it (a target's last successful backup)
// do not pass.
func readinessChanged() predicate.Predicate {
	state := func(o client.Object) string {
		obj, ok := o.(conditions.Object)
		if !ok {
			return ""
		}
		c := conditions.Get(obj, backstopv1alpha1.ConditionReady)
		if c == nil {
			return "none"
		}
		msg := ""
		if c.Status == metav1.ConditionFalse {
			msg = c.Message
		}
		return fmt.Sprintf("%s/%s/%t/%s", c.Status, c.Reason, c.ObservedGeneration == obj.GetGeneration(), msg)
	}
	return predicate.Funcs{
		UpdateFunc:  func(e event.UpdateEvent) bool { return state(e.ObjectOld) != state(e.ObjectNew) },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
