package files

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/backstop-io/backstop/internal/engine"
)

func newEngine(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := engine.New(Name, engine.Options{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	return e.(*Engine)
}

func mustWrite(t *testing.T, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// buildTree makes a directory with every kind of entry the engine keeps.
func buildTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(root, 0o750))
	mustWrite(t, filepath.Join(root, "hello.txt"), []byte("hello\n"), 0o644)
	mustWrite(t, filepath.Join(root, "secret.key"), []byte("k"), 0o600)
	mustWrite(t, filepath.Join(root, "bin", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	mustWrite(t, filepath.Join(root, "bin", "setuid"), []byte("x"), os.ModeSetuid|0o755)
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16) // 5 MiB
	mustWrite(t, filepath.Join(root, "data", "deep", "er", "big.bin"), big, 0o640)
	mustWrite(t, filepath.Join(root, "data", "empty-file"), nil, 0o644)
	mustWrite(t, filepath.Join(root, "name with spaces & ünïcode"), []byte("u"), 0o644)
	must(os.MkdirAll(filepath.Join(root, "empty-dir"), 0o700))
	must(os.MkdirAll(filepath.Join(root, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(root, "sticky"), os.ModeSticky|0o777))
	must(os.Symlink("hello.txt", filepath.Join(root, "link-to-hello")))
	must(os.Symlink("../hello.txt", filepath.Join(root, "data", "link-up")))
	must(os.Symlink("data/deep", filepath.Join(root, "link-to-dir")))
	must(os.Symlink("missing-target", filepath.Join(root, "dangling")))
	must(os.Link(filepath.Join(root, "hello.txt"), filepath.Join(root, "data", "hardlink-to-hello")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o620))
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(root, "secret.key"), 1234, 5678))
		must(os.Lchown(filepath.Join(root, "data"), 42, 43))
		must(os.Lchown(filepath.Join(root, "link-to-hello"), 7, 8))
	}
	// Fixed, sub-second mtimes, deepest first so directories keep theirs.
	var paths []string
	must(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		ts := time.Date(2021, 3, 4, 5, 6, 7, 123456789+i, time.UTC)
		tv := []unix.Timespec{unix.NsecToTimespec(ts.UnixNano()), unix.NsecToTimespec(ts.UnixNano())}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], tv, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// treeHash describes a tree: per entry its type, mode, owner, mtime, size,
// content hash, symlink target and hard-link group.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s mode=%v uid=%d gid=%d mtime=%d", rel, fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += fmt.Sprintf(" size=%d sha=%s", len(b), hex.EncodeToString(sum[:8]))
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					line += " linked-to=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func dump(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := newEngine(t, dir).Dump(context.Background(), &buf); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return buf.Bytes()
}

func noLeftovers(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		names, _ := filepath.Glob(filepath.Join(d, ".backstop-*"))
		if len(names) > 0 {
			t.Errorf("leftover staging/old directories: %v", names)
		}
	}
}

// staleTarget is a directory with content that the restore must replace.
func staleTarget(t *testing.T, dir string) {
	t.Helper()
	mustWrite(t, filepath.Join(dir, "stale.txt"), []byte("old"), 0o644)
	mustWrite(t, filepath.Join(dir, "hello.txt"), []byte("old hello"), 0o600)
	mustWrite(t, filepath.Join(dir, "stale-dir", "x"), []byte("old"), 0o644)
}

func TestFiles_RoundTripIntoAnotherDirectory(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	buildTree(t, src)
	want := treeHash(t, src)
	data := dump(t, src)

	dst := filepath.Join(base, "dst")
	staleTarget(t, dst)
	if err := newEngine(t, dst).Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := treeHash(t, dst); got != want {
		t.Errorf("restored tree differs:\n--- want\n%s\n--- got\n%s", want, got)
	}
	if _, err := os.Lstat(filepath.Join(dst, "stale.txt")); !os.IsNotExist(err) {
		t.Error("stale.txt survived the restore")
	}
	noLeftovers(t, base, dst)

	// The dump is deterministic for an unchanged tree.
	if again := dump(t, src); !bytes.Equal(again, data) {
		t.Error("two dumps of the same tree differ")
	}
}

