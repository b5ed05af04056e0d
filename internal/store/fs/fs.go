// Package fs is a store in a local directory, e.g. a mounted PVC. Objects are
// written to a temporary file in the same directory, synced, then renamed
// into place, so a reader never sees a partial object.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/backstop-io/backstop/internal/store"
)

// Config configures a filesystem store.
type Config struct {
	// Root is the directory that holds the objects. It must exist.
	Root string
	// Prefix is prepended to every key.
	Prefix string
}

// Store is a filesystem store.
type Store struct {
	root   string
	prefix string
}

var _ store.Store = (*Store)(nil)

const tmpPrefix = ".backstop-tmp-"

// New returns a filesystem store. It does not touch the directory.
func New(c Config) (*Store, error) {
	if c.Root == "" {
		return nil, errors.New("filesystem store: no root directory given")
	}
	root, err := filepath.Abs(c.Root)
	if err != nil {
		return nil, fmt.Errorf("filesystem store: %v", err)
	}
	return &Store{root: root, prefix: strings.Trim(c.Prefix, "/")}, nil
}

func (s *Store) String() string { return "filesystem store " + s.root }

func (s *Store) path(op, key string) (string, error) {
	k, err := store.FullKey(s.prefix, key)
	if err != nil {
		return "", &store.Error{Reason: store.ReasonStoreError, Op: op, Err: err}
	}
	return filepath.Join(s.root, filepath.FromSlash(k)), nil
}

func (s *Store) checkRoot(op, key string) error {
	fi, err := os.Stat(s.root)
	if err != nil || !fi.IsDir() {
		return &store.Error{Reason: store.ReasonBucketNotFound, Op: op, Key: key,
			Err: fmt.Errorf("root directory %s does not exist", s.root)}
	}
	return nil
}

func (s *Store) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var se *store.Error
	if errors.As(err, &se) {
		return err
	}
	reason := store.ReasonStoreError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if rerr := s.checkRoot(op, key); rerr != nil {
			return rerr
		}
		reason = store.ReasonNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		reason = store.ReasonAuthenticationFailed
	}
	// *PathError repeats the absolute path; keep the message short.
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &store.Error{Reason: reason, Op: op, Key: key, Err: err}
}

// Put writes r to key atomically.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (err error) {
	p, err := s.path("put", key)
	if err != nil {
		return err
	}
	if err := s.checkRoot("put", key); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return s.wrap("put", key, err)
	}
	// A run killed while it wrote this key (kill -9, a lost node) left its
	// temporary file; this run of the same key clears it.
	removeStale(dir, filepath.Base(p))
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(p)+"-*")
	if err != nil {
		return s.wrap("put", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx: ctx, r: r}); err != nil {
		return s.wrap("put", key, err)
	}
	if err = f.Sync(); err != nil {
		return s.wrap("put", key, err)
	}
	if err = f.Close(); err != nil {
		return s.wrap("put", key, err)
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	if err = os.Rename(tmp, p); err != nil {
		return s.wrap("put", key, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get opens key.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path("get", key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return f, nil
}

// Stat describes key.
func (s *Store) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	p, err := s.path("stat", key)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return store.ObjectInfo{}, s.wrap("stat", key, err)
	}
	if fi.IsDir() {
		return store.ObjectInfo{}, &store.Error{Reason: store.ReasonNotFound, Op: "stat", Key: key, Err: errors.New("is a directory")}
	}
	return store.ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// Delete removes key, and the directories it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path("delete", key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.wrap("delete", key, err)
	}
	removeStale(filepath.Dir(p), filepath.Base(p))
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List returns the objects under prefix (keys relative to the store's prefix).
func (s *Store) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	if err := s.checkRoot("list", prefix); err != nil {
		return nil, err
	}
	base := s.root
	if s.prefix != "" {
		base = filepath.Join(s.root, filepath.FromSlash(s.prefix))
	}
	// Walk only the directory part of prefix.
	start := base
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(base, filepath.FromSlash(prefix[:i]))
	}
	var out []store.ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		out = append(out, store.ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, s.wrap("list", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

var _ store.DebrisClearer = (*Store)(nil)

// ClearDebris removes the temporary files under prefix that writes killed
// before their rename left, and the directories that leaves empty: Delete
// reaches only the files List shows and the temporary files of their names.
func (s *Store) ClearDebris(ctx context.Context, prefix string) error {
	if err := s.checkRoot("clear", prefix); err != nil {
		return err
	}
	base := s.root
	if s.prefix != "" {
		base = filepath.Join(s.root, filepath.FromSlash(s.prefix))
	}
	start := base
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(base, filepath.FromSlash(prefix[:i]))
	}
	var dirs []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil || !strings.HasPrefix(filepath.ToSlash(rel), prefix) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		dirs = append(dirs, filepath.Dir(p))
		return nil
	})
	for _, dir := range dirs {
		for ; dir != s.root && strings.HasPrefix(dir, s.root+string(filepath.Separator)); dir = filepath.Dir(dir) {
			if os.Remove(dir) != nil {
				break
			}
		}
	}
	if err != nil {
		return s.wrap("clear", prefix, err)
	}
	return nil
}

// Probe writes, reads back and deletes a small object.
func (s *Store) Probe(ctx context.Context) error { return store.RunProbe(ctx, s) }

// removeStale removes the temporary files that writes of the file base in
// dir left behind: the names os.CreateTemp made for it, the pattern Put
// uses followed by digits only. Writes of one key do not run at once (an
// artifact path belongs to one backup run), so none of them is in use.
func removeStale(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tmpPrefix + base + "-"
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
}
