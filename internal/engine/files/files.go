// Package files is the engine for a directory tree (a PVC path): a PAX tar
// stream of the directory, restored by extracting into a staging directory on
// the same volume and swapping it in with rename.
//
// # Dump
//
// The tree is walked in lexical order and written as PAX tar with numeric
// owners, modes (including setuid, setgid and sticky bits), nanosecond mtimes,
// symlinks, hard links (files with several links are stored once, then as
// links), FIFOs and empty directories. The root itself is the entry "./", so
// its mode, owner and mtime round-trip too. Memory does not grow with file
// sizes (files are streamed) and grows only with the number of entries in one
// directory and the number of multiply-linked files.
//
// Sockets are skipped (they are not data). Device files and symlinks that
// point outside the directory make the dump fail: the restore refuses them, so
// a backup holding them could never be restored, and failing the backup tells
// the user now rather than on the day of the restore.
//
// # Restore
//
// The archive is extracted into a fresh staging directory on the same volume
// as the target, checking every entry first: absolute names, names with "..",
// symlinks or hard links whose target leaves the root, device files, and
// entries whose path goes through a symlink are refused, and the whole
// restore fails with ReasonUnsafeArchive before the target is touched.
// Nothing after a bad entry is extracted; the staging directory is removed on
// any error. An archive that ends without tar's end-of-archive marker is
// incomplete and refused as well.
//
// The swap then depends on where the target lives:
//
//   - Usually the staging directory is a sibling, <parent>/.backstop-restore-<random>,
//     and the swap is one renameat2(RENAME_EXCHANGE): atomic, the path always
//     names a complete tree. Where the file system cannot exchange, it is two
//     renames (target -> <parent>/.backstop-old-<random>, staging -> target),
//     the second undone if it fails; the path is missing for an instant.
//     The old tree is then removed.
//   - When the target is a mount point (the usual case for a PVC mounted at
//     the path), its root cannot be renamed, so staging is created inside it
//     (<target>/.backstop-restore-<random>) and the entries of the root are
//     swapped instead: every old entry moves into <target>/.backstop-old-<random>,
//     then every new entry moves up from staging, each with rename(2). Each
//     rename is atomic but the swap as a whole is not: a reader can see a
//     half-swapped root for the moment it takes, and a crash in the middle
//     leaves both trees on the volume (under those two names) for a human to
//     finish. A failure while swapping moves everything back.
//
// Owners are restored when the process may change them (root, or CAP_CHOWN);
// otherwise files belong to the restoring user.
package files

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/backstop-io/backstop/internal/engine"
)

// Name is the engine's registered name.
const Name = "files"

// Version is the dump tool reported in manifests.
const Version = "backstop-tar"

const (
	stagingPrefix = ".backstop-restore-"
	oldPrefix     = ".backstop-old-"
)

func init() {
	engine.Register(Name, func(o engine.Options) (engine.Engine, error) { return New(o) })
	engine.RegisterDumpCheck(Name, func() engine.DumpCheck { return newDumpCheck() })
	engine.RegisterInventory(Name, func() engine.Inventory { return NewInventory() })
}

// Engine backs up and restores the directory at Options.Path.
type Engine struct {
	root string
	// forceEntrySwap makes Restore swap entries as for a mount point (tests).
	forceEntrySwap bool
	// counts are the entries and regular file bytes the last Dump wrote.
	counts dumpCounts
}

type dumpCounts struct{ entries, bytes int64 }

// DumpCounts implements engine.DumpCounter: the entries and the bytes of
// regular files the last Dump wrote into the archive.
func (e *Engine) DumpCounts() (entries, bytes int64) { return e.counts.entries, e.counts.bytes }

// New checks the options and returns the engine.
func New(o engine.Options) (*Engine, error) {
	if o.Path == "" {
		return nil, errors.New("files: path is required")
	}
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	return &Engine{root: filepath.Clean(abs)}, nil
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Version implements engine.Engine.
func (e *Engine) Version(context.Context) (string, error) { return Version, nil }

// Check implements engine.Engine: the path is a readable directory.
func (e *Engine) Check(context.Context) error {
	root, err := e.resolvedRoot()
	if err != nil {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %v", err)
	}
	f, err := os.Open(root)
	if err != nil {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %v", err)
	}
	if !st.IsDir() {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %s is not a directory", e.root)
	}
	if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: cannot read %s: %v", e.root, err)
	}
	return nil
}

