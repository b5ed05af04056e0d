package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
)

// On the real API server, with the operator's own cache: a target follows
// its Secret as it is created, loses a key, gets it back and is deleted.
func TestBackupTargetReconciler_FollowsItsSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
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
		eventually(t, 30*time.Second, func() error {
			got := &backstopv1alpha1.BackupTarget{}
			if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(target), got); err != nil {
				return err
			}
			ready := conditions.Get(got, backstopv1alpha1.ConditionReady)
			if ready == nil || ready.Reason != reason || !strings.Contains(ready.Message, inMessage) {
				return fmt.Errorf("Ready = %+v, want reason %s with %q", ready, reason, inMessage)
			}
			return nil
		})
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
