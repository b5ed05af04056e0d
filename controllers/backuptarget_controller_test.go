package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

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