// resolvedRoot follows symlinks in the configured path.
func (e *Engine) resolvedRoot() (string, error) {
	return filepath.EvalSymlinks(e.root)
}

// ---------------------------------------------------------------------------
// Dump

// Dump implements engine.Engine.
func (e *Engine) Dump(ctx context.Context, w io.Writer) error {
	root, err := e.resolvedRoot()
	if err != nil {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %v", err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %v", err)
	}
	if !st.IsDir() {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %s is not a directory", e.root)
	}
	tw := tar.NewWriter(w)
	e.counts = dumpCounts{}
	links := map[[2]uint64]string{}
	buf := make([]byte, 256<<10)
	walkErr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
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
		return writeEntry(tw, p, rel, fi, links, buf, &e.counts)
	})
	if walkErr != nil {
		var ee *engine.Error
		if errors.As(walkErr, &ee) {
			return walkErr
		}
		return engine.WithReason(engine.ReasonDumpFailed, fmt.Errorf("files: %w", walkErr))
	}
	if err := tw.Close(); err != nil {
		return engine.WithReason(engine.ReasonDumpFailed, fmt.Errorf("files: writing the archive: %w", err))
	}
	return nil
}

// workEntry tells whether rel (slash-separated, relative to the root) is a
// restore's staging or old directory at the top of the tree, which a dump
// leaves out.
func workEntry(rel string) bool {
	return rel != "." && !strings.Contains(rel, "/") &&
		(strings.HasPrefix(rel, stagingPrefix) || strings.HasPrefix(rel, oldPrefix))
}

func writeEntry(tw *tar.Writer, p, rel string, fi fs.FileInfo, links map[[2]uint64]string, buf []byte, counts *dumpCounts) error {
	mode := fi.Mode()
	var target string
	switch {
	case mode&fs.ModeSocket != 0:
		return nil
	case mode&fs.ModeDevice != 0 || mode&fs.ModeCharDevice != 0:
		return engine.Errorf(engine.ReasonDumpFailed, "files: %s is a device file; device files cannot be backed up", rel)
	case mode&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if !symlinkInside(rel, t) {
			return engine.Errorf(engine.ReasonDumpFailed, "files: symlink %s points outside the directory (%q); a restore would refuse it", rel, t)
		}
		target = t
	}
	hdr, err := tar.FileInfoHeader(fi, target)
	if err != nil {
		return err
	}
	hdr.Format = tar.FormatPAX
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.ModTime = fi.ModTime()
	name := rel
	if rel == "." {
		name = "./"
	} else if fi.IsDir() {
		name += "/"
	}
	hdr.Name = name
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		if mode.IsRegular() && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), uint64(st.Ino)}
			if first, ok := links[key]; ok {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				hdr.Size = 0
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				counts.entries++
				return nil
			}
			links[key] = rel
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	counts.entries++
	if !mode.IsRegular() {
		return nil
	}
	counts.bytes += hdr.Size
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return engine.Errorf(engine.ReasonDumpFailed, "files: %s shrank while it was read (%d of %d bytes)", rel, n, hdr.Size)
	}
	return nil
}

// symlinkInside tells whether a symlink at rel (slash-separated, relative to
// the root) with this target resolves, lexically, inside the root.
func symlinkInside(rel, target string) bool {
	if target == "" || path.IsAbs(target) || rel == "." {
		return false
	}
	j := path.Join(path.Dir(rel), target)
	return j != ".." && !strings.HasPrefix(j, "../")
}

// ---------------------------------------------------------------------------
// Restore

