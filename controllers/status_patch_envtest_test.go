package controllers

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// TestStatusPatch_WritesOnlyChangesAndLocksToTheVersionRead, against a real
// API server: an unchanged status sends nothing; a locked patch computed over
// an old read is refused with a conflict and changes nothing; an unlocked one
// is applied; sizes over 2^53 arrive exact.
func TestStatusPatch_WritesOnlyChangesAndLocksToTheVersionRead(t *testing.T) {
	cl := realCluster(t)
	ctx := context.Background()
	ns := testNamespace(t, cl.Client)
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: ns},
		Spec: backstopv1alpha1.BackupSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: "orders"},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: "s3"},
		},
	}
	if err := cl.Client.Create(ctx, bk); err != nil {
		t.Fatal(err)
	}
	read := func() *backstopv1alpha1.Backup {
		t.Helper()
		got := &backstopv1alpha1.Backup{}
		if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(bk), got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	old := read()
	if changed, err := newLockedStatusPatch(old).write(ctx, cl.Client, old.DeepCopy()); err != nil || changed {
		t.Fatalf("unchanged status: changed=%v err=%v, want nothing sent", changed, err)
	}
	if got := read(); got.ResourceVersion != old.ResourceVersion {
		t.Fatalf("an unchanged status wrote the object: resourceVersion %s -> %s", old.ResourceVersion, got.ResourceVersion)
	}

	// Someone else writes the status after our read.
	cur := read()
	cur.Status.Message = "written by another"
	if err := cl.Client.Status().Update(ctx, cur); err != nil {
		t.Fatal(err)
	}

	stale := old.DeepCopy()
	stale.Status.Message = "from the old read"
	if _, err := newLockedStatusPatch(old).write(ctx, cl.Client, stale); !apierrors.IsConflict(err) {
		t.Fatalf("locked patch over an old read: err=%v, want a conflict", err)
	}
	if got := read(); got.Status.Message != "written by another" {
		t.Fatalf("the refused patch changed the status: message %q", got.Status.Message)
	}

	fresh := read()
	next := fresh.DeepCopy()
	next.Status.Message = "from a current read"
	next.Status.PlaintextBytes = 1<<53 + 1
	if changed, err := newLockedStatusPatch(fresh).write(ctx, cl.Client, next); err != nil || !changed {
		t.Fatalf("locked patch over a current read: changed=%v err=%v", changed, err)
	}
	got := read()
	if got.Status.Message != "from a current read" || got.Status.PlaintextBytes != 1<<53+1 {
		t.Fatalf("status after the patch: message %q, plaintextBytes %d", got.Status.Message, got.Status.PlaintextBytes)
	}

	// Unlocked: applied over whatever is there.
	unlocked := old.DeepCopy()
	unlocked.Status.Message = "unlocked"
	if changed, err := newStatusPatch(old).write(ctx, cl.Client, unlocked); err != nil || !changed {
		t.Fatalf("unlocked patch: changed=%v err=%v", changed, err)
	}
	if got := read(); got.Status.Message != "unlocked" {
		t.Fatalf("unlocked patch not applied: message %q", got.Status.Message)
	}
}
