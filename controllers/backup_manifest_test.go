package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/store/fs"
)

// storeReachedBy makes r's store a directory of the test's.
func storeReachedBy(t *testing.T, r *BackupReconciler) store.Store {
	t.Helper()
	st, err := fs.New(fs.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r.OpenStore = func(context.Context, client.Reader, *backstopv1alpha1.BackupStore) (store.Store, error) {
		return st, nil
	}
	return st
}

// storeArtifact writes what the agent of finishedBackup(name) reports: its
// data object and manifest, the manifest changed by edit (nil: none).
func storeArtifact(t *testing.T, st store.Store, name string, edit func(m *manifest.Manifest)) {
	t.Helper()
	ctx := context.Background()
	dir := "shop/orders/" + name
	m := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Engine: "postgres", DataObject: "data.sql.zst.age",
		StoredSize: 100, PlaintextSize: 400, SHA256: strings.Repeat("1", 64), PlaintextSHA256: strings.Repeat("2", 64)}
	if edit != nil {
		edit(m)
	}
	if err := st.Put(ctx, path.Join(dir, "data.sql.zst.age"), bytes.NewReader(make([]byte, 100))); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, path.Join(dir, manifest.FileName), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

// A Backup is Succeeded only once the store holds its manifest, agreeing
// with the agent, and its data object: whatever else the store holds fails
// it with a reason, and a store that cannot be read leaves it Running.
func TestBackupReconciler_SucceededOnlyWhenTheStoreHoldsIt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		store      func(t *testing.T, st store.Store, name string)
		wantReason string // "" for Succeeded
		inMessage  string
	}{
		{name: "stored", store: func(t *testing.T, st store.Store, name string) { storeArtifact(t, st, name, nil) }},
		{name: "no manifest", store: func(t *testing.T, st store.Store, name string) {
			if err := st.Put(ctx, "shop/orders/"+name+"/data.sql.zst.age", bytes.NewReader(make([]byte, 100))); err != nil {
				t.Fatal(err)
			}
		}, wantReason: backstopv1alpha1.ReasonManifestNotFound, inMessage: "no manifest in the store"},
		{name: "manifest of other data", store: func(t *testing.T, st store.Store, name string) {
			storeArtifact(t, st, name, func(m *manifest.Manifest) { m.SHA256 = strings.Repeat("9", 64) })
		}, wantReason: backstopv1alpha1.ReasonIntegrityMismatch, inMessage: "does not match what the agent reported"},
		{name: "manifest not JSON", store: func(t *testing.T, st store.Store, name string) {
			storeArtifact(t, st, name, nil)
			if err := st.Put(ctx, "shop/orders/"+name+"/"+manifest.FileName, strings.NewReader("{half")); err != nil {
				t.Fatal(err)
			}
		}, wantReason: backstopv1alpha1.ReasonIntegrityMismatch, inMessage: "manifest.json does not parse"},
		{name: "data object missing", store: func(t *testing.T, st store.Store, name string) {
			storeArtifact(t, st, name, nil)
			if err := st.Delete(ctx, "shop/orders/"+name+"/data.sql.zst.age"); err != nil {
				t.Fatal(err)
			}
		}, wantReason: backstopv1alpha1.ReasonIntegrityMismatch, inMessage: "data object cannot be found"},
		{name: "data object cut short", store: func(t *testing.T, st store.Store, name string) {
			storeArtifact(t, st, name, nil)
			if err := st.Put(ctx, "shop/orders/"+name+"/data.sql.zst.age", bytes.NewReader(make([]byte, 60))); err != nil {
				t.Fatal(err)
			}
		}, wantReason: backstopv1alpha1.ReasonIntegrityMismatch, inMessage: "holds 60 bytes, the manifest says 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, tg := readyStoreAndTarget()
			bk, job, pod := finishedBackup("nightly", "")
			r := newBackupReconciler(t, st, tg, bk, job, pod)
			tc.store(t, storeReachedBy(t, r), bk.Name)
			got := reconcileBackup(t, r, bk.Name)
			ready := conditions.Get(got, backstopv1alpha1.ConditionReady)
			if tc.wantReason == "" {
				if got.Status.Phase != backstopv1alpha1.BackupSucceeded {
					t.Fatalf("phase %s, ready %+v; want Succeeded", got.Status.Phase, ready)
				}
				return
			}
			if got.Status.Phase != backstopv1alpha1.BackupFailed || got.Status.Reason != tc.wantReason || !strings.Contains(got.Status.Message, tc.inMessage) {
				t.Fatalf("phase %s reason %s message %q; want Failed, %s, with %q", got.Status.Phase, got.Status.Reason, got.Status.Message, tc.wantReason, tc.inMessage)
			}
		})
	}

	t.Run("store unreadable, then readable", func(t *testing.T) {
		st, tg := readyStoreAndTarget()
		bk, job, pod := finishedBackup("nightly", "")
		r := newBackupReconciler(t, st, tg, bk, job, pod)
		reachable := storeReachedBy(t, r)
		storeArtifact(t, reachable, bk.Name, nil)
		r.OpenStore = func(context.Context, client.Reader, *backstopv1alpha1.BackupStore) (store.Store, error) {
			return nil, &store.Error{Reason: store.ReasonStoreUnreachable, Op: "get", Err: errors.New("connection refused")}
		}
		got := reconcileBackup(t, r, bk.Name)
		ready := conditions.Get(got, backstopv1alpha1.ConditionReady)
		if got.Status.Phase != backstopv1alpha1.BackupRunning || ready == nil || ready.Status != "Unknown" ||
			!strings.Contains(ready.Message, "reading its manifest back from the store failed, trying again: get: connection refused") {
			t.Fatalf("phase %s ready %+v; want Running, saying the manifest is not read back yet", got.Status.Phase, ready)
		}
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bk)})
		if err != nil || res.RequeueAfter != manifestRetry {
			t.Fatalf("Reconcile = %+v, %v; want a retry after %s", res, err, manifestRetry)
		}

		r.OpenStore = func(context.Context, client.Reader, *backstopv1alpha1.BackupStore) (store.Store, error) {
			return reachable, nil
		}
		if got = reconcileBackup(t, r, bk.Name); got.Status.Phase != backstopv1alpha1.BackupSucceeded {
			t.Fatalf("phase %s once the store is readable; want Succeeded", got.Status.Phase)
		}
	})
}

