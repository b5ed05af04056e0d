package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
)

// BackupTargetReconciler checks a target's Secrets and keys. The database
// itself is checked by each agent Job, which runs where the data is reachable.
type BackupTargetReconciler struct {
	client.Client
	// Metadata reads the Secrets' metadata that the Secret watch caches.
	// Nil: every reconcile reads the Secrets themselves.
	Metadata client.Reader
	// Concurrency is how many objects are reconciled at once.
	Concurrency int
	Recorder    events.EventRecorder

	// checked holds, per target, the versions of its Secrets at its last
	// good check (see secretVersions).
	checked sync.Map
}

// SetupWithManager registers the reconciler.
func (r *BackupTargetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&backstopv1alpha1.BackupTarget{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(secretSource(), enqueueInSecretNamespace(mgr.GetClient(), &backstopv1alpha1.BackupTargetList{})).
		// A Backup that succeeds, or a successful one deleted, updates its
		// target's last successful backup; a Backup's Verified condition
		// that changes, its newest verified one.
		Watches(&backstopv1alpha1.Backup{}, enqueueTargetSoon(targetCoalesce), builder.WithPredicates(predicate.Or(successChanged(), verifiedChanged()))).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency}).
		Named("backuptarget").
		Complete(r)
}

// targetCoalesce is how long a target waits, once a Backup of it
// succeeded, before it records its last successful backup: Backups that end
// together (a thousand schedules due in one minute may share a target) cost
// it one reconcile, not one each.
const targetCoalesce = time.Second

// enqueueTargetSoon queues a Backup's target after delay; the queue holds a
// waiting item once, however often it is added.
func enqueueTargetSoon(delay time.Duration) handler.EventHandler {
	add := func(o client.Object, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
		if bk, ok := o.(*backstopv1alpha1.Backup); ok {
			q.AddAfter(ctrl.Request{NamespacedName: types.NamespacedName{Namespace: bk.Namespace, Name: bk.Spec.TargetRef.Name}}, delay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
			add(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
			add(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
			add(e.Object, q)
		},
	}
}

// Reconcile checks one target.
func (r *BackupTargetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	bt := &backstopv1alpha1.BackupTarget{}
	if err := r.Get(ctx, req.NamespacedName, bt); err != nil {
		if apierrors.IsNotFound(err) {
			r.checked.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := readySnapshot(bt)
	patch := newStatusPatch(bt)
	defer func() {
		bt.Status.ObservedGeneration = bt.Generation
		if _, perr := patch.write(ctx, r.Client, bt); perr != nil && err == nil {
			err = perr
		}
		announceTransition(r.Recorder, bt, before, "Check")
	}()

	bt.Status.Engine = targetEngine(bt)
	if err := r.recordLastBackup(ctx, bt); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.checkSecrets(ctx, bt); err != nil {
		if ue, ok := asUserError(err); ok {
			conditions.MarkStalled(bt, ue.Reason, "%s", ue.Message)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	conditions.MarkReady(bt, backstopv1alpha1.ReasonSucceeded, "%s target: Secrets and keys present", bt.Status.Engine)
	return ctrl.Result{}, nil
}

// recordLastBackup puts the newest Succeeded Backup of the target, and the
// newest verified one, in its status: of the Backups there now (none being
// deleted), so that it never names one that is gone.
func (r *BackupTargetReconciler) recordLastBackup(ctx context.Context, bt *backstopv1alpha1.BackupTarget) error {
	// The cache's own objects, read only (see previousSuccess).
	list := &backstopv1alpha1.BackupList{}
	if err := r.List(ctx, list, client.InNamespace(bt.Namespace), client.MatchingFields{indexTargetName: bt.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	bt.Status.LastSuccessfulBackup, bt.Status.LastSuccessfulBackupTime = "", nil
	for _, bk := range list.Items {
		t := bk.Status.CompletionTime
		if bk.Status.Phase != backstopv1alpha1.BackupSucceeded || t == nil || !bk.DeletionTimestamp.IsZero() {
			continue
		}
		if last := bt.Status.LastSuccessfulBackupTime; last == nil || t.After(last.Time) {
			tt := *t
			bt.Status.LastSuccessfulBackupTime = &tt
			bt.Status.LastSuccessfulBackup = bk.Name
		}
	}
	recordVerifiedOf(list.Items, &bt.Status.LastVerifiedBackup, &bt.Status.LastVerifiedTime)
	return nil
}

// checkSecrets reads the target's Secrets and checks their keys. A target
// is reconciled for each Backup of it that ends, and a read that bypasses
// the cache costs most of such a reconcile while the API server is busy: so
// when the cached metadata shows every Secret at the version of the last
// good check, they are not read again. A changed Secret has a new version
// (and its watch queues the target).
func (r *BackupTargetReconciler) checkSecrets(ctx context.Context, bt *backstopv1alpha1.BackupTarget) error {
	conn := targetConnection(bt)
	if conn == nil {
		return nil
	}
	var refs []backstopv1alpha1.SecretKeySelector
	for _, ref := range []*backstopv1alpha1.SecretKeySelector{&conn.Credentials.PasswordSecretRef, conn.Credentials.UsernameSecretRef, conn.CASecretRef} {
		if ref != nil {
			refs = append(refs, *ref)
		}
	}
	key := client.ObjectKeyFromObject(bt)
	versions, known := r.secretVersions(ctx, bt.Namespace, refs)
	if last, ok := r.checked.Load(key); known && ok && last.(string) == versions {
		return nil
	}
	r.checked.Delete(key)
	for _, ref := range refs {
		if _, err := secretValue(ctx, r, bt.Namespace, ref); err != nil {
			return err
		}
	}
	if known {
		// The versions were read before the Secrets: a Secret changed in
		// between shows a newer version next time, and is read again.
		r.checked.Store(key, versions)
	}
	return nil
}

// secretVersions names each referenced Secret key with the Secret's cached
// resourceVersion; known is false when any Secret is not in the cache.
func (r *BackupTargetReconciler) secretVersions(ctx context.Context, ns string, refs []backstopv1alpha1.SecretKeySelector) (versions string, known bool) {
	if r.Metadata == nil {
		return "", false
	}
	parts := make([]string, 0, len(refs))
	for _, ref := range refs {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.Metadata.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, m); err != nil {
			return "", false
		}
		parts = append(parts, fmt.Sprintf("%s/%s@%s", ref.Name, ref.Key, m.ResourceVersion))
	}
	return strings.Join(parts, ","), true
}

// targetEngine names the engine of a target as the agent knows it.
func targetEngine(bt *backstopv1alpha1.BackupTarget) string {
	switch {
	case bt.Spec.Postgres != nil:
		return "postgres"
	case bt.Spec.MySQL != nil:
		return "mysql"
	case bt.Spec.Files != nil:
		return "files"
	}
	return ""
}

// targetConnection returns the database connection of a target, or nil for files.
func targetConnection(bt *backstopv1alpha1.BackupTarget) *backstopv1alpha1.DatabaseConnection {
	switch {
	case bt.Spec.Postgres != nil:
		return &bt.Spec.Postgres.DatabaseConnection
	case bt.Spec.MySQL != nil:
		return &bt.Spec.MySQL.DatabaseConnection
	}
	return nil
}
