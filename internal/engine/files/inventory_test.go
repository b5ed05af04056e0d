package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
)

// dumpInventory dumps dir through the engine's inventory counter.
func dumpInventory(t *testing.T, dir string) ([]byte, manifest.FileTree) {
	t.Helper()
	inv := engine.NewInventory(Name)
	defer inv.Close()
	var buf bytes.Buffer
	if err := newEngine(t, dir).Dump(context.Background(), io.MultiWriter(&buf, inv)); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	res, err := inv.Result()
	if err != nil {
		t.Fatal(err)
	}
	if res.Files == nil || len(res.Tables) > 0 {
		t.Fatalf("inventory %+v", res)
	}
	return buf.Bytes(), *res.Files
}

func treeDigest(t *testing.T, dir string) manifest.FileTree {
	t.Helper()
	ft, err := TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ft
}

// The inventory of a dump equals TreeDigest of the tree dumped and of the
// tree a restore extracts, by rename or by entry swap, with every kind of
// entry (hard links, symlinks, a FIFO, empty files and directories, a name
// longer than a tar header holds); its counts are the dump check's.
func TestFiles_InventoryEqualsTreeDigestOfRestore(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	buildTree(t, src)
	long := filepath.Join(src, strings.Repeat("d", 90), strings.Repeat("f", 120))
	mustWrite(t, long, []byte("long name"), 0o644)
	data, inv := dumpInventory(t, src)

	if inv.Entries < 20 || inv.Bytes < 5<<20 {
		t.Fatalf("inventory %+v is too small for the tree", inv)
	}
	check := engine.NewDumpCheck(Name)
	_, _ = check.Write(data)
	c, err := check.Complete()
	if err != nil {
		t.Fatal(err)
	}
	if *c.Entries != inv.Entries || *c.Bytes != inv.Bytes {
		t.Errorf("inventory %+v, dump check %d entries %d bytes", inv, *c.Entries, *c.Bytes)
	}
	if got := treeDigest(t, src); got != inv {
		t.Errorf("TreeDigest of the source %+v, inventory %+v", got, inv)
	}
	for _, entrySwap := range []bool{false, true} {
		dst := filepath.Join(base, "dst")
		staleTarget(t, dst)
		e := newEngine(t, dst)
		e.forceEntrySwap = entrySwap
		if err := e.Restore(context.Background(), bytes.NewReader(data)); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if got := treeDigest(t, dst); got != inv {
			t.Errorf("entry swap %v: TreeDigest of the restore %+v, inventory %+v", entrySwap, got, inv)
		}
	}

	// Modes and times are not described; content, names and links are.
	dst := filepath.Join(base, "dst")
	if err := os.Chmod(filepath.Join(dst, "hello.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dst, "bin"), someTime, someTime); err != nil {
		t.Fatal(err)
	}
	if got := treeDigest(t, dst); got != inv {
		t.Errorf("a mode or time change changed the digest: %+v", got)
	}
	for name, change := range map[string]func(){
		"content": func() { mustWrite(t, filepath.Join(dst, "bin", "run.sh"), []byte("#!/bin/sh\necho HI\n"), 0o755) },
		"symlink": func() {
			_ = os.Remove(filepath.Join(dst, "link-to-hello"))
			_ = os.Symlink("secret.key", filepath.Join(dst, "link-to-hello"))
		},
		"rename":            func() { _ = os.Rename(filepath.Join(dst, "secret.key"), filepath.Join(dst, "secret.key2")) },
		"empty dir removed": func() { _ = os.Remove(filepath.Join(dst, "empty-dir")) },
	} {
		if err := (newEngine(t, dst).Restore(context.Background(), bytes.NewReader(data))); err != nil {
			t.Fatal(err)
		}
		change()
		if got := treeDigest(t, dst); got.TreeSHA256 == inv.TreeSHA256 {
			t.Errorf("%s: the digest did not change", name)
		}
	}
}

var someTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// The streaming inventory gives the same result however the archive is
// cut into writes, and the tree digest is the sum modulo 2^256 of the
// descriptions' SHA-256, carries included.
func TestFiles_InventorySplitWritesAndSum(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "a"), bytes.Repeat([]byte("a"), 700), 0o644)
	mustWrite(t, filepath.Join(src, "d", "b"), nil, 0o644)
	if err := os.Symlink("../a", filepath.Join(src, "d", "l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "z")); err != nil {
		t.Fatal(err)
	}
	data, want := dumpInventory(t, src)

	sum := new(big.Int)
	for _, d := range [][]byte{
		EntryDescription(KindDir, ".", 0, ""),
		EntryDescription(KindFile, "a", 700, sha(bytes.Repeat([]byte("a"), 700))),
		EntryDescription(KindDir, "d", 0, ""),
		EntryDescription(KindFile, "d/b", 0, sha(nil)),
		EntryDescription(KindSymlink, "d/l", 0, "../a"),
		EntryDescription(KindHardLink, "z", 0, "a"),
	} {
		h := sha256.Sum256(d)
		sum.Add(sum, new(big.Int).SetBytes(h[:]))
	}
	sum.Mod(sum, new(big.Int).Lsh(big.NewInt(1), 256))
	if got := hex.EncodeToString(sum.FillBytes(make([]byte, 32))); got != want.TreeSHA256 || want.Entries != 6 || want.Bytes != 700 {
		t.Fatalf("inventory %+v, want 6 entries, 700 bytes, digest %s", want, got)
	}

	for _, size := range []int{1, 3, 511, 512, 513, 4096} {
		inv := NewInventory()
		for off := 0; off < len(data); off += size {
			_, _ = inv.Write(data[off:min(off+size, len(data))])
		}
		res, err := inv.Result()
		_ = inv.Close()
		if err != nil || *res.Files != want {
			t.Fatalf("writes of %d bytes: %+v, %v; want %+v", size, res, err, want)
		}
	}

	// A cut archive is not inventoried; an abandoned counter stops.
	inv := NewInventory()
	_, _ = inv.Write(data[:700])
	if _, err := inv.Result(); err == nil {
		t.Error("an archive cut short was inventoried")
	}
	inv = NewInventory()
	_, _ = inv.Write(data[:700])
	_ = inv.Close()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
