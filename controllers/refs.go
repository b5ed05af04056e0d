package controllers

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
)

// indexSpecRefs indexes Backups and Restores by target, so that a backup and
// a restore of the same target never run at once, and BackupDrills by Backup.
func indexSpecRefs(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &backstopv1alpha1.Backup{}, indexTargetName, func(o client.Object) []string {
		return []string{o.(*backstopv1alpha1.Backup).Spec.TargetRef.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &backstopv1alpha1.Backup{}, indexScheduleName, func(o client.Object) []string {
		if ref := o.(*backstopv1alpha1.Backup).Spec.ScheduleRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &backstopv1alpha1.BackupDrill{}, indexBackupName, func(o client.Object) []string {
		return []string{o.(*backstopv1alpha1.BackupDrill).Spec.BackupRef.Name}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &backstopv1alpha1.Restore{}, indexTargetName, func(o client.Object) []string {
		return []string{o.(*backstopv1alpha1.Restore).Spec.TargetRef.Name}
	})
}

// resolveTargetAndStore fetches the target and store of a run. wait is set
// when one is missing or not checked yet (GitOps may apply them in any
// order); a user error when one is checked and not Ready.
func resolveTargetAndStore(ctx context.Context, c client.Client, ns, targetName, storeName string) (*backstopv1alpha1.BackupTarget, *backstopv1alpha1.BackupStore, string, error) {
	target := &backstopv1alpha1.BackupTarget{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: targetName}, target); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Sprintf("waiting for BackupTarget %s to exist", targetName), nil
		}
		return nil, nil, "", err
	}
	store := &backstopv1alpha1.BackupStore{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: storeName}, store); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Sprintf("waiting for BackupStore %s to exist", storeName), nil
		}
		return nil, nil, "", err
	}
	if wait, err := readiness("BackupStore", store); wait != "" || err != nil {
		return nil, nil, wait, err
	}
	if wait, err := readiness("BackupTarget", target); wait != "" || err != nil {
		return nil, nil, wait, err
	}
	return target, store, "", nil
}

// readiness says whether a dependency is usable: "" and nil when Ready,
// a wait message while it is being checked, a user error carrying its reason when not Ready.
func readiness(kind string, obj conditions.Object) (string, error) {
	ready := conditions.Get(obj, backstopv1alpha1.ConditionReady)
	if ready == nil || ready.ObservedGeneration != obj.GetGeneration() || ready.Status == metav1.ConditionUnknown {
		return fmt.Sprintf("waiting for %s %s to be checked", kind, obj.GetName()), nil
	}
	if ready.Status == metav1.ConditionFalse {
		return "", userErrorf(ready.Reason, "%s %s is not ready: %s", kind, obj.GetName(), ready.Message)
	}
	return "", nil
}

// restoreInProgress names an unfinished Restore of the target that a Backup
// must wait for, or "". except names the Restore whose safety Backup this
// is: that one waits only for started Restores ahead of its own in line, as
// its Restore does (restoreAhead); the others wait for its Restore.
func restoreInProgress(ctx context.Context, c client.Client, ns, target, except string) (string, error) {
	list := &backstopv1alpha1.RestoreList{}
	if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingFields{indexTargetName: target}); err != nil {
		return "", err
	}
	var owner *backstopv1alpha1.Restore
	for i := range list.Items {
		if except != "" && list.Items[i].Name == except {
			owner = &list.Items[i]
		}
	}
	for i := range list.Items {
		r := &list.Items[i]
		if r.Name == except || !r.DeletionTimestamp.IsZero() || restoreFinal(r.Status.Phase) {
			continue
		}
		if owner != nil && !(restoreStarted(r) && restoreBefore(r, owner)) {
			continue
		}
		return r.Name, nil
	}
	return "", nil
}

// restoreBefore orders the Restores of one target: they run one at a time,
// by creation time, then by name.
func restoreBefore(a, b *backstopv1alpha1.Restore) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// restoreStarted: the Restore has Jobs or a safety Backup under way.
func restoreStarted(rs *backstopv1alpha1.Restore) bool {
	return rs.Status.Phase == backstopv1alpha1.RestoreVerifying || rs.Status.Phase == backstopv1alpha1.RestoreRestoring
}

// restoreAhead names the Restore of the same target that rs waits for, or
// "": restores of one target never overlap. A Restore that has not started
// waits for every started one and for those before it in line; a started
// one yields only to a started one before it in line (two can have started
// only when created in the same second). The one named is the nearest ahead.
func restoreAhead(ctx context.Context, c client.Client, rs *backstopv1alpha1.Restore) (string, error) {
	list := &backstopv1alpha1.RestoreList{}
	if err := c.List(ctx, list, client.InNamespace(rs.Namespace), client.MatchingFields{indexTargetName: rs.Spec.TargetRef.Name}); err != nil {
		return "", err
	}
	var ahead *backstopv1alpha1.Restore
	for i := range list.Items {
		o := &list.Items[i]
		if o.Name == rs.Name || restoreFinal(o.Status.Phase) {
			continue
		}
		inWay := restoreStarted(o) || restoreBefore(o, rs)
		if restoreStarted(rs) {
			inWay = restoreStarted(o) && restoreBefore(o, rs)
		}
		if inWay && (ahead == nil || restoreBefore(ahead, o)) {
			ahead = o
		}
	}
	if ahead == nil {
		return "", nil
	}
	return ahead.Name, nil
}

// restoreJobActive names an unfinished restore Job of the target that does
// not belong to owner, or "": the last guard against two restores writing
// into one target (a deleted Restore's Job may still run).
func restoreJobActive(ctx context.Context, c client.Client, ns, target, owner string) (string, error) {
	j, err := unfinishedAgentJob(ctx, c, ns, target, opRestore, LabelRestore, owner)
	if j == nil || err != nil {
		return "", err
	}
	return j.Name, nil
}

// unfinishedAgentJob returns an unfinished agent Job running op on the
// target, other than those whose ownerLabel is except, or nil.
func unfinishedAgentJob(ctx context.Context, c client.Client, ns, target string, op agentOp, ownerLabel, except string) (*batchv1.Job, error) {
	jobs := &batchv1.JobList{}
	if err := c.List(ctx, jobs, client.InNamespace(ns), client.MatchingLabels{LabelTarget: target, LabelComponent: agentComponent(op)}); err != nil {
		return nil, err
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if j.Labels[ownerLabel] == except {
			continue
		}
		if done, _, _ := jobFinished(j); !done {
			return j, nil
		}
	}
	return nil, nil
}

// backupRunning names a Backup of the target other than except that is
// Running, or whose Job has not finished, or "". A Backup's status says
// Running only once its new Job has woken it again; until then its Job tells.
func backupRunning(ctx context.Context, c client.Client, ns, target, except string) (string, error) {
	list := &backstopv1alpha1.BackupList{}
	if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingFields{indexTargetName: target}); err != nil {
		return "", err
	}
	for _, b := range list.Items {
		if b.Name != except && b.Status.Phase == backstopv1alpha1.BackupRunning {
			return b.Name, nil
		}
	}
	j, err := unfinishedAgentJob(ctx, c, ns, target, opBackup, LabelBackup, except)
	if j == nil || err != nil {
		return "", err
	}
	return j.Labels[LabelBackup], nil
}
