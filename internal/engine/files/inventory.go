package files

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
)

// Kinds of entries, as EntryDescription writes them.
const (
	KindDir      = 'd'
	KindFile     = 'f'
	KindSymlink  = 'l'
	KindHardLink = 'h'
	KindFIFO     = 'p'
)

// EntryDescription is what the tree digest (manifest.FileTree.TreeSHA256)
// hashes for one entry of a tree. It is the bytes
//
//	kind NUL path NUL size NUL content
//
// where kind is one byte: 'd' directory, 'f' regular file, 'l' symbolic
// link, 'h' hard link (a second name of a regular file), 'p' FIFO; path is
// the entry's path relative to the root, slash-separated and cleaned (no
// "./", no trailing slash; the root itself is "."); size is the decimal
// size in bytes of a regular file's content and 0 for every other kind;
// content is the lowercase hex SHA-256 of a regular file's content, the
// target of a symbolic link as stored, the path (cleaned like path) of the
// file a hard link names, and empty for directories and FIFOs.
//
// A regular file with several names inside the tree is a regular file
// under the first of its names in lexical walk order (the order the files
// engine writes its archive in), and a hard link under each later one.
// Modes, owners and times are not described: a restore by another user,
// or onto another file system, may change them while the data is intact.
func EntryDescription(kind byte, rel string, size int64, content string) []byte {
	b := make([]byte, 0, len(rel)+len(content)+24)
	b = append(b, kind, 0)
	b = append(b, rel...)
	b = append(b, 0)
	b = strconv.AppendInt(b, size, 10)
	b = append(b, 0)
	return append(b, content...)
}

// treeSum adds up the entries of a tree: their number, the bytes of
// regular files, and the sum modulo 2^256 of the SHA-256 of each entry's
// description, read as a big-endian 32-byte number. A sum does not depend
// on the order of the entries.
type treeSum struct {
	sum            [4]uint64 // most significant word first
	entries, bytes int64
}

func (t *treeSum) add(kind byte, rel string, size int64, content string) {
	h := sha256.Sum256(EntryDescription(kind, rel, size, content))
	var carry uint64
	for i := 3; i >= 0; i-- {
		w := binary.BigEndian.Uint64(h[i*8:])
		s := t.sum[i] + w
		c1 := s < w
		s2 := s + carry
		c2 := s2 < s
		t.sum[i] = s2
		carry = 0
		if c1 || c2 {
			carry = 1
		}
	}
	t.entries++
	if kind == KindFile {
		t.bytes += size
	}
}

func (t *treeSum) tree() *manifest.FileTree {
	var b [32]byte
	for i, w := range t.sum {
		binary.BigEndian.PutUint64(b[i*8:], w)
	}
	return &manifest.FileTree{Entries: t.entries, Bytes: t.bytes, TreeSHA256: hex.EncodeToString(b[:])}
}

// TreeDigest sums up the tree at dir as the inventory of a files backup
// of it does (see EntryDescription): walked in lexical order, the root
// included, without the backstop work directories at its top and without
// sockets, as the engine's Dump writes it. A restore drill calls it on
// the tree it extracted and compares the result with the manifest's.
func TreeDigest(dir string) (manifest.FileTree, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return manifest.FileTree{}, err
	}
	var t treeSum
	links := map[[2]uint64]string{}
	buf := make([]byte, 256<<10)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if workEntry(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		switch {
		case mode.IsDir():
			t.add(KindDir, rel, 0, "")
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			t.add(KindSymlink, rel, 0, target)
		case mode&fs.ModeNamedPipe != 0:
			t.add(KindFIFO, rel, 0, "")
		case mode&fs.ModeSocket != 0:
			// Not data; the dump skips sockets too.
		case mode.IsRegular():
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				key := [2]uint64{uint64(st.Dev), uint64(st.Ino)}
				if first, ok := links[key]; ok {
					t.add(KindHardLink, rel, 0, first)
					return nil
				}
				links[key] = rel
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			n, err := io.CopyBuffer(h, f, buf)
			if err != nil {
				return err
			}
			t.add(KindFile, rel, n, hex.EncodeToString(h.Sum(nil)))
		default:
			return fmt.Errorf("%s is a device file", rel)
		}
		return nil
	})
	if err != nil {
		return manifest.FileTree{}, fmt.Errorf("files: summing up %s: %w", dir, err)
	}
	return *t.tree(), nil
}

// Inventory sums up a tar archive, as it streams, into a FileTree equal
// to TreeDigest of the tree the archive extracts to. It reads the archive
// with archive/tar in a goroutine fed through a pipe; memory does not
// grow with the archive (file contents are hashed as they pass).
type Inventory struct {
	pw   *io.PipeWriter
	done chan struct{}
	tree treeSum
	err  error
	shut bool
}

var errAbandoned = errors.New("the archive was abandoned")

// NewInventory returns an inventory counter for the archives the files
// engine writes.
func NewInventory() *Inventory {
	pr, pw := io.Pipe()
	c := &Inventory{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = c.read(pr)
		// Drain what follows (tar padding), so that writes never block.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return c
}

func (c *Inventory) read(r io.Reader) error {
	zt := &zeroTail{r: r}
	tr := tar.NewReader(zt)
	buf := make([]byte, 64<<10)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if !zt.endMarker() {
				return errors.New("the archive ends without tar's end-of-archive blocks")
			}
			return nil
		}
		if err != nil {
			return err
		}
		rel := path.Clean(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeXGlobalHeader:
		case tar.TypeDir:
			c.tree.add(KindDir, rel, 0, "")
		case tar.TypeReg, tar.TypeRegA:
			h := sha256.New()
			n, err := io.CopyBuffer(h, tr, buf)
			if err != nil {
				return err
			}
			c.tree.add(KindFile, rel, n, hex.EncodeToString(h.Sum(nil)))
		case tar.TypeSymlink:
			c.tree.add(KindSymlink, rel, 0, hdr.Linkname)
		case tar.TypeLink:
			c.tree.add(KindHardLink, rel, 0, path.Clean(hdr.Linkname))
		case tar.TypeFifo:
			c.tree.add(KindFIFO, rel, 0, "")
		default:
			return fmt.Errorf("%s has entry type %q, which a restore refuses", hdr.Name, string(hdr.Typeflag))
		}
	}
}

// Write implements engine.Inventory.
func (c *Inventory) Write(p []byte) (int, error) {
	if !c.shut {
		_, _ = c.pw.Write(p)
	}
	return len(p), nil
}

// Result implements engine.Inventory.
func (c *Inventory) Result() (*manifest.Inventory, error) {
	c.shut = true
	_ = c.pw.Close()
	<-c.done
	if c.err != nil {
		return nil, fmt.Errorf("files: reading the archive for its inventory: %w", c.err)
	}
	return &manifest.Inventory{Files: c.tree.tree()}, nil
}

// Close implements engine.Inventory.
func (c *Inventory) Close() error {
	c.shut = true
	_ = c.pw.CloseWithError(errAbandoned)
	<-c.done
	return nil
}

var _ engine.Inventory = (*Inventory)(nil)
