package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// On the real API server, with the operator's own cache: a target follows
// its Secret as it is created, loses a key, gets it back and is deleted.
func TestBackupTargetReconciler_FollowsItsSecret(t *testing.T) {
	cl := realCluster(t)
	ctx := context.Background()
	ns := testNamespace(t, cl.Client)
	startManager(t, cl.Config, ns, nil, func(mgr ctrl.Manager) error {
		return SetupAll(ctx, mgr, Options{})
	})
	target := testTarget()
	target.Namespace = ns
	if err := cl.Client.Create(ctx, target); err != nil {
		t.Fatal(err)
	}
	waitFor := func(reason, inMessage string) {
		t.Helper()
		waitForReady(t, cl.Client, &backstopv1alpha1.BackupTarget{ObjectMeta: target.ObjectMeta}, reason, inMessage)
	}
	waitFor(backstopv1alpha1.ReasonSecretNotFound, `Secret "db" not found`)

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Data: map[string][]byte{"user": []byte("app"), "password": []byte("pw")}}
	if err := cl.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitFor(backstopv1alpha1.ReasonSucceeded, "Secrets and keys present")

	delete(secret.Data, "password")
	if err := cl.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitFor(backstopv1alpha1.ReasonSecretNotFound, `has no key "password"`)

	secret.Data["password"] = []byte("pw2")
	if err := cl.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitFor(backstopv1alpha1.ReasonSucceeded, "Secrets and keys present")

	if err := cl.Client.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitFor(backstopv1alpha1.ReasonSecretNotFound, `Secret "db" not found`)
}
