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
