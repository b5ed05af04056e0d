package minio

import (
	"bytes"
	"context"
	"io"
	"testing"

	miniogo "github.com/minio/minio-go/v7"
)

func TestStart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	data := []byte("hello")
	if _, err := s.Client.PutObject(ctx, s.Bucket, "a/b", bytes.NewReader(data), int64(len(data)), miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err := s.Client.GetObject(ctx, s.Bucket, "a/b", miniogo.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	if err != nil || string(got) != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	if keys := s.Keys(t, "a/"); len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
}

// IncompleteUploads finds an upload under a directory prefix, which a
// listing under that prefix on MinIO does not.
func TestIncompleteUploads(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	if _, err := (miniogo.Core{Client: s.Client}).NewMultipartUpload(ctx, s.Bucket, "a/b/c", miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]int{"": 1, "a/": 1, "a/b/c": 1, "a/b/": 1, "b/": 0, "a/b/cd": 0} {
		if n := s.IncompleteUploads(t, prefix); n != want {
			t.Errorf("IncompleteUploads(%q) = %d, want %d", prefix, n, want)
		}
	}
}
