// Package pipeline is the agent's data path. A backup streams
// engine dump -> compression -> age encryption -> multipart upload with
// bounded buffers, hashing the plaintext and the stored bytes on the fly,
// and writes manifest.json last. A restore downloads the artifact to a
// scratch file, verifies all of it (size, SHA-256 of the stored bytes, age
// authentication, SHA-256 of the plaintext) and only then hands the
// plaintext to the engine.
package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/store"
)

// BackupOptions configures a backup.
type BackupOptions struct {
	Engine engine.Engine
	Store  store.Store
	// ArtifactPath is <namespace>/<target>/<backup-name>, relative to the
	// store's prefix.
	ArtifactPath     string
	Compression      compress.Algorithm
	CompressionLevel int
	Encryption       crypto.EncryptOptions
	// Progress receives a progress line every ProgressInterval; nil for none.
	Progress         io.Writer
	ProgressInterval time.Duration
	// Version is the backstop version written to the manifest.
	Version string
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// ManifestKey returns the key of an artifact's manifest.
func ManifestKey(artifactPath string) string {
	return store.JoinKey(artifactPath, manifest.FileName)
}

// DataObjectName returns the data object's name for an engine extension,
// compression and encryption: "data.sql.zst.age".
func DataObjectName(engineExt string, c compress.Algorithm, m crypto.Mode) string {
	return manifest.DataPrefix + engineExt + c.Ext() + m.Ext()
}

func checkArtifactPath(p string) error {
	if _, err := store.CleanKey(p); err != nil {
		return errorf(ReasonInvalidInput, "invalid artifact path %q: want <namespace>/<target>/<backup-name>", p)
	}
	return nil
}

// hashCounter hashes and counts what is written through it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func newHashCounter() *hashCounter { return &hashCounter{h: sha256.New()} }

func (c *hashCounter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *hashCounter) sum() string { return hex.EncodeToString(c.h.Sum(nil)) }

// firstError keeps the first error set.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil && err != nil {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Backup runs one backup and returns the manifest it wrote. On any error
// nothing is left in the store: no manifest, no data object, no parts.
func Backup(ctx context.Context, o BackupOptions) (*manifest.Manifest, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	created := now().UTC()
	if o.Engine == nil || o.Store == nil {
		return nil, errorf(ReasonInvalidInput, "backup: engine and store are required")
	}
	if err := checkArtifactPath(o.ArtifactPath); err != nil {
		return nil, err
	}
	level, err := o.Compression.Level(o.CompressionLevel)
	if err != nil {
		return nil, &Error{Reason: ReasonInvalidInput, Err: err}
	}
	if err := o.Encryption.Validate(); err != nil {
		return nil, &Error{Reason: ReasonInvalidInput, Err: err}
	}
	fingerprints, err := o.Encryption.Fingerprints()
	if err != nil {
		return nil, &Error{Reason: ReasonInvalidInput, Err: err}
	}

	dataName := DataObjectName(engine.Ext(o.Engine), o.Compression, o.Encryption.Mode)
	dataKey := store.JoinKey(o.ArtifactPath, dataName)
	manifestKey := ManifestKey(o.ArtifactPath)

	// The store first: unreachable, refused or missing buckets fail before
	// the database is touched. A completed backup is never overwritten.
	if _, err := o.Store.Stat(ctx, manifestKey); err == nil {
		return nil, errorf(ReasonAlreadyExists, "a completed backup already exists at %s; refusing to overwrite it", o.ArtifactPath)
	} else if !store.IsNotFound(err) {
		return nil, withReason(ReasonStoreError, fmt.Errorf("checking the store: %w", err))
	}

	if err := o.Engine.Check(ctx); err != nil {
		return nil, withReason(ReasonTargetUnreachable, fmt.Errorf("checking target: %w", err))
	}
	engineVersion, err := o.Engine.Version(ctx)
	if err != nil {
		return nil, withReason(ReasonDumpFailed, fmt.Errorf("reading target version: %w", err))
	}

	plain, stored, out, err := stream(ctx, o, level, dataKey)
	if err != nil {
		cleanup(ctx, o.Store, dataKey)
		return nil, err
	}

	// The data object is in the store: check its size before committing.
	info, err := o.Store.Stat(ctx, dataKey)
	if err != nil {
		cleanup(ctx, o.Store, dataKey)
		return nil, withReason(ReasonStoreError, fmt.Errorf("checking the stored data object: %w", err))
	}
	if info.Size != stored.n {
		cleanup(ctx, o.Store, dataKey)
		return nil, errorf(ReasonIntegrityMismatch, "the stored data object has %d bytes, %d were uploaded", info.Size, stored.n)
	}

	m := &manifest.Manifest{
		FormatVersion: manifest.FormatVersion,
		Engine:        o.Engine.Name(),
		EngineVersion: engineVersion,
		CreatedAt:     created,
		CompletedAt:   now().UTC(),
		Compression:   manifest.Compression{Algorithm: string(o.Compression), Level: level},
		Encryption: manifest.Encryption{
			Mode:                  string(o.Encryption.Mode),
			RecipientFingerprints: fingerprints,
		},
		DataObject:      dataName,
		StoredSize:      stored.n,
		PlaintextSize:   plain.n,
		SHA256:          stored.sum(),
		PlaintextSHA256: plain.sum(),
		BackstopVersion: o.Version,
		DumpCheck:       out.check,
		ContentSHA256:   out.content,
		Inventory:       out.inventory,
	}
	if m.ContentSHA256 == "" {
		// The engine's dumps hold no per-run lines: the content is the dump.
		m.ContentSHA256 = m.PlaintextSHA256
	}
	b, err := m.Marshal()
	if err != nil {
		cleanup(ctx, o.Store, dataKey)
		return nil, errorf(ReasonInvalidInput, "%v", err)
	}
	if err := o.Store.Put(ctx, manifestKey, bytes.NewReader(b)); err != nil {
		cleanup(ctx, o.Store, dataKey)
		cleanup(ctx, o.Store, manifestKey)
		return nil, withReason(ReasonStoreError, fmt.Errorf("writing the manifest: %w", err))
	}
	return m, nil
}

// cleanup deletes key with a context that outlives a cancelled run.
func cleanup(ctx context.Context, s store.Store, key string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = s.Delete(dctx, key)
}

// stream runs dump -> compress -> encrypt -> upload. The producer side runs in
// a goroutine and feeds the upload through an io.Pipe; the first error of
// either side aborts both: the pipe is closed with it, so the upload reads an
// error (never a clean EOF) and aborts, and the dump's writes fail.
func stream(ctx context.Context, o BackupOptions, level int, dataKey string) (plain, stored *hashCounter, out produced, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	plain, stored = newHashCounter(), newHashCounter()
	var plainCount, storedCount counter
	var first firstError
	pr, pw := io.Pipe()

	prog := startProgress(o.Progress, o.ProgressInterval, func(d time.Duration) string {
		p, s := plainCount.n.Load(), storedCount.n.Load()
		return fmt.Sprintf("backup: %s dumped (%s), %s stored, %s elapsed",
			humanBytes(p), rate(p, d), humanBytes(s), d.Round(time.Second))
	})
	defer prog.stop()

	done := make(chan struct{})
	go func() {
		defer close(done)
		var perr error
		out, perr = produce(ctx, o, level, io.MultiWriter(pw, stored, &storedCount), io.MultiWriter(plain, &plainCount))
		if perr != nil {
			first.set(perr)
			cancel(perr)
			pw.CloseWithError(perr)
			return
		}
		pw.Close()
	}()

	putErr := o.Store.Put(ctx, dataKey, pr)
	if putErr != nil {
		first.set(withReason(ReasonStoreError, fmt.Errorf("uploading %s: %w", dataKey, putErr)))
		pr.CloseWithError(putErr)
		cancel(putErr)
	}
	<-done
	if err := first.get(); err != nil {
		return nil, nil, produced{}, err
	}
	// Put returned nil and the producer finished cleanly: all bytes are stored.
	return plain, stored, out, nil
}

// produced is what a dump yields besides its bytes: the record of its
// completeness check, its content digest when the engine leaves lines out
// of it ("" when the digest is the plaintext's SHA-256), and its inventory
// (nil for an engine without one).
type produced struct {
	check     *manifest.DumpCheck
	content   string
	inventory *manifest.Inventory
}

// produce dumps through compression and encryption into out, feeding the
// plaintext hash, the engine's completeness check, content filter and
// inventory counter. A dump found
// incomplete fails before the compressed stream is closed, so the upload
// reads an error, never a clean end.
func produce(ctx context.Context, o BackupOptions, level int, out io.Writer, plainSink io.Writer) (produced, error) {
	enc, err := crypto.NewEncrypter(out, o.Encryption)
	if err != nil {
		return produced{}, &Error{Reason: ReasonInvalidInput, Err: err}
	}
	comp, err := compress.NewWriter(enc, o.Compression, level)
	if err != nil {
		return produced{}, &Error{Reason: ReasonInvalidInput, Err: err}
	}
	abort := func() {
		// Release the compressor's goroutines; its output is thrown away.
		if z, ok := comp.(interface{ Reset(io.Writer) }); ok {
			z.Reset(io.Discard)
		}
		_ = comp.Close()
	}
	sinks := []io.Writer{comp, plainSink}
	check := engine.NewDumpCheck(o.Engine.Name())
	if check != nil {
		sinks = append(sinks, check)
	}
	content := newHashCounter()
	filter := engine.NewContentFilter(o.Engine.Name(), content)
	if filter != nil {
		sinks = append(sinks, filter)
	}
	inv := engine.NewInventory(o.Engine.Name())
	if inv != nil {
		defer inv.Close()
		sinks = append(sinks, inv)
	}
	dumpErr := o.Engine.Dump(ctx, io.MultiWriter(sinks...))
	if dumpErr != nil {
		abort()
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
			// The upload failed first; its error is the one that counts.
			return produced{}, cause
		}
		return produced{}, withReason(ReasonDumpFailed, fmt.Errorf("dump failed: %w", dumpErr))
	}
	var res produced
	res.check, err = checkDump(o.Engine, check)
	if err != nil {
		abort()
		return produced{}, err
	}
	if filter != nil {
		_ = filter.Close() // it writes to a hash, which cannot fail
		res.content = content.sum()
	}
	if inv != nil {
		if res.inventory, err = inv.Result(); err != nil {
			abort()
			return produced{}, withReason(ReasonDumpIncomplete, fmt.Errorf("the %s dump tool reported success, but %w; nothing was stored", o.Engine.Name(), err))
		}
	}
	if err := comp.Close(); err != nil {
		return produced{}, withReason(ReasonDumpFailed, fmt.Errorf("compressing: %w", err))
	}
	if err := enc.Close(); err != nil {
		return produced{}, withReason(ReasonDumpFailed, fmt.Errorf("encrypting: %w", err))
	}
	return res, nil
}

