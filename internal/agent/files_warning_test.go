package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fsImmutable is the inode flag behind chattr +i (linux/fs.h).
const fsImmutable = 0x10

// setImmutable sets or clears a file's immutable flag: not even root may
// remove such a file.
func setImmutable(t *testing.T, path string, on bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatalf("reading the inode flags of %s: %v", path, err)
	}
	if on {
		flags |= fsImmutable
	} else {
		flags &^= fsImmutable
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		t.Fatalf("setting the inode flags of %s: %v", path, err)
	}
}

// A files restore whose data is in place, but whose old tree cannot be
// removed, succeeded: the result says Succeeded with a warning naming the
// old tree, and the agent exits 0. (It used to report RestoreFailed with the
// backup's data restored.)
func TestAgent_FilesRestoreWarnsOfAnOldTreeLeftBehind(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "volume", "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "a.txt"), []byte("alpha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "store")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	common := []string{"--engine", "files", "--path", data, "--store-type", "filesystem", "--fs-root", root,
		"--artifact-path", "ns/files/b1", "--progress-interval", "0", "--termination-log", "", "--scratch-dir", t.TempDir()}
	if rr := runAgent(t, nil, append([]string{"backup", "--encryption", "none"}, common...)...); rr.code != 0 {
		t.Fatalf("backup %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}

	// A file that cannot be removed, in the tree the restore replaces.
	stuck := filepath.Join(data, "stuck.txt")
	if err := os.WriteFile(stuck, []byte("immutable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setImmutable(t, stuck, true)
	t.Cleanup(func() {
		matches, _ := filepath.Glob(filepath.Join(dir, "volume", ".backstop-old-*", "stuck.txt"))
		for _, m := range append(matches, stuck) {
			if _, err := os.Stat(m); err == nil {
				setImmutable(t, m, false)
			}
		}
	})

	rr := runAgent(t, nil, append([]string{"restore"}, common...)...)
	if rr.code != 0 || rr.result.Phase != PhaseSucceeded {
		t.Fatalf("restore %d: %s %s; want it to succeed", rr.code, rr.stdout, rr.stderr)
	}
	if w := rr.result.Warning; !strings.Contains(w, "restored, but removing the old tree") || !strings.Contains(w, ".backstop-old-") {
		t.Errorf("warning %q does not name the old tree left behind", w)
	}
	if !strings.Contains(rr.stderr, "backstop agent restore: warning: files: restored, but removing the old tree") {
		t.Errorf("stderr %q has no warning line", rr.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(data, "a.txt")); err != nil || string(b) != "alpha\n" {
		t.Errorf("a.txt = %q, %v after the restore", b, err)
	}
	if _, err := os.Stat(filepath.Join(data, "stuck.txt")); !os.IsNotExist(err) {
		t.Errorf("stuck.txt is in the restored tree: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "volume", ".backstop-old-*", "stuck.txt")); len(left) != 1 {
		t.Errorf("old tree left behind: %v, want the one holding stuck.txt", left)
	}
}
