package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// With the operator running: a store is probed again as soon as its
// credentials Secret appears, not at its next interval.
func TestBackupStoreReconciler_ProbesAgainWhenItsSecretChanges(t *testing.T) {
	cl := realCluster(t)
	ctx := context.Background()
	ns := testNamespace(t, cl.Client)
	startManager(t, cl.Config, ns, nil, func(mgr ctrl.Manager) error { return SetupAll(ctx, mgr, Options{}) })
	store := &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns},
		Spec: backstopv1alpha1.BackupStoreSpec{
			// Nothing listens there: the probe fails at once, once it can run.
			S3:         &backstopv1alpha1.S3Store{Bucket: "backups", Endpoint: "http://127.0.0.1:1", CredentialsSecretRef: backstopv1alpha1.LocalObjectReference{Name: "s3-creds"}},
			Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}},
		},
	}
	if err := cl.Client.Create(ctx, store); err != nil {
		t.Fatal(err)
	}
	waitFor := func(reason, inMessage string) {
		t.Helper()
		waitForReady(t, cl.Client, &backstopv1alpha1.BackupStore{ObjectMeta: store.ObjectMeta}, reason, inMessage)
	}
	waitFor(backstopv1alpha1.ReasonSecretNotFound, `Secret "s3-creds" not found`)

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-creds", Namespace: ns},
		Data: map[string][]byte{"accessKeyID": []byte("id"), "secretAccessKey": []byte("key")}}
	if err := cl.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	// The probe ran with the credentials: it now fails on the endpoint.
	waitFor(backstopv1alpha1.ReasonStoreUnreachable, "127.0.0.1:1")
}
