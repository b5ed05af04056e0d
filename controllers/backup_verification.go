package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
)

const notDrilledMessage = "no drill of this Backup has finished: its bytes are checked, not that it restores"

// reconcileVerification derives a finished Backup's Verified condition and
// status.verification from its newest finished BackupDrill. The Backup
// controller is the only writer of a Backup's status; drills only report.
// When no drill is left (deleted by hand), the last verification stays.
func (r *BackupReconciler) reconcileVerification(ctx context.Context, bk *backstopv1alpha1.Backup) (ctrl.Result, error) {
	if bk.Status.Phase != backstopv1alpha1.BackupSucceeded {
		return ctrl.Result{}, nil
	}
	list := &backstopv1alpha1.BackupDrillList{}
	if err := r.List(ctx, list, client.InNamespace(bk.Namespace), client.MatchingFields{indexBackupName: bk.Name}); err != nil {
		return ctrl.Result{}, err
	}
	var newest *backstopv1alpha1.BackupDrill
	for i := range list.Items {
		dr := &list.Items[i]
		if !drillFinal(dr.Status.Phase) || dr.Status.CompletionTime == nil {
			continue
		}
		if newest == nil || newest.Status.CompletionTime.Before(dr.Status.CompletionTime) ||
			(newest.Status.CompletionTime.Equal(dr.Status.CompletionTime) && newest.Name < dr.Name) {
			newest = dr
		}
	}
	before := verifiedKey(bk)
	patch := newStatusPatch(bk)
	switch {
	case newest != nil:
		setVerification(bk, newest)
	case conditions.Get(bk, backstopv1alpha1.ConditionVerified) == nil:
		conditions.Set(bk, backstopv1alpha1.ConditionVerified, metav1.ConditionUnknown, backstopv1alpha1.ReasonNotDrilled, notDrilledMessage)
	}
	if _, err := patch.write(ctx, r.Client, bk); err != nil {
		return ctrl.Result{}, err
	}
	if newest != nil && verifiedKey(bk) != before && r.Recorder != nil {
		if newest.Status.Phase == backstopv1alpha1.DrillSucceeded {
			r.Recorder.Eventf(bk, newest, corev1.EventTypeNormal, ReasonVerified, "Drill", "%s", conditions.Get(bk, backstopv1alpha1.ConditionVerified).Message)
		} else {
			r.Recorder.Eventf(bk, newest, corev1.EventTypeWarning, ReasonDrillFailed, "Drill", "%s", conditions.Get(bk, backstopv1alpha1.ConditionVerified).Message)
		}
	}
	return ctrl.Result{}, nil
}

// setVerification writes what a finished drill found into the Backup.
func setVerification(bk *backstopv1alpha1.Backup, dr *backstopv1alpha1.BackupDrill) {
	v := &backstopv1alpha1.BackupVerification{DrillName: dr.Name, DrillOutcome: *dr.Status.DrillOutcome.DeepCopy()}
	if t := dr.Status.CompletionTime; t != nil {
		tt := *t
		v.Time = &tt
	}
	for _, c := range dr.Status.Checks {
		if c.Passed {
			v.Passed++
		} else {
			v.Failed++
		}
	}
	bk.Status.Verification = v
	if dr.Status.Phase == backstopv1alpha1.DrillSucceeded {
		conditions.Set(bk, backstopv1alpha1.ConditionVerified, metav1.ConditionTrue, backstopv1alpha1.ReasonDrillPassed,
			fmt.Sprintf("BackupDrill %s restored it into %s: %s checks passed%s", dr.Name, dr.Status.Server, dr.Status.ChecksPassed, restoreTimeNote(dr.Status.RestoreDuration)))
		return
	}
	reason := dr.Status.Reason
	if reason == "" {
		reason = backstopv1alpha1.ReasonJobFailed
	}
	conditions.Set(bk, backstopv1alpha1.ConditionVerified, metav1.ConditionFalse, reason,
		fmt.Sprintf("BackupDrill %s failed: %s", dr.Name, dr.Status.Message))
}
