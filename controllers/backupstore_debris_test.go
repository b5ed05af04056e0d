package controllers

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	miniogo "github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/testutil/azurite"
	"github.com/backstop-io/backstop/internal/testutil/minio"
)

// TestBackupStoreReconciler_ReportsDebris probes an S3 store on a real MinIO
// through the real API server: an incomplete multipart upload under the
// store's prefix, as a killed backup Job leaves, shows in status.debris and
// in the Ready message; uploads outside the prefix do not count; once it is
// aborted the store reports zero.
func TestBackupStoreReconciler_ReportsDebris(t *testing.T) {
	srv := minio.Start(t)
	cl := realCluster(t)
	ns := testNamespace(t, cl.Client)
	ctx := context.Background()

	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns},
		Data: map[string][]byte{s3AccessKeyIDKey: []byte(srv.AccessKey), s3SecretAccessKeyKey: []byte(srv.SecretKey)}}
	bs := &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: ns},
		Spec: backstopv1alpha1.BackupStoreSpec{
			S3: &backstopv1alpha1.S3Store{Bucket: srv.Bucket, Prefix: "team-a", Endpoint: "http://" + srv.Endpoint,
				ForcePathStyle: true, CredentialsSecretRef: backstopv1alpha1.LocalObjectReference{Name: "s3"}},
			Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}},
		},
	}
	for _, o := range []client.Object{creds, bs} {
		if err := cl.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	clk := clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	r := &BackupStoreReconciler{Client: cl.Client, Clock: clk}
	probe := func() *backstopv1alpha1.BackupStore {
		t.Helper()
		clk.Step(time.Minute)
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bs)}); err != nil {
			t.Fatal(err)
		}
		got := &backstopv1alpha1.BackupStore{}
		if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(bs), got); err != nil {
			t.Fatal(err)
		}
		ready := readyOf(got)
		if ready == nil || ready.Status != metav1.ConditionTrue {
			t.Fatalf("Ready = %+v, want True: debris is not an error", ready)
		}
		if strings.Contains(ready.Message, srv.SecretKey) || strings.Contains(ready.Message, srv.AccessKey) {
			t.Fatalf("the message quotes a credential: %s", ready.Message)
		}
		return got
	}
	wantDebris := func(got *backstopv1alpha1.BackupStore, objects, size int64) {
		t.Helper()
		d := got.Status.Debris
		if d == nil {
			t.Fatal("status.debris is unset")
		}
		if d.Objects != objects || d.Bytes != size {
			t.Errorf("status.debris = %d objects, %d bytes; want %d, %d", d.Objects, d.Bytes, objects, size)
		}
		if !d.CheckedAt.Time.Equal(clk.Now()) {
			t.Errorf("status.debris.checkedAt = %v, want the probe's time %v", d.CheckedAt.Time, clk.Now())
		}
	}

	got := probe()
	wantDebris(got, 0, 0)
	if msg := readyOf(got).Message; strings.Contains(msg, "incomplete") {
		t.Errorf("a clean store's message mentions debris: %s", msg)
	}

	// A killed run's upload under the prefix, and two that are not the
	// store's: another prefix, and one that only starts with the same letters.
	core := miniogo.Core{Client: srv.Client}
	start := func(key string, size int) string {
		t.Helper()
		id, err := core.NewMultipartUpload(ctx, srv.Bucket, key, miniogo.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.PutObjectPart(ctx, srv.Bucket, key, id, 1, bytes.NewReader(make([]byte, size)), int64(size), miniogo.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	const partSize = 123457
	key := "team-a/shop/db/20261203T000000Z/data.sql.zst"
	id := start(key, partSize)
	start("team-b/shop/db/20261203T000000Z/data.sql.zst", 1000)
	start("team-ab/x", 1000)

	got = probe()
	wantDebris(got, 1, partSize)
	want := fmt.Sprintf("1 incomplete multipart upload under the prefix holds %d bytes", partSize)
	if msg := readyOf(got).Message; !strings.Contains(msg, want) || !strings.Contains(msg, "lifecycle rule") {
		t.Errorf("Ready message %q, want it to say %q and name the lifecycle rule", msg, want)
	}

	if err := core.AbortMultipartUpload(ctx, srv.Bucket, key, id); err != nil {
		t.Fatal(err)
	}
	got = probe()
	wantDebris(got, 0, 0)
	if msg := readyOf(got).Message; strings.Contains(msg, "incomplete") {
		t.Errorf("after the abort the message still mentions debris: %s", msg)
	}
}

// TestBackupStoreReconciler_ReportsAzureDebris probes an Azure store on a
// real Azurite through the real API server: a blob of uncommitted blocks
// under the store's prefix, as a killed backup Job leaves, shows in
// status.debris and in the Ready message; blobs outside the prefix and
// committed blobs do not count; once it is cleared the store reports zero.
func TestBackupStoreReconciler_ReportsAzureDebris(t *testing.T) {
	srv := azurite.Start(t)
	cl := realCluster(t)
	ns := testNamespace(t, cl.Client)
	ctx := context.Background()

	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "az", Namespace: ns},
		Data: map[string][]byte{azureAccountKeyKey: []byte(srv.Key)}}
	bs := &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "azurite", Namespace: ns},
		Spec: backstopv1alpha1.BackupStoreSpec{
			Azure: &backstopv1alpha1.AzureStore{StorageAccount: srv.Account, Container: srv.Container, Prefix: "team-a",
				Endpoint: srv.Endpoint, CredentialsSecretRef: &backstopv1alpha1.LocalObjectReference{Name: "az"}},
			Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}},
		},
	}
	for _, o := range []client.Object{creds, bs} {
		if err := cl.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	clk := clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	r := &BackupStoreReconciler{Client: cl.Client, Clock: clk}
	probe := func() (*backstopv1alpha1.BackupStore, string) {
		t.Helper()
		clk.Step(time.Minute)
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bs)}); err != nil {
			t.Fatal(err)
		}
		got := &backstopv1alpha1.BackupStore{}
		if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(bs), got); err != nil {
			t.Fatal(err)
		}
		ready := readyOf(got)
		if ready == nil || ready.Status != metav1.ConditionTrue {
			t.Fatalf("Ready = %+v, want True: debris is not an error", ready)
		}
		if strings.Contains(ready.Message, srv.Key) {
			t.Fatalf("the message quotes the account key: %s", ready.Message)
		}
		d := got.Status.Debris
		if d == nil {
			t.Fatal("status.debris is unset")
		}
		if !d.CheckedAt.Time.Equal(clk.Now()) {
			t.Errorf("status.debris.checkedAt = %v, want the probe's time %v", d.CheckedAt.Time, clk.Now())
		}
		return got, ready.Message
	}
	stage := func(name string, size int) {
		t.Helper()
		id := base64.StdEncoding.EncodeToString([]byte("block-0"))
		if _, err := srv.Client.NewBlockBlobClient(name).StageBlock(ctx, id, streaming.NopCloser(bytes.NewReader(make([]byte, size))), nil); err != nil {
			t.Fatal(err)
		}
	}

	got, msg := probe()
	if d := got.Status.Debris; d.Objects != 0 || d.Bytes != 0 || strings.Contains(msg, "uncommitted") {
		t.Fatalf("a clean store: debris %+v, message %q", d, msg)
	}

	const size = 123457
	key := "team-a/shop/db/20261203T000000Z/data.sql.zst.age"
	stage(key, size)
	stage("team-b/shop/db/20261203T000000Z/data.sql.zst.age", 1000)
	stage("team-ab/x", 1000)
	if _, err := srv.Client.NewBlockBlobClient("team-a/shop/db/20261202T000000Z/manifest.json").UploadBuffer(ctx, []byte("{}"), nil); err != nil {
		t.Fatal(err)
	}
	got, msg = probe()
	if d := got.Status.Debris; d.Objects != 1 || d.Bytes != size {
		t.Errorf("status.debris = %d objects, %d bytes; want 1, %d", d.Objects, d.Bytes, size)
	}
	want := fmt.Sprintf("1 blob under the prefix that was never committed holds %d bytes of uncommitted blocks", size)
	if !strings.Contains(msg, want) || !strings.Contains(msg, "a week") {
		t.Errorf("Ready message %q, want it to say %q and when Azure discards them", msg, want)
	}

	// Once a block list is committed there (as a retry commits its upload),
	// the blob is no debris.
	if _, err := srv.Client.NewBlockBlobClient(key).CommitBlockList(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, msg = probe()
	if d := got.Status.Debris; d.Objects != 0 || d.Bytes != 0 || strings.Contains(msg, "uncommitted") {
		t.Fatalf("after the commit: debris %+v, message %q", d, msg)
	}
}

func TestBackupStoreReconciler_DebrisMessage(t *testing.T) {
	for _, tc := range []struct {
		azure bool
		d     store.Debris
		want  string
	}{
		{false, store.Debris{Objects: 1, Bytes: 5}, "1 incomplete multipart upload under the prefix holds 5 bytes"},
		{false, store.Debris{Objects: 3, Bytes: 0}, "3 incomplete multipart uploads under the prefix hold 0 bytes"},
		{false, store.Debris{Objects: 250, Bytes: 1 << 30, Partial: true}, "250 incomplete multipart uploads under the prefix hold at least 1073741824 bytes"},
		{true, store.Debris{Objects: 1, Bytes: 5}, "1 blob under the prefix that was never committed holds 5 bytes of uncommitted blocks"},
		{true, store.Debris{Objects: 250, Bytes: 1 << 30, Partial: true}, "250 blobs under the prefix that were never committed hold at least 1073741824 bytes of uncommitted blocks"},
	} {
		if got := describeDebris(tc.azure, tc.d); !strings.HasPrefix(got, tc.want) {
			t.Errorf("describeDebris(%v, %+v) = %q, want it to start %q", tc.azure, tc.d, got, tc.want)
		}
	}
}