// Restore implements engine.Engine.
func (e *Engine) Restore(ctx context.Context, r io.Reader) error {
	target := e.root
	if resolved, err := filepath.EvalSymlinks(target); err == nil {
		target = resolved
	} else if !errors.Is(err, fs.ErrNotExist) {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %v", err)
	}
	exists := true
	st, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		exists = false
	case err != nil:
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %v", err)
	case !st.IsDir():
		return engine.Errorf(engine.ReasonRestoreFailed, "files: %s exists and is not a directory", e.root)
	}
	parent := filepath.Dir(target)
	if _, err := os.Stat(parent); err != nil {
		return engine.Errorf(engine.ReasonTargetUnreachable, "files: %v", err)
	}
	entrySwap := false
	if exists {
		mp, err := isMountPoint(target)
		if err != nil {
			return engine.Errorf(engine.ReasonRestoreFailed, "files: %v", err)
		}
		entrySwap = mp || e.forceEntrySwap
	}

	suffix := randomSuffix()
	stagingDir := parent
	if entrySwap {
		stagingDir = target
	}
	staging := filepath.Join(stagingDir, stagingPrefix+suffix)
	if err := os.Mkdir(staging, 0o700); err != nil {
		return engine.Errorf(engine.ReasonRestoreFailed, "files: creating the staging directory: %v", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = os.RemoveAll(staging)
		}
	}()

	rootMeta, err := extract(ctx, r, staging)
	if err != nil {
		return err
	}

	if entrySwap {
		err = swapEntries(target, staging, filepath.Join(target, oldPrefix+suffix), rootMeta)
		if w := engine.AsWarning(err); w != nil {
			swapped = true
			return w
		} else if err != nil {
			return engine.WithReason(engine.ReasonRestoreFailed, fmt.Errorf("files: %w", err))
		}
		swapped = true
		return nil
	}
	if err := rootMeta.apply(staging); err != nil {
		return engine.Errorf(engine.ReasonRestoreFailed, "files: %v", err)
	}
	if !exists {
		if err := os.Rename(staging, target); err != nil {
			return engine.Errorf(engine.ReasonRestoreFailed, "files: %v", err)
		}
		swapped = true
		return nil
	}
	err = unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, target, unix.RENAME_EXCHANGE)
	if err == nil {
		swapped = true
		// staging now holds the old tree.
		old := filepath.Join(parent, oldPrefix+suffix)
		if os.Rename(staging, old) == nil {
			staging = old
		}
		if err := os.RemoveAll(staging); err != nil {
			return engine.Warnf("files: restored, but removing the old tree %s failed: %w", staging, err)
		}
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return engine.Errorf(engine.ReasonRestoreFailed, "files: swapping %s: %v", e.root, err)
	}
	old := filepath.Join(parent, oldPrefix+suffix)
	if err := os.Rename(target, old); err != nil {
		return engine.Errorf(engine.ReasonRestoreFailed, "files: moving the old tree aside: %v", err)
	}
	if err := os.Rename(staging, target); err != nil {
		if rerr := os.Rename(old, target); rerr != nil {
			return engine.Errorf(engine.ReasonRestoreFailed, "files: swap failed (%v) and moving the old tree back failed too; it is at %s: %v", err, old, rerr)
		}
		return engine.Errorf(engine.ReasonRestoreFailed, "files: swapping in the restored tree: %v", err)
	}
	swapped = true
	if err := os.RemoveAll(old); err != nil {
		return engine.Warnf("files: restored, but removing the old tree %s failed: %w", old, err)
	}
	return nil
}

