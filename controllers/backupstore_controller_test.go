package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

func reconcileStore(t *testing.T, bs *backstopv1alpha1.BackupStore, objs ...client.Object) (*backstopv1alpha1.BackupStore, *events.FakeRecorder) {
	t.Helper()
	bs.Generation = 1
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithStatusSubresource(&backstopv1alpha1.BackupStore{}).
		WithObjects(append(objs, bs)...).Build()
	rec := events.NewFakeRecorder(10)
	r := &BackupStoreReconciler{Client: c, Recorder: rec, Clock: clocktesting.NewFakeClock(time.Now())}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bs)}); err != nil {
		t.Fatal(err)
	}
	got := &backstopv1alpha1.BackupStore{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(bs), got); err != nil {
		t.Fatal(err)
	}
	return got, rec
}

func volumeStore(enc backstopv1alpha1.Encryption) *backstopv1alpha1.BackupStore {
	return &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "vol", Namespace: "shop"},
		Spec:       backstopv1alpha1.BackupStoreSpec{Volume: &backstopv1alpha1.VolumeStore{ClaimName: "backups"}, Encryption: enc},
	}
}

func TestBackupStoreReconciler_Checks(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	secret := func(name, key, value string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Data: map[string][]byte{key: []byte(value)}}
	}
	recipients := func(identity string) backstopv1alpha1.Encryption {
		return backstopv1alpha1.Encryption{Recipients: &backstopv1alpha1.AgeRecipients{
			PublicKeys:        []string{id.Recipient().String()},
			IdentitySecretRef: &backstopv1alpha1.SecretKeySelector{Name: identity, Key: "key.txt"},
		}}
	}
	for _, tc := range []struct {
		name       string
		store      *backstopv1alpha1.BackupStore
		objs       []client.Object
		wantStatus metav1.ConditionStatus
		wantReason string
		notInMsg   string
	}{
		{name: "identity Secret missing", store: volumeStore(recipients("absent")),
			wantStatus: metav1.ConditionFalse, wantReason: backstopv1alpha1.ReasonSecretNotFound},
		{name: "identity of another key", store: volumeStore(recipients("wrong")), objs: []client.Object{secret("wrong", "key.txt", other.String())},
			wantStatus: metav1.ConditionFalse, wantReason: backstopv1alpha1.ReasonInvalidSpec, notInMsg: other.String()},
		{name: "identity not an age key", store: volumeStore(recipients("junk")), objs: []client.Object{secret("junk", "key.txt", "hunter2")},
			wantStatus: metav1.ConditionFalse, wantReason: backstopv1alpha1.ReasonInvalidSpec, notInMsg: "hunter2"},
		{name: "matching identity", store: volumeStore(recipients("good")), objs: []client.Object{secret("good", "key.txt", id.String())},
			wantStatus: metav1.ConditionTrue, wantReason: backstopv1alpha1.ReasonSucceeded},
		{name: "passphrase Secret without the key", store: volumeStore(backstopv1alpha1.Encryption{PassphraseSecretRef: &backstopv1alpha1.SecretKeySelector{Name: "pp", Key: "passphrase"}}),
			objs: []client.Object{secret("pp", "other", "x")}, wantStatus: metav1.ConditionFalse, wantReason: backstopv1alpha1.ReasonSecretNotFound},
		{name: "s3 credentials missing", store: &backstopv1alpha1.BackupStore{
			ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "shop"},
			Spec: backstopv1alpha1.BackupStoreSpec{S3: &backstopv1alpha1.S3Store{Bucket: "b", CredentialsSecretRef: backstopv1alpha1.LocalObjectReference{Name: "nope"}},
				Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}}},
		}, wantStatus: metav1.ConditionFalse, wantReason: backstopv1alpha1.ReasonSecretNotFound},
		{name: "gcs key Secret missing", store: &backstopv1alpha1.BackupStore{
			ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "shop"},
			Spec: backstopv1alpha1.BackupStoreSpec{GCS: &backstopv1alpha1.GCSStore{Bucket: "bkt", CredentialsSecretRef: &backstopv1alpha1.SecretKeySelector{Name: "gcs", Key: "key.json"}},
				Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}}},
		}, wantStatus: metav1.ConditionFalse, wantReason: backstopv1alpha1.ReasonSecretNotFound},
		{name: "azure Secret without a key or a SAS token", store: &backstopv1alpha1.BackupStore{
			ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "shop"},
			Spec: backstopv1alpha1.BackupStoreSpec{Azure: &backstopv1alpha1.AzureStore{StorageAccount: "acct", Container: "backups", CredentialsSecretRef: &backstopv1alpha1.LocalObjectReference{Name: "az"}},
				Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}}},
		}, objs: []client.Object{secret("az", "other", "x")}, wantStatus: metav1.ConditionFalse, wantReason: backstopv1alpha1.ReasonSecretNotFound},
		{name: "azure Secret with both a key and a SAS token", store: &backstopv1alpha1.BackupStore{
			ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "shop"},
			Spec: backstopv1alpha1.BackupStoreSpec{Azure: &backstopv1alpha1.AzureStore{StorageAccount: "acct", Container: "backups", CredentialsSecretRef: &backstopv1alpha1.LocalObjectReference{Name: "az"}},
				Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}}},
		}, objs: []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "az", Namespace: "shop"},
			Data: map[string][]byte{"accountKey": []byte("a2V5"), "sasToken": []byte("sv=2024&sig=s3cr3t")}}},
			wantStatus: metav1.ConditionFalse, wantReason: backstopv1alpha1.ReasonInvalidSpec, notInMsg: "s3cr3t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := reconcileStore(t, tc.store, tc.objs...)
			ready := readyOf(got)
			if ready == nil || ready.Status != tc.wantStatus || ready.Reason != tc.wantReason {
				t.Fatalf("Ready = %+v, want %s/%s", ready, tc.wantStatus, tc.wantReason)
			}
			if tc.notInMsg != "" && strings.Contains(ready.Message, tc.notInMsg) {
				t.Fatalf("the message quotes a secret: %s", ready.Message)
			}
			// The gauge BackstopStoreUnavailable reads: one series, under the reason.
			want := 0.0
			if tc.wantStatus == metav1.ConditionTrue {
				want = 1
			}
			if v := series(t, "backstop_store_ready", "namespace", got.Namespace, "reason", tc.wantReason, "store", got.Name); v != want {
				t.Errorf("backstop_store_ready{reason=%q} = %v, want %v", tc.wantReason, v, want)
			}
			if tc.wantStatus == metav1.ConditionFalse {
				if s := conditionOf(got, backstopv1alpha1.ConditionStalled); s == nil || s.Status != metav1.ConditionTrue {
					t.Error("a user error must be Stalled")
				}
			}
		})
	}
}

func TestBackupStoreReconciler_PlaintextIsFlagged(t *testing.T) {
	got, rec := reconcileStore(t, volumeStore(backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}}))
	c := conditionOf(got, backstopv1alpha1.ConditionEncryptionDisabled)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != backstopv1alpha1.ReasonPlaintextStorage {
		t.Fatalf("EncryptionDisabled = %+v", c)
	}
	if got.Status.EncryptionMode != "none" {
		t.Errorf("encryptionMode %q", got.Status.EncryptionMode)
	}
	select {
	case ev := <-rec.Events:
		if !strings.Contains(ev, "Warning PlaintextStorage") {
			t.Errorf("first event %q, want a PlaintextStorage warning", ev)
		}
	default:
		t.Error("no event")
	}
}
