// Package generated checks that the committed generated files (deepcopy, CRDs,
// RBAC) are what `make generate manifests` writes from the sources.
package generated

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/testutil/assets"
)

// generatedPaths are the outputs of `make generate manifests`, relative to the repo root.
var generatedPaths = []string{
	"api/v1alpha1/zz_generated.deepcopy.go",
	"config/crd/bases",
	"config/rbac/role.yaml",
	"charts/backstop/crds",
	"charts/backstop/files/manager-role.yaml",
}

func TestGeneratedFilesAreUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerates with controller-gen")
	}
	root, err := assets.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Regenerate in a copy so that a stale tree is reported, not silently fixed.
	work := t.TempDir()
	if err := copyTree(root, work); err != nil {
		t.Fatal(err)
	}
	for _, p := range generatedPaths {
		if err := os.RemoveAll(filepath.Join(work, p)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("make", "generate", "manifests")
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make generate manifests: %v\n%s", err, out)
	}
	for _, p := range generatedPaths {
		compareTrees(t, filepath.Join(root, p), filepath.Join(work, p), p)
	}
}

func compareTrees(t *testing.T, committed, regenerated, name string) {
	t.Helper()
	want := readTree(t, regenerated)
	got := readTree(t, committed)
	for path, data := range want {
		if old, ok := got[path]; !ok {
			t.Errorf("%s: %s is generated but not committed; run make generate manifests", name, path)
		} else if !bytes.Equal(old, data) {
			t.Errorf("%s: %s is stale; run make generate manifests", name, path)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("%s: %s is committed but no longer generated", name, path)
		}
	}
}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		files[rel] = data
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() && (rel == ".git" || rel == "bin" || strings.HasPrefix(d.Name(), ".cache")) {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		default:
			return nil // sockets, symlinks: not part of the sources
		}
	})
}
