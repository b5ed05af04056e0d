package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// Labels and annotations Backstop puts on what it creates.
const (
	// LabelSchedule names the BackupSchedule that created a Backup. GitOps
	// tools prune by their own labels, which Backups never copy.
	LabelSchedule = "backstop.io/schedule"
	// LabelTarget names the BackupTarget of a Backup, Restore or Job.
	LabelTarget = "backstop.io/target"
	// LabelBackup names the Backup a Job runs.
	LabelBackup = "backstop.io/backup"
	// LabelRestore names the Restore a Job runs.
	LabelRestore = "backstop.io/restore"
	// LabelDrill names the BackupDrill a Job runs.
	LabelDrill = "backstop.io/drill"
	// LabelComponent is backup-agent or restore-agent on Jobs and Pods.
	LabelComponent = "app.kubernetes.io/component"
	// LabelManagedBy marks everything Backstop creates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// AnnotationScheduledTime is the due time a scheduled Backup was created for.
	AnnotationScheduledTime = "backstop.io/scheduled-time"
	// AnnotationPlacedOnNode and AnnotationPlacedBesidePod say, on an
	// agent Job, where it was placed: beside the pod that uses its
	// target's ReadWriteOnce claim.
	AnnotationPlacedOnNode    = "backstop.io/placed-on-node"
	AnnotationPlacedBesidePod = "backstop.io/placed-beside-pod"

	// FinalizerArtifact keeps a Backup until its artifact is deleted (or retained).
	FinalizerArtifact = "backstop.io/artifact"
	managedBy         = "backstop"
)

// Field index names.
const (
	indexTargetName   = ".spec.targetRef.name"
	indexScheduleName = ".spec.scheduleRef.name"
	indexBackupName   = ".spec.backupRef.name"
)

// userError is a problem only the user can fix: a missing Secret, a bad key.
// It becomes Ready=False with its reason, and Stalled.
type userError struct {
	Reason  string
	Message string
}

func (e *userError) Error() string { return e.Message }

func userErrorf(reason, format string, args ...any) error {
	return &userError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func asUserError(err error) (*userError, bool) {
	var ue *userError
	ok := errors.As(err, &ue)
	return ue, ok
}

// secretValue reads one key of a Secret in ns. It never puts the value in an error.
func secretValue(ctx context.Context, c client.Reader, ns string, sel backstopv1alpha1.SecretKeySelector) ([]byte, error) {
	secret := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: sel.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, userErrorf(backstopv1alpha1.ReasonSecretNotFound, "Secret %q not found", sel.Name)
		}
		return nil, err
	}
	v, ok := secret.Data[sel.Key]
	if !ok || len(v) == 0 {
		return nil, userErrorf(backstopv1alpha1.ReasonSecretNotFound, "Secret %q has no key %q", sel.Name, sel.Key)
	}
	return v, nil
}

// statusPatch writes the status a reconcile computed over the object it read,
// and only when the reconcile changed something: a reconcile that finds
// nothing new costs no API request.
type statusPatch struct {
	orig client.Object
	// optimisticLock sends the resourceVersion read with the patch, so that
	// the write fails with a conflict if the object changed since.
	optimisticLock bool
}

func newStatusPatch(obj client.Object) statusPatch {
	return statusPatch{orig: obj.DeepCopyObject().(client.Object)}
}

// newLockedStatusPatch is newStatusPatch whose write applies only over the
// version read.
func newLockedStatusPatch(obj client.Object) statusPatch {
	return statusPatch{orig: obj.DeepCopyObject().(client.Object), optimisticLock: true}
}

// write sends the patch; changed says whether there was anything to send.
// The merge patch is computed once: it is both the test for a change and
// what is sent.
func (p statusPatch) write(ctx context.Context, c client.Client, obj client.Object) (changed bool, err error) {
	data, err := client.MergeFrom(p.orig).Data(obj)
	if err != nil {
		return false, err
	}
	if string(data) == "{}" {
		return false, nil
	}
	if p.optimisticLock {
		if data, err = withResourceVersion(data, p.orig.GetResourceVersion()); err != nil {
			return false, err
		}
	}
	return true, c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, data))
}

// withResourceVersion adds metadata.resourceVersion to a merge patch: the
// API server then applies it only to that version of the object.
func withResourceVersion(patch []byte, version string) ([]byte, error) {
	if version == "" {
		return nil, fmt.Errorf("cannot lock a patch to an object without a resourceVersion")
	}
	// Numbers stay as written: a float64 would round sizes over 2^53.
	dec := json.NewDecoder(bytes.NewReader(patch))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["metadata"] = meta
	}
	meta["resourceVersion"] = version
	return json.Marshal(m)
}
