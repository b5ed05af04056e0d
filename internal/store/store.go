// Package store is where artifacts are kept: an interface with streaming
// Put and Get, and typed errors whose reasons a user can act on. The
// implementations live in subpackages: s3 (any S3-compatible service) and fs
// (a directory, e.g. a mounted PVC).
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Store keeps objects under slash-separated keys. Keys are relative to the
// store's own prefix, if it has one.
type Store interface {
	// Put streams r to key. It returns only after the whole object is
	// stored; on any error (including an error read from r) nothing is left
	// at key and no partial upload remains.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens the object at key. A missing object is an error with reason NotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the object at key.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object at key; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Probe writes a small object, reads it back and deletes it: it proves
	// the store is reachable, the credentials work and the bucket exists.
	Probe(ctx context.Context) error
	// String describes the store for messages; it never holds a secret.
	String() string
}

// Debris is what interrupted uploads (a run killed outright, a lost node)
// left under a store's prefix.
type Debris struct {
	// Objects is how many leftovers there are.
	Objects int64
	// Bytes is their size. When Partial, it counts only some of them.
	Bytes int64
	// Partial tells that Bytes is a lower bound.
	Partial bool
}

// DebrisCounter is a store that can find debris under its prefix. Backends
// whose API lists nothing of it (a GCS resumable upload) do not implement it.
type DebrisCounter interface {
	Debris(ctx context.Context) (Debris, error)
}

// DebrisClearer is a store whose interrupted uploads leave debris that
// List does not show and Delete of the listed objects does not reach: a
// temporary file, an incomplete multipart upload, Azure's blob of
// uncommitted blocks, of a key where no object was ever completed.
// ClearDebris removes that debris under prefix, never an object List shows.
type DebrisClearer interface {
	ClearDebris(ctx context.Context, prefix string) error
}

// TooLarge is the error of an upload that would need more pieces (S3
// parts, Azure blocks) than one object takes: it names the limit and the
// BackupStore field that raises it.
func TooLarge(key string, pieces int, piece string, pieceSize int64, field string) error {
	total := uint64(pieces) * uint64(pieceSize)
	limit := fmt.Sprintf("%d MiB", total>>20)
	if total >= 1<<30 {
		limit = fmt.Sprintf("%.1f GiB", float64(total)/(1<<30))
	}
	return &Error{Reason: ReasonStoreError, Op: "put", Key: key, Err: fmt.Errorf(
		"the object is larger than %d %ss of %d MiB (%s), the most one object takes at this %s size; raise the %s size (the BackupStore's %s)",
		pieces, piece, pieceSize>>20, limit, piece, piece, field)}
}

// KnownLength returns the number of bytes left in r when r can tell
// (bytes.Reader, strings.Reader, bytes.Buffer): backends send such small
// objects, a manifest or a probe, without allocating a whole upload part.
func KnownLength(r io.Reader) (int64, bool) {
	if l, ok := r.(interface{ Len() int }); ok {
		return int64(l.Len()), true
	}
	return 0, false
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Reasons carried by *Error.
const (
	// ReasonStoreUnreachable: DNS, refused connection, TLS, timeout.
	ReasonStoreUnreachable = "StoreUnreachable"
	// ReasonAuthenticationFailed: credentials refused or access denied.
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonBucketNotFound: the bucket (or the filesystem root) does not exist.
	ReasonBucketNotFound = "BucketNotFound"
	// ReasonNotFound: the object does not exist.
	ReasonNotFound = "NotFound"
	// ReasonStoreError: any other failure of the store.
	ReasonStoreError = "StoreError"
)

// Error is a store failure with a reason. Its message never holds a secret.
type Error struct {
	Reason string
	Op     string
	Key    string
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Key != "" {
		fmt.Fprintf(&b, " %q", e.Key)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason of a store error, or "".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// IsNotFound tells whether err means the object does not exist.
func IsNotFound(err error) bool { return ReasonOf(err) == ReasonNotFound }

// CleanKey checks a key: relative, slash-separated, no "." or ".." elements.
func CleanKey(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return "", fmt.Errorf("invalid key %q", key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fmt.Errorf("invalid key %q", key)
		}
	}
	return key, nil
}

// JoinKey joins key elements with "/", skipping empty ones. It does not
// clean "." or ".." away: CleanKey rejects them afterwards.
func JoinKey(elems ...string) string {
	var parts []string
	for _, e := range elems {
		e = strings.Trim(e, "/")
		if e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, "/")
}

// FullKey validates key and puts prefix in front of it.
func FullKey(prefix, key string) (string, error) {
	if _, err := CleanKey(key); err != nil {
		return "", err
	}
	if prefix = strings.Trim(prefix, "/"); prefix == "" {
		return key, nil
	}
	return CleanKey(prefix + "/" + key)
}

// ProbeKey returns a fresh key for a probe object.
func ProbeKey() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return ".backstop-probe-" + hex.EncodeToString(b[:])
}

// RunProbe does what Probe does, through the other methods of s.
func RunProbe(ctx context.Context, s Store) error {
	key := ProbeKey()
	want := "backstop probe " + key
	if err := s.Put(ctx, key, strings.NewReader(want)); err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.Delete(dctx, key)
	}()
	rc, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
	rc.Close()
	if err != nil {
		return &Error{Reason: ReasonStoreError, Op: "probe read", Key: key, Err: err}
	}
	if string(got) != want {
		return &Error{Reason: ReasonStoreError, Op: "probe read", Key: key, Err: errors.New("object read back differs from what was written")}
	}
	return s.Delete(ctx, key)
}