func TestFiles_RoundTripIntoMissingDirectory(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	buildTree(t, src)
	dst := filepath.Join(base, "new", "dst")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := newEngine(t, dst).Restore(context.Background(), bytes.NewReader(dump(t, src))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := treeHash(t, dst), treeHash(t, src); got != want {
		t.Errorf("restored tree differs:\n--- want\n%s\n--- got\n%s", want, got)
	}
	noLeftovers(t, filepath.Dir(dst))
}

func TestFiles_RoundTripEntrySwapForMountPoints(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	buildTree(t, src)
	dst := filepath.Join(base, "dst")
	staleTarget(t, dst)
	var before unix.Stat_t
	if err := unix.Stat(dst, &before); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, dst)
	e.forceEntrySwap = true
	if err := e.Restore(context.Background(), bytes.NewReader(dump(t, src))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := treeHash(t, dst), treeHash(t, src); got != want {
		t.Errorf("restored tree differs:\n--- want\n%s\n--- got\n%s", want, got)
	}
	var after unix.Stat_t
	if err := unix.Stat(dst, &after); err != nil {
		t.Fatal(err)
	}
	if before.Ino != after.Ino {
		t.Error("entry swap replaced the root directory itself")
	}
	noLeftovers(t, base, dst)
}

func TestFiles_IsMountPoint(t *testing.T) {
	if mp, err := isMountPoint("/"); err != nil || !mp {
		t.Errorf("isMountPoint(/) = %v, %v", mp, err)
	}
	if mp, err := isMountPoint(t.TempDir()); err != nil || mp {
		t.Errorf("isMountPoint(tempdir) = %v, %v", mp, err)
	}
	if got := unescapeMountinfo(`/a\040b`); got != "/a b" {
		t.Errorf("unescape = %q", got)
	}
}

// archive builds a tar stream: some good entries, then the given ones.
func archive(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	good := []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "ok/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "ok/file", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
	}
	for _, h := range append(good, hdrs...) {
		if h.Format == 0 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte("x"), int(h.Size))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Something after the bad entry, which must not be extracted either.
	if err := tw.WriteHeader(&tar.Header{Name: "after", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte("a"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFiles_RestoreRefusesUnsafeArchives(t *testing.T) {
	cases := map[string][]*tar.Header{
		"absolute name":            {{Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1}},
		"dot-dot name":             {{Name: "../evil", Typeflag: tar.TypeReg, Size: 1}},
		"dot-dot inside name":      {{Name: "ok/../../evil", Typeflag: tar.TypeReg, Size: 1}},
		"absolute symlink":         {{Name: "ok/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}},
		"escaping symlink":         {{Name: "ok/link", Typeflag: tar.TypeSymlink, Linkname: "../../outside"}},
		"absolute hard link":       {{Name: "ok/hl", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}},
		"escaping hard link":       {{Name: "ok/hl", Typeflag: tar.TypeLink, Linkname: "../outside"}},
		"hard link to nothing":     {{Name: "ok/hl", Typeflag: tar.TypeLink, Linkname: "ok/missing"}},
		"char device":              {{Name: "ok/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
		"block device":             {{Name: "ok/sda", Typeflag: tar.TypeBlock, Devmajor: 8}},
		"write through symlink":    {{Name: "ok/l", Typeflag: tar.TypeSymlink, Linkname: "."}, {Name: "ok/l/f", Typeflag: tar.TypeReg, Size: 1}},
		"file replaces dir":        {{Name: "ok", Typeflag: tar.TypeReg, Size: 1}},
		"root entry not a dir":     {{Name: ".", Typeflag: tar.TypeReg, Size: 1}},
		"hard link via symlink":    {{Name: "l2", Typeflag: tar.TypeSymlink, Linkname: "ok"}, {Name: "hl", Typeflag: tar.TypeLink, Linkname: "l2/file"}},
		"symlink then into it":     {{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "ok/.."}, {Name: "up/x", Typeflag: tar.TypeReg, Size: 1}},
		"GNU sparse (unsupported)": {{Name: "ok/sparse", Typeflag: tar.TypeGNUSparse, Size: 0, Format: tar.FormatGNU}},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "dst")
			staleTarget(t, dst)
			before := treeHash(t, dst)
			err := newEngine(t, dst).Restore(context.Background(), bytes.NewReader(archive(t, hdrs...)))
			if err == nil {
				t.Fatal("Restore accepted an unsafe archive")
			}
			if r := engine.ReasonOf(err); r != engine.ReasonUnsafeArchive {
				t.Errorf("reason = %q (%v), want %s", r, err, engine.ReasonUnsafeArchive)
			}
			if got := treeHash(t, dst); got != before {
				t.Errorf("target changed:\n--- before\n%s\n--- after\n%s", before, got)
			}
			if _, err := os.Lstat(filepath.Join(base, "outside")); err == nil {
				t.Error("something was written outside the root")
			}
			noLeftovers(t, base, dst)
		})
	}
}

func TestFiles_RestoreRefusesIncompleteArchives(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	buildTree(t, src)
	data := dump(t, src)
	// The end of the last entry: everything but the end-of-archive marker.
	noMarker := data[:len(bytes.TrimRight(data, "\x00"))]
	noMarker = noMarker[:(len(noMarker)+511)/512*512]
	cases := map[string][]byte{
		"truncated in a file": data[:len(data)/2],
		"no end marker":       noMarker,
		"truncated in header": data[:700],
		"garbage":             []byte(strings.Repeat("not a tar archive ", 100)),
		"empty":               nil,
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(base, "dst-"+strings.ReplaceAll(name, " ", "-"))
			staleTarget(t, dst)
			before := treeHash(t, dst)
			err := newEngine(t, dst).Restore(context.Background(), bytes.NewReader(bad))
			if err == nil {
				t.Fatal("Restore accepted an incomplete archive")
			}
			if r := engine.ReasonOf(err); r != engine.ReasonRestoreFailed && r != engine.ReasonUnsafeArchive {
				t.Errorf("reason = %q (%v)", r, err)
			}
			if got := treeHash(t, dst); got != before {
				t.Errorf("target changed")
			}
			noLeftovers(t, base, dst)
		})
	}
}

func TestFiles_RestoreReaderErrorLeavesTarget(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	buildTree(t, src)
	data := dump(t, src)
	dst := filepath.Join(base, "dst")
	staleTarget(t, dst)
	before := treeHash(t, dst)
	r := io.MultiReader(bytes.NewReader(data[:len(data)-4096]), errReader{})
	if err := newEngine(t, dst).Restore(context.Background(), r); err == nil {
		t.Fatal("Restore succeeded with a failing reader")
	}
	if treeHash(t, dst) != before {
		t.Error("target changed")
	}
	noLeftovers(t, base, dst)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("connection reset") }

func TestFiles_DumpRefusesEscapingSymlink(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "a"), []byte("a"), 0o644)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "evil")); err != nil {
		t.Fatal(err)
	}
	err := newEngine(t, dir).Dump(context.Background(), io.Discard)
	if engine.ReasonOf(err) != engine.ReasonDumpFailed || !strings.Contains(err.Error(), "evil") {
		t.Fatalf("Dump error = %v, want DumpFailed naming the symlink", err)
	}
}

