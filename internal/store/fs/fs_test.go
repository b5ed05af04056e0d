package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/pipeline"
	"github.com/backstop-io/backstop/internal/store"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(Config{Root: root, Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b/c.txt", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "p/a/b/c.txt")); string(b) != "hello" {
		t.Fatalf("content %q", b)
	}
	if oi, err := s.Stat(ctx, "a/b/c.txt"); err != nil || oi.Size != 5 {
		t.Fatalf("stat %+v %v", oi, err)
	}
	if objs, err := s.List(ctx, "a/"); err != nil || len(objs) != 1 || objs[0].Key != "a/b/c.txt" {
		t.Fatalf("list %+v %v", objs, err)
	}
	if _, err := s.Get(ctx, "a/missing"); !store.IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
	// A failing reader leaves nothing, not even a temporary file.
	boom := errors.New("boom")
	if err := s.Put(ctx, "a/b/d.txt", io.MultiReader(strings.NewReader("part"), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("put with failing reader: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "p/a/b"))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	for _, k := range []string{"../x", "/abs", "a//b", "a/./b"} {
		if err := s.Put(ctx, k, strings.NewReader("x")); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	if err := s.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a/b/c.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "p/a")); !os.IsNotExist(err) {
		t.Fatal("empty directories left after delete")
	}
	missing, _ := New(Config{Root: filepath.Join(root, "nope")})
	if err := missing.Probe(ctx); store.ReasonOf(err) != store.ReasonBucketNotFound {
		t.Fatalf("missing root: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Deleting an object removes what killed writes of it left, and only that.
func TestStore_DeleteRemovesStaleTemporaryFiles(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "ns/t/b1/data.tar", strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "ns/t/b1")
	stale := filepath.Join(dir, tmpPrefix+"data.tar-123456")
	other := filepath.Join(dir, tmpPrefix+"manifest.json-987")
	os.WriteFile(stale, []byte("partial"), 0o600)
	os.WriteFile(other, []byte("partial"), 0o600)
	if err := s.Delete(ctx, "ns/t/b1/data.tar"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale temporary file of the deleted object is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another object's temporary file was removed: %v", err)
	}
}

// Deleting an artifact removes the temporary file a killed run left under
// its path, though the run never renamed a file there, and the directory;
// neighbouring paths keep their files and temporary files.
func TestStore_DeleteArtifactRemovesKilledWrites(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(Config{Root: root, Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(root, "p", filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ns/files/b2/.backstop-tmp-data.tar.zst.age-123456")
	keep := []string{
		"ns/files/b1/data.tar.zst.age",
		"ns/files/b1/manifest.json",
		"ns/files/b20/.backstop-tmp-data.tar.zst.age-42",
	}
	for _, k := range keep {
		write(k)
	}
	if err := pipeline.DeleteArtifact(ctx, s, "ns/files/b2"); err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != root {
			rel, _ := filepath.Rel(filepath.Join(root, "p"), p)
			if !d.IsDir() || filepath.ToSlash(rel) == "ns/files/b2" {
				left = append(left, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if strings.Join(left, " ") != strings.Join(keep, " ") {
		t.Fatalf("after the delete the store holds %v, want %v (no b2 directory)", left, keep)
	}
}