// counts describes what a completeness check counted.
func counts(entries int64, bytes *int64) string {
	if bytes == nil {
		return fmt.Sprintf("%d parts", entries)
	}
	return fmt.Sprintf("%d entries with %d bytes of files", entries, *bytes)
}

// checkDump finishes the completeness check of a dump that the engine
// reported complete, and compares what an archive holds with what the
// engine says it wrote. It returns the manifest's record of the check; nil
// when the engine has no check.
func checkDump(eng engine.Engine, check engine.DumpCheck) (*manifest.DumpCheck, error) {
	if check == nil {
		return nil, nil
	}
	c, err := check.Complete()
	if err != nil {
		return nil, withReason(ReasonDumpIncomplete, fmt.Errorf("the %s dump tool reported success, but %w; nothing was stored", eng.Name(), err))
	}
	if counter, ok := eng.(engine.DumpCounter); ok && c.Entries != nil {
		entries, n := counter.DumpCounts()
		if entries != *c.Entries || c.Bytes != nil && n != *c.Bytes {
			return nil, errorf(ReasonDumpIncomplete, "the %s engine wrote %s, but the dump holds %s; nothing was stored", eng.Name(), counts(entries, &n), counts(*c.Entries, c.Bytes))
		}
	}
	return &manifest.DumpCheck{Method: c.Method, Entries: c.Entries, FileBytes: c.Bytes}, nil
}
