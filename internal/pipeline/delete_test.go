package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/store/fs"
)

func TestDeleteArtifact(t *testing.T) {
	ctx := context.Background()
	st, err := fs.New(fs.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ns/t/b1/manifest.json", "ns/t/b1/data.sql.zst.age", "ns/t/b10/manifest.json"} {
		if err := st.Put(ctx, k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := DeleteArtifact(ctx, st, "ns/t/b1"); err != nil {
		t.Fatal(err)
	}
	left, err := st.List(ctx, "ns/")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Key != "ns/t/b10/manifest.json" {
		t.Fatalf("left %v, want only the other backup's manifest", left)
	}
	if err := DeleteArtifact(ctx, st, "ns/t/b1"); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if err := DeleteArtifact(ctx, st, "../etc"); err == nil {
		t.Fatal("an escaping path was accepted")
	}
}
