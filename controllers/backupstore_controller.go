package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/internal/store"
)

const (
	defaultProbeInterval = 10 * time.Minute
	// failedProbeRetry is how soon a store that failed its probe is tried again.
	failedProbeRetry = 30 * time.Second
	probeTimeout     = 30 * time.Second
)

// BackupStoreReconciler checks a store's spec and Secrets and probes the
// store: write, read back, delete a small object.
type BackupStoreReconciler struct {
	client.Client
	// Concurrency is how many objects are reconciled at once.
	Concurrency int
	Recorder    events.EventRecorder
	Clock       clock.PassiveClock
}

// SetupWithManager registers the reconciler.
func (r *BackupStoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&backstopv1alpha1.BackupStore{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(secretSource(), enqueueInSecretNamespace(mgr.GetClient(), &backstopv1alpha1.BackupStoreList{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency}).
		Named("backupstore").
		Complete(r)
}

// Reconcile checks and probes one store.
func (r *BackupStoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	log := ctrl.LoggerFrom(ctx)
	bs := &backstopv1alpha1.BackupStore{}
	if err := r.Get(ctx, req.NamespacedName, bs); err != nil {
		if apierrors.IsNotFound(err) {
			forgetStore(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := readySnapshot(bs)
	patch := newStatusPatch(bs)
	defer func() {
		bs.Status.ObservedGeneration = bs.Generation
		if _, perr := patch.write(ctx, r.Client, bs); perr != nil && err == nil {
			err = perr
		}
		announceTransition(r.Recorder, bs, before, "Probe")
		storeReady.record(bs)
	}()

	mode, fingerprints, err := encryptionSummary(ctx, r, bs)
	if err != nil {
		return r.fail(bs, err)
	}
	bs.Status.EncryptionMode = mode
	bs.Status.RecipientFingerprints = fingerprints
	if bs.Spec.Encryption.None != nil {
		if conditions.Get(bs, backstopv1alpha1.ConditionEncryptionDisabled) == nil && r.Recorder != nil {
			r.Recorder.Eventf(bs, nil, corev1.EventTypeWarning, backstopv1alpha1.ReasonPlaintextStorage, "Probe",
				"encryption is none: artifacts are stored in plaintext")
		}
		conditions.Set(bs, backstopv1alpha1.ConditionEncryptionDisabled, metav1.ConditionTrue, backstopv1alpha1.ReasonPlaintextStorage,
			"encryption is none: artifacts are stored in plaintext")
	} else {
		conditions.Remove(bs, backstopv1alpha1.ConditionEncryptionDisabled)
	}

	st, err := openStore(ctx, r, bs)
	if err != nil {
		return r.fail(bs, err)
	}
	interval := defaultProbeInterval
	if bs.Spec.ProbeInterval != nil && bs.Spec.ProbeInterval.Duration > 0 {
		interval = bs.Spec.ProbeInterval.Duration
	}
	now := metav1.NewTime(r.Clock.Now())
	bs.Status.LastProbeTime = &now
	// Set again below when this probe lists the store.
	bs.Status.Debris = nil
	if st == nil {
		conditions.MarkReady(bs, backstopv1alpha1.ReasonSucceeded, "%s: each backup Job checks it when it mounts the claim", describeStore(bs))
		return ctrl.Result{}, nil
	}
	probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := st.Probe(probeCtx); err != nil {
		reason := store.ReasonOf(err)
		if reason == "" || reason == store.ReasonStoreError || reason == store.ReasonNotFound {
			reason = backstopv1alpha1.ReasonStoreUnreachable
		}
		log.Info("Store probe failed", "reason", reason, "error", err.Error())
		conditions.MarkFailed(bs, reason, "%s: %v", describeStore(bs), err)
		return ctrl.Result{RequeueAfter: min(interval, failedProbeRetry)}, nil
	}
	msg := describeStore(bs) + " is reachable and writable"
	if dc, ok := st.(store.DebrisCounter); ok {
		d, err := dc.Debris(probeCtx)
		if err != nil {
			// Not a reason to refuse backups: the store works.
			log.Info("Could not list the store's debris", "reason", store.ReasonOf(err), "error", err.Error())
		} else {
			bs.Status.Debris = &backstopv1alpha1.StoreDebris{Objects: d.Objects, Bytes: d.Bytes, CheckedAt: now}
			if d.Objects > 0 {
				msg += "; " + describeDebris(bs.Spec.Azure != nil, d)
			}
		}
	}
	conditions.MarkReady(bs, backstopv1alpha1.ReasonSucceeded, "%s", msg)
	return ctrl.Result{RequeueAfter: interval}, nil
}

// describeDebris says what interrupted uploads left, and what clears it:
// incomplete multipart uploads on S3, blobs of uncommitted blocks on Azure.
func describeDebris(azure bool, d store.Debris) string {
	size := fmt.Sprintf("%d bytes", d.Bytes)
	if d.Partial {
		size = "at least " + size
	}
	if azure {
		blobs := "blobs under the prefix that were never committed hold"
		if d.Objects == 1 {
			blobs = "blob under the prefix that was never committed holds"
		}
		return fmt.Sprintf("%d %s %s of uncommitted blocks (left by interrupted backups, or a backup running now); "+
			"a retry or the deletion of their Backup clears them, else Azure discards them a week after they were staged", d.Objects, blobs, size)
	}
	uploads := "uploads under the prefix hold"
	if d.Objects == 1 {
		uploads = "upload under the prefix holds"
	}
	return fmt.Sprintf("%d incomplete multipart %s %s (left by interrupted backups, or a backup running now); "+
		"a bucket lifecycle rule that aborts incomplete multipart uploads clears them", d.Objects, uploads, size)
}

// fail records a user error as Stalled, or returns any other error for a retry.
func (r *BackupStoreReconciler) fail(bs *backstopv1alpha1.BackupStore, err error) (ctrl.Result, error) {
	if ue, ok := asUserError(err); ok {
		conditions.MarkStalled(bs, ue.Reason, "%s", ue.Message)
		// A Secret event brings the store back; no blind retry.
		return ctrl.Result{}, nil
	}
	conditions.MarkReconciling(bs, backstopv1alpha1.ReasonProgressing, "retrying: %v", err)
	return ctrl.Result{}, err
}
