package controllers

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
)

// A target is reconciled for every Backup of it that ends: its Secrets are
// read again only when their cached metadata shows another version.
func TestBackupTargetReconciler_ReadsSecretsOnlyWhenTheyChanged(t *testing.T) {
	ctx := context.Background()
	target := testTarget()
	target.Generation = 1
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Data: map[string][]byte{"user": []byte("app"), "password": []byte("pw")}}
	byTarget := func(o client.Object) []string { return []string{o.(*backstopv1alpha1.Backup).Spec.TargetRef.Name} }
	secretReads := 0
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithStatusSubresource(&backstopv1alpha1.BackupTarget{}).
		WithObjects(target, secret).WithIndex(&backstopv1alpha1.Backup{}, indexTargetName, byTarget).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok {
				secretReads++
			}
			return c.Get(ctx, key, obj, opts...)
		}}).Build()

	check := func(r *BackupTargetReconciler, wantReads int, wantReason string) {
		t.Helper()
		secretReads = 0
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(target)}); err != nil {
			t.Fatal(err)
		}
		got := &backstopv1alpha1.BackupTarget{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(target), got); err != nil {
			t.Fatal(err)
		}
		if secretReads != wantReads {
			t.Errorf("read the Secret %d times, want %d", secretReads, wantReads)
		}
		if ready := conditions.Get(got, backstopv1alpha1.ConditionReady); ready == nil || ready.Reason != wantReason {
			t.Errorf("Ready = %+v, want reason %s", ready, wantReason)
		}
	}
	r := &BackupTargetReconciler{Client: c, Metadata: c, Recorder: events.NewFakeRecorder(10)}
	check(r, 2, backstopv1alpha1.ReasonSucceeded) // user and password: both keys read
	check(r, 0, backstopv1alpha1.ReasonSucceeded) // unchanged: not read again

	// The password key removed: a new version, read, and reported.
	delete(secret.Data, "password")
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	check(r, 1, backstopv1alpha1.ReasonSecretNotFound) // stops at the password
	check(r, 1, backstopv1alpha1.ReasonSecretNotFound) // a failed check is not remembered

	secret.Data["password"] = []byte("pw2")
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	check(r, 2, backstopv1alpha1.ReasonSucceeded)
	check(r, 0, backstopv1alpha1.ReasonSucceeded)

	// Without the metadata cache, every reconcile reads the Secrets.
	uncached := &BackupTargetReconciler{Client: c, Recorder: events.NewFakeRecorder(10)}
	check(uncached, 2, backstopv1alpha1.ReasonSucceeded)
	check(uncached, 2, backstopv1alpha1.ReasonSucceeded)
}

// A target's last successful backup is one that is there: when it is
// deleted, the one before it; when none is left, none.
func TestBackupTargetReconciler_LastSuccessfulBackupIsOneThatIsThere(t *testing.T) {
	ctx := context.Background()
	target := testTarget()
	target.Generation = 1
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Data: map[string][]byte{"user": []byte("app"), "password": []byte("pw")}}
	succeeded := func(name string, day int) *backstopv1alpha1.Backup {
		done := metav1.NewTime(time.Date(2026, 12, day, 2, 0, 0, 0, time.UTC))
		return &backstopv1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Finalizers: []string{FinalizerArtifact}},
			Spec:       backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: target.Name}},
			Status:     backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupSucceeded, CompletionTime: &done},
		}
	}
	older, newer := succeeded("older", 5), succeeded("newer", 6)
	byTarget := func(o client.Object) []string { return []string{o.(*backstopv1alpha1.Backup).Spec.TargetRef.Name} }
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithStatusSubresource(&backstopv1alpha1.BackupTarget{}).
		WithObjects(target, secret, older, newer).WithIndex(&backstopv1alpha1.Backup{}, indexTargetName, byTarget).Build()
	r := &BackupTargetReconciler{Client: c, Recorder: events.NewFakeRecorder(10)}
	last := func() string {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(target)}); err != nil {
			t.Fatal(err)
		}
		got := &backstopv1alpha1.BackupTarget{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(target), got); err != nil {
			t.Fatal(err)
		}
		if (got.Status.LastSuccessfulBackup == "") != (got.Status.LastSuccessfulBackupTime == nil) {
			t.Errorf("lastSuccessfulBackup %q with time %v", got.Status.LastSuccessfulBackup, got.Status.LastSuccessfulBackupTime)
		}
		return got.Status.LastSuccessfulBackup
	}
	if got := last(); got != "newer" {
		t.Fatalf("lastSuccessfulBackup = %q, want newer", got)
	}
	// Being deleted (its finalizer holds it): no longer the last one.
	if err := c.Delete(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if got := last(); got != "older" {
		t.Fatalf("lastSuccessfulBackup = %q once newer is being deleted, want older", got)
	}
	if err := c.Delete(ctx, older); err != nil {
		t.Fatal(err)
	}
	if got := last(); got != "" {
		t.Fatalf("lastSuccessfulBackup = %q with every Backup being deleted, want none", got)
	}
}

// A target wakes when a successful Backup of it goes.
func TestSuccessChanged(t *testing.T) {
	p := successChanged()
	ok := &backstopv1alpha1.Backup{Status: backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupSucceeded}}
	failed := &backstopv1alpha1.Backup{Status: backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupFailed}}
	deleting := ok.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	running := &backstopv1alpha1.Backup{Status: backstopv1alpha1.BackupStatus{Phase: backstopv1alpha1.BackupRunning}}
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"succeeds", p.Update(event.UpdateEvent{ObjectOld: running, ObjectNew: ok}), true},
		{"stays Succeeded", p.Update(event.UpdateEvent{ObjectOld: ok, ObjectNew: ok.DeepCopy()}), false},
		{"a successful one being deleted", p.Update(event.UpdateEvent{ObjectOld: ok, ObjectNew: deleting}), true},
		{"a successful one gone", p.Delete(event.DeleteEvent{Object: ok}), true},
		{"a failed one gone", p.Delete(event.DeleteEvent{Object: failed}), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: passes = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
