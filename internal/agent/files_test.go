package agent

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/backstop-io/backstop/internal/testutil/minio"
)

// The real files engine, through the agent and a filesystem store; the
// artifact opens with the stock age CLI and is a plain tar inside zstd.
func TestAgent_FilesEngineRoundTrip(t *testing.T) {
	ageBin, keygen := minio.AgeBinaries(t)
	dir := t.TempDir()
	idFile := filepath.Join(dir, "key.txt")
	if out, err := exec.Command(keygen, "-o", idFile).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v %s", err, out)
	}
	pub, err := exec.Command(keygen, "-y", idFile).Output()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "volume", "data")
	os.MkdirAll(filepath.Join(data, "sub"), 0o755)
	os.WriteFile(filepath.Join(data, "a.txt"), []byte("alpha\n"), 0o644)
	os.WriteFile(filepath.Join(data, "sub", "b.bin"), randomData(300<<10), 0o600)

	root := filepath.Join(dir, "store")
	os.Mkdir(root, 0o755)
	common := []string{"--engine", "files", "--path", data, "--store-type", "filesystem", "--fs-root", root,
		"--artifact-path", "ns/files/b1", "--progress-interval", "0", "--termination-log", "", "--scratch-dir", t.TempDir()}
	rr := runAgent(t, nil, append([]string{"backup", "--encryption", "x25519", "--recipient", string(bytes.TrimSpace(pub))}, common...)...)
	if rr.code != 0 || rr.result.DataObject != "data.tar.zst.age" {
		t.Fatalf("backup %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}

	// verify prints what the backup counted in its archive.
	ur := runUserCmd(t, nil, "verify", "--store-type", "filesystem", "--fs-root", root, "--artifact-path", "ns/files/b1",
		"--identity-file", idFile, "--progress-interval", "0")
	if want := fmt.Sprintf("inventory:        4 entries, %d bytes of files\n", 6+300<<10); ur.code != 0 || !strings.Contains(ur.stdout, want) {
		t.Fatalf("verify %d: %s %s; want %q", ur.code, ur.stdout, ur.stderr, want)
	}

	// Stock age + zstd + tar.
	obj := filepath.Join(root, "ns/files/b1/data.tar.zst.age")
	plain, err := exec.Command(ageBin, "-d", "-i", idFile, obj).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	zr, _ := zstd.NewReader(bytes.NewReader(plain))
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		names[filepath.Base(h.Name)] = true
	}
	if !names["a.txt"] || !names["b.bin"] {
		t.Fatalf("tar entries %v", names)
	}

	// Change the data, restore, and get the backed-up state back.
	os.WriteFile(filepath.Join(data, "a.txt"), []byte("changed\n"), 0o644)
	os.WriteFile(filepath.Join(data, "new.txt"), []byte("new\n"), 0o644)
	rr = runAgent(t, nil, append([]string{"restore", "--identity-file", idFile}, common...)...)
	if rr.code != 0 {
		t.Fatalf("restore %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "a.txt")); string(b) != "alpha\n" {
		t.Fatalf("a.txt = %q after restore", b)
	}
	if _, err := os.Stat(filepath.Join(data, "new.txt")); !os.IsNotExist(err) {
		t.Fatal("restore merged instead of replacing")
	}
}