// Deleting a Backup deletes its artifact from the store, but not with
// deletionPolicy Retain (safety Backups use it).
func TestBackupReconciler_DeletionPolicy(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []backstopv1alpha1.DeletionPolicy{backstopv1alpha1.DeletionRetain, backstopv1alpha1.DeletionDelete} {
		t.Run(string(policy), func(t *testing.T) {
			st, tg := readyStoreAndTarget()
			bk, _, _ := finishedBackup("nightly", "")
			bk.Spec.DeletionPolicy = policy
			bk.Finalizers = []string{FinalizerArtifact}
			bk.Status.Phase = backstopv1alpha1.BackupSucceeded
			bk.Status.ArtifactPath = "shop/orders/nightly"
			r := newBackupReconciler(t, st, tg, bk)
			stored := storeReachedBy(t, r)
			storeArtifact(t, stored, bk.Name, nil)
			if err := r.Delete(ctx, bk); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bk)}); err != nil {
				t.Fatal(err)
			}
			if err := r.Get(ctx, client.ObjectKeyFromObject(bk), &backstopv1alpha1.Backup{}); !apierrors.IsNotFound(err) {
				t.Fatalf("the Backup is still there (%v): its finalizer was not removed", err)
			}
			for _, obj := range []string{manifest.FileName, "data.sql.zst.age"} {
				_, err := stored.Stat(ctx, "shop/orders/nightly/"+obj)
				if kept := err == nil; kept != (policy == backstopv1alpha1.DeletionRetain) {
					t.Errorf("%s in the store: %v (deletionPolicy %s)", obj, err, policy)
				}
			}
		})
	}
}

// Deleting a namespace deletes its stores and Secrets with its Backups: a
// Backup whose store is gone then lets go, leaving its artifact, instead of
// holding the namespace in Terminating for ever. Outside a namespace being
// deleted, and for a store that exists but does not answer, it waits.
func TestBackupReconciler_DeletionInANamespaceBeingDeleted(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name             string
		namespaceDeleted bool
		storeThere       bool // not answering: its endpoint refuses connections
		released         bool
	}{
		{"store gone, namespace being deleted", true, false, true},
		{"store gone, namespace live", false, false, false},
		{"store not answering, namespace being deleted", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, tg := readyStoreAndTarget()
			st.Spec.S3.Endpoint = "http://127.0.0.1:1"
			bk, _, _ := finishedBackup("nightly", "")
			bk.Finalizers = []string{FinalizerArtifact}
			bk.Status.Phase = backstopv1alpha1.BackupSucceeded
			bk.Status.ArtifactPath = "shop/orders/nightly"
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: bk.Namespace, Finalizers: []string{"kubernetes"}}}
			creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: bk.Namespace},
				Data: map[string][]byte{"accessKeyID": []byte("k"), "secretAccessKey": []byte("s")}}
			objs := []client.Object{ns, tg, bk, creds}
			if tc.storeThere {
				objs = append(objs, st)
			}
			r := newBackupReconciler(t, objs...)
			if tc.namespaceDeleted {
				if err := r.Delete(ctx, ns); err != nil { // held by its finalizer: Terminating
					t.Fatal(err)
				}
			}
			if err := r.Delete(ctx, bk); err != nil {
				t.Fatal(err)
			}
			res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bk)})
			if err != nil {
				t.Fatal(err)
			}
			err = r.Get(ctx, client.ObjectKeyFromObject(bk), &backstopv1alpha1.Backup{})
			if released := apierrors.IsNotFound(err); released != tc.released {
				t.Fatalf("Backup released: %v (%v), want %v", released, err, tc.released)
			}
			if !tc.released && res.RequeueAfter == 0 {
				t.Errorf("a Backup that waits is not tried again")
			}
		})
	}
}