func TestFiles_DumpWriterError(t *testing.T) {
	dir := t.TempDir()
	buildTree(t, filepath.Join(dir, "t"))
	err := newEngine(t, filepath.Join(dir, "t")).Dump(context.Background(), failingWriter{})
	if err == nil || engine.ReasonOf(err) != engine.ReasonDumpFailed {
		t.Fatalf("Dump error = %v, want DumpFailed", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestFiles_CheckAndVersion(t *testing.T) {
	dir := t.TempDir()
	if err := newEngine(t, dir).Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	err := newEngine(t, filepath.Join(dir, "missing")).Check(context.Background())
	if engine.ReasonOf(err) != engine.ReasonTargetUnreachable {
		t.Errorf("Check(missing) = %v, want TargetUnreachable", err)
	}
	mustWrite(t, filepath.Join(dir, "file"), nil, 0o644)
	if err := newEngine(t, filepath.Join(dir, "file")).Check(context.Background()); err == nil {
		t.Error("Check(file) succeeded")
	}
	if v, _ := newEngine(t, dir).Version(context.Background()); v != "backstop-tar" {
		t.Errorf("Version = %q", v)
	}
}

func TestFiles_ArchiveIsStandardTar(t *testing.T) {
	// No lock-in: every entry reads back with the standard library.
	base := t.TempDir()
	buildTree(t, filepath.Join(base, "src"))
	tr := tar.NewReader(bytes.NewReader(dump(t, filepath.Join(base, "src"))))
	seen := map[string]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h.Typeflag
	}
	for name, typ := range map[string]byte{"./": tar.TypeDir, "empty-dir/": tar.TypeDir, "link-to-hello": tar.TypeSymlink, "fifo": tar.TypeFifo, "secret.key": tar.TypeReg, "hello.txt": tar.TypeLink} {
		if seen[name] != typ {
			t.Errorf("entry %q: type %q, want %q", name, seen[name], typ)
		}
	}
}
