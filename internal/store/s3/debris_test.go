package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/backstop-io/backstop/internal/pipeline"
	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/store/s3"
	"github.com/backstop-io/backstop/internal/testutil/minio"
)

// Debris on a real MinIO: uploads under the store's prefix count with the
// bytes of their parts, others do not; past 100 uploads the bytes are a
// lower bound; a store without a prefix counts the whole bucket's.
func TestStore_Debris(t *testing.T) {
	srv := minio.Start(t)
	ctx := context.Background()
	core := miniogo.Core{Client: srv.Client}
	start := func(key string, size int) {
		t.Helper()
		id, err := core.NewMultipartUpload(ctx, srv.Bucket, key, miniogo.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.PutObjectPart(ctx, srv.Bucket, key, id, 1, bytes.NewReader(make([]byte, size)), int64(size), miniogo.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	open := func(prefix string) *s3.Store {
		t.Helper()
		s, err := s3.New(s3.Config{Endpoint: "http://" + srv.Endpoint, Bucket: srv.Bucket, Prefix: prefix, ForcePathStyle: true,
			Region: "us-east-1", AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	check := func(s *s3.Store, want store.Debris) {
		t.Helper()
		got, err := s.Debris(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: Debris = %+v, want %+v", s, got, want)
		}
	}

	check(open("many"), store.Debris{})
	start("other/x", 7)
	for i := range 101 {
		start(fmt.Sprintf("many/%03d", i), 10)
	}
	check(open("many"), store.Debris{Objects: 101, Bytes: 1000, Partial: true})
	check(open("other"), store.Debris{Objects: 1, Bytes: 7})
	check(open("oth"), store.Debris{})
	// Which 100 of the 102 are sized depends on the server's listing order.
	all, err := open("").Debris(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if all.Objects != 102 || !all.Partial || all.Bytes < 99*10 || all.Bytes > 100*10 {
		t.Errorf("no prefix: Debris = %+v, want 102 objects, 990 to 1000 bytes, partial", all)
	}
}

// Deleting an artifact aborts the incomplete uploads a killed run left
// under its path, though no object of the run was ever completed there;
// uploads of neighbouring paths, and their objects, stay.
func TestStore_DeleteArtifactAbortsKilledUploads(t *testing.T) {
	srv := minio.Start(t)
	ctx := context.Background()
	core := miniogo.Core{Client: srv.Client}
	start := func(key string) {
		t.Helper()
		id, err := core.NewMultipartUpload(ctx, srv.Bucket, key, miniogo.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.PutObjectPart(ctx, srv.Bucket, key, id, 1, bytes.NewReader(make([]byte, 1000)), 1000, miniogo.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := s3.New(s3.Config{Endpoint: "http://" + srv.Endpoint, Bucket: srv.Bucket, Prefix: "cluster-a", ForcePathStyle: true,
		Region: "us-east-1", AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	killed := "cluster-a/ns/files/b2/data.tar.zst.age"
	neighbours := []string{"cluster-a/ns/files/b20/data.tar.zst.age", "cluster-a/ns/files/b1/data.tar.zst.age", "cluster-b/ns/files/b2/data.tar.zst.age"}
	for _, k := range append([]string{killed}, neighbours...) {
		start(k)
	}
	if err := s.Put(ctx, "ns/files/b1/manifest.json", bytes.NewReader([]byte("{}"))); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.DeleteArtifact(ctx, s, "ns/files/b2"); err != nil {
		t.Fatal(err)
	}
	if n := srv.IncompleteUploads(t, killed); n != 0 {
		t.Fatalf("after the delete %d incomplete uploads of the killed run are left", n)
	}
	for _, k := range neighbours {
		if n := srv.IncompleteUploads(t, k); n != 1 {
			t.Errorf("%s: %d incomplete uploads, want its 1 untouched", k, n)
		}
	}
	if keys := srv.Keys(t, ""); fmt.Sprint(keys) != "[cluster-a/ns/files/b1/manifest.json]" {
		t.Errorf("the bucket holds %v", keys)
	}
}
