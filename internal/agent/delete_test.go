package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgent_DeleteFromFilesystemStore(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "backups", "ns", "db", "b1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"manifest.json", "data.sql.zst.age"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), "backstop agent", []string{"delete", "--store-type", "filesystem", "--fs-root", root, "--prefix", "backups",
		"--artifact-path", "ns/db/b1", "--termination-log", filepath.Join(root, "term")}, &stdout, &stderr, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"phase":"Succeeded"`) {
		t.Errorf("result: %s", stdout.String())
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("left in the store: %v", left)
	}
}