// swapEntries replaces the entries of target with those of staging (which
// lives inside target), keeping the old ones in old until the end.
func swapEntries(target, staging, old string, rootMeta *meta) (err error) {
	stagingName, oldName := filepath.Base(staging), filepath.Base(old)
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	oldEntries, err := readNames(target)
	if err != nil {
		return err
	}
	var movedOut, movedIn []string
	committed := false
	defer func() {
		if err == nil || committed {
			return
		}
		for _, n := range movedIn {
			_ = os.Rename(filepath.Join(target, n), filepath.Join(staging, n))
		}
		for _, n := range movedOut {
			_ = os.Rename(filepath.Join(old, n), filepath.Join(target, n))
		}
		_ = os.Remove(old)
	}()
	for _, n := range oldEntries {
		if n == stagingName || n == oldName {
			continue
		}
		if err := os.Rename(filepath.Join(target, n), filepath.Join(old, n)); err != nil {
			return err
		}
		movedOut = append(movedOut, n)
	}
	newEntries, err := readNames(staging)
	if err != nil {
		return err
	}
	for _, n := range newEntries {
		if err := os.Rename(filepath.Join(staging, n), filepath.Join(target, n)); err != nil {
			return err
		}
		movedIn = append(movedIn, n)
	}
	// From here on the new tree is in place: no rollback.
	committed = true
	_ = os.Remove(staging)
	_ = os.RemoveAll(old) // a leftover old tree is harmless
	if aerr := rootMeta.apply(target); aerr != nil {
		return engine.Warnf("files: restored, but setting the root's owner, mode and mtime failed: %w", aerr)
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// isMountPoint tells whether dir is the root of a mount: a different device
// from its parent, or listed in /proc/self/mountinfo (bind mounts).
func isMountPoint(dir string) (bool, error) {
	if dir == "/" {
		return true, nil
	}
	var st, pst unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &pst); err != nil {
		return false, err
	}
	if st.Dev != pst.Dev {
		return true, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, nil // no procfs: the device check is all we have
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == dir {
			return true, nil
		}
	}
	return false, nil
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := 0
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + int(c-'0')
			}
			if ok {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// meta is what is applied to an entry after its contents: owner, mode, mtime.
type meta struct {
	path    string
	mode    fs.FileMode
	uid     int
	gid     int
	mtime   time.Time
	symlink bool
}

func (m *meta) apply(p string) error {
	if m == nil {
		return nil
	}
	if err := os.Lchown(p, m.uid, m.gid); err != nil && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	if !m.symlink {
		if err := os.Chmod(p, m.mode); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(m.mtime.UnixNano()), unix.NsecToTimespec(m.mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func unsafeErr(format string, args ...any) error {
	return engine.Errorf(engine.ReasonUnsafeArchive, "files: unsafe archive: "+format+"; nothing was restored", args...)
}

// extract unpacks the archive into staging, refusing anything unsafe. It
// returns the metadata of the root entry, applied by the caller after the swap
// decision.
func extract(ctx context.Context, r io.Reader, staging string) (*meta, error) {
	zt := &zeroTail{r: r}
	tr := tar.NewReader(zt)
	var dirs []*meta
	var rootMeta *meta
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, engine.WithReason(engine.ReasonRestoreFailed, err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			if !zt.endMarker() {
				return nil, engine.Errorf(engine.ReasonRestoreFailed, "files: the archive is incomplete (no end-of-archive marker); nothing was restored")
			}
			break
		}
		if err != nil {
			return nil, engine.Errorf(engine.ReasonRestoreFailed, "files: reading the archive: %v; nothing was restored", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return nil, err
		}
		m := &meta{mode: hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
			uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime}
		if name == "." {
			if hdr.Typeflag != tar.TypeDir {
				return nil, unsafeErr("the root entry %q is not a directory", hdr.Name)
			}
			rootMeta = m
			continue
		}
		dst := filepath.Join(staging, filepath.FromSlash(name))
		if err := ensureParents(staging, name); err != nil {
			return nil, err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if st, err := os.Lstat(dst); err == nil && !st.IsDir() {
				return nil, unsafeErr("%q is both a directory and something else", hdr.Name)
			} else if err != nil {
				if err := os.Mkdir(dst, 0o700); err != nil {
					return nil, restoreErr(err)
				}
			}
			m.path = dst
			dirs = append(dirs, m)
			continue
		case tar.TypeReg, tar.TypeRegA:
			if err := replaceable(dst, hdr.Name); err != nil {
				return nil, err
			}
			f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				return nil, restoreErr(err)
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, engine.Errorf(engine.ReasonRestoreFailed, "files: extracting %s: %v; nothing was restored", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if !symlinkInside(name, hdr.Linkname) {
				return nil, unsafeErr("symlink %q points outside the root (%q)", hdr.Name, hdr.Linkname)
			}
			if err := replaceable(dst, hdr.Name); err != nil {
				return nil, err
			}
			if err := os.Symlink(hdr.Linkname, dst); err != nil {
				return nil, restoreErr(err)
			}
			m.symlink = true
		case tar.TypeLink:
			ln, err := cleanName(hdr.Linkname)
			if err != nil || ln == "." {
				return nil, unsafeErr("hard link %q points outside the root (%q)", hdr.Name, hdr.Linkname)
			}
			src := filepath.Join(staging, filepath.FromSlash(ln))
			if err := ensureParents(staging, ln); err != nil {
				return nil, err
			}
			st, err := os.Lstat(src)
			if err != nil || !st.Mode().IsRegular() {
				return nil, unsafeErr("hard link %q points to %q, which is not a regular file extracted before it", hdr.Name, hdr.Linkname)
			}
			if err := replaceable(dst, hdr.Name); err != nil {
				return nil, err
			}
			if err := os.Link(src, dst); err != nil {
				return nil, restoreErr(err)
			}
			continue // a hard link shares the metadata of its file
		case tar.TypeFifo:
			if err := replaceable(dst, hdr.Name); err != nil {
				return nil, err
			}
			if err := unix.Mkfifo(dst, 0o600); err != nil {
				return nil, restoreErr(err)
			}
		case tar.TypeChar, tar.TypeBlock:
			return nil, unsafeErr("%q is a device file", hdr.Name)
		default:
			return nil, unsafeErr("%q has an unsupported entry type %q", hdr.Name, string(hdr.Typeflag))
		}
		if err := m.apply(dst); err != nil {
			return nil, restoreErr(err)
		}
	}
	// Directories last, deepest first, so their mtimes stay as archived.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := dirs[i].apply(dirs[i].path); err != nil {
			return nil, restoreErr(err)
		}
	}
	if rootMeta == nil {
		rootMeta = &meta{mode: 0o755, uid: os.Getuid(), gid: os.Getgid(), mtime: time.Now()}
	}
	return rootMeta, nil
}

func restoreErr(err error) error {
	return engine.Errorf(engine.ReasonRestoreFailed, "files: %v; nothing was restored", err)
}

// cleanName checks an entry name and returns it cleaned, slash-separated,
// relative to the root ("." for the root itself).
func cleanName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", unsafeErr("empty or NUL-containing entry name %q", name)
	}
	if strings.HasPrefix(name, "/") {
		return "", unsafeErr("absolute entry name %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", unsafeErr("entry name %q contains ..", name)
		}
	}
	return path.Clean(name), nil
}

// ensureParents creates the parent directories of name inside root, refusing
// to go through anything that is not a real directory (a symlink, a file).
func ensureParents(root, name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	cur := root
	for _, part := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(cur, 0o755); err != nil {
				return restoreErr(err)
			}
			continue
		}
		if err != nil {
			return restoreErr(err)
		}
		if !st.IsDir() {
			return unsafeErr("the path of %q goes through %q, which is not a directory", name, part)
		}
	}
	return nil
}

// replaceable removes an earlier non-directory entry with the same name (a
// later entry wins, as with tar); a directory is never replaced.
func replaceable(dst, name string) error {
	st, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return restoreErr(err)
	}
	if st.IsDir() {
		return unsafeErr("%q would replace a directory", name)
	}
	if err := os.Remove(dst); err != nil {
		return restoreErr(err)
	}
	return nil
}

// zeroTail reads through r and remembers how many zero bytes ended the
// stream, to tell a complete tar archive (two zero blocks at the end) from
// one cut off between entries.
type zeroTail struct {
	r      io.Reader
	total  int64
	zeroes int64
}

func (z *zeroTail) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	z.total += int64(n)
	for i := n - 1; i >= 0; i-- {
		if p[i] != 0 {
			z.zeroes = int64(n - 1 - i)
			return n, err
		}
	}
	z.zeroes += int64(n)
	return n, err
}

func (z *zeroTail) endMarker() bool {
	// Go's tar reader stops right after the two zero blocks; it may have read
	// more padding (tar pads to a record size) that is zero as well.
	return z.total%512 == 0 && z.zeroes >= 1024
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
