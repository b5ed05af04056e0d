package azurite

import (
	"context"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	if _, err := s.Client.NewBlockBlobClient("a/b").UploadBuffer(ctx, []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	if keys := s.Keys(t, "a/"); strings.Join(keys, " ") != "a/b" {
		t.Fatalf("keys %v", keys)
	}
}
