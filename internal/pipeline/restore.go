package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/store"
)

// ReadOptions says where an artifact is and how to open it. Give either
// Store and ArtifactPath, or File (a local data object) with an optional
// ManifestFile.
type ReadOptions struct {
	Store        store.Store
	ArtifactPath string

	File         string
	ManifestFile string

	// Engine, when set, must match the manifest's engine.
	Engine string
	// ExpectSHA256, when set, must be the SHA-256 of the stored data object
	// that the manifest names (and the bytes are then checked against it):
	// the artifact is the one the caller chose, not another written since
	// at the same path.
	ExpectSHA256 string
	// Warn, on a restore, is told what went wrong once the data was in
	// place (an engine.Warning): the restore still succeeds.
	Warn func(error)
	// Verified, on a restore, is called once the artifact is verified
	// whole, before the target is touched, whether or not the target then
	// passes its check.
	Verified func()
	// VerifyWhateverTheTarget, on a restore, verifies the whole artifact
	// even when the target fails its check meanwhile: a drill reports the
	// backup's integrity even when its throwaway server does not start.
	VerifyWhateverTheTarget bool
	// Decrypt holds the identities or passphrase.
	Decrypt crypto.DecryptOptions
	// ScratchDir holds the downloaded artifact; os.TempDir() when empty.
	ScratchDir string

	Progress         io.Writer
	ProgressInterval time.Duration

	// skipContentDigest leaves out the recount of the content digest: a
	// restore does not use it (see Restore).
	skipContentDigest bool
}

// Artifact is an artifact on local disk whose every byte has been verified.
// Close removes the scratch copy.
type Artifact struct {
	// Manifest is the artifact's manifest; for a local file without one, a
	// manifest made from what the verification found.
	Manifest *manifest.Manifest
	// HasManifest is false for a local file verified without a manifest (only
	// age authentication and the compression checksums vouch for it then).
	HasManifest bool

	path    string
	scratch bool
	dec     crypto.DecryptOptions
}

// Close removes the scratch file, if one was made.
func (a *Artifact) Close() error {
	if a.scratch && a.path != "" {
		err := os.Remove(a.path)
		a.path = ""
		return err
	}
	return nil
}

// Open streams the plaintext dump again from the verified local copy.
func (a *Artifact) Open() (io.ReadCloser, error) {
	f, err := os.Open(a.path)
	if err != nil {
		return nil, errorf(ReasonRestoreFailed, "opening the verified artifact: %v", err)
	}
	r, err := decode(f, a.Manifest, a.dec)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &plainReader{r: r, closers: []io.Closer{r, f}}, nil
}

// decode decrypts and decompresses the ciphertext read from r.
func decode(r io.Reader, m *manifest.Manifest, dec crypto.DecryptOptions) (io.ReadCloser, error) {
	plain, err := crypto.NewDecrypter(r, crypto.Mode(m.Encryption.Mode), dec)
	if err != nil {
		return nil, withReason(ReasonDecryptionFailed, err)
	}
	d, err := compress.NewReader(plain, compress.Algorithm(m.Compression.Algorithm))
	if err != nil {
		return nil, withReason(ReasonIntegrityMismatch, err)
	}
	return d, nil
}

type plainReader struct {
	r       io.Reader
	closers []io.Closer
}

func (p *plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func (p *plainReader) Close() error {
	var err error
	for _, c := range p.closers {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Fetch finds the artifact, downloads it to a scratch file and verifies all
// of it. The caller must Close the result.
func Fetch(ctx context.Context, o ReadOptions) (*Artifact, error) {
	if o.File != "" {
		return fetchLocal(ctx, o)
	}
	if o.Store == nil {
		return nil, errorf(ReasonInvalidInput, "no store and no local file given")
	}
	if err := checkArtifactPath(o.ArtifactPath); err != nil {
		return nil, err
	}
	m, err := readManifest(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := checkManifest(m, o); err != nil {
		return nil, err
	}

	dir := o.ScratchDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "backstop-artifact-*")
	if err != nil {
		return nil, errorf(ReasonInvalidInput, "creating a scratch file in %s: %v", dir, errors.Unwrap(err))
	}
	a := &Artifact{Manifest: m, HasManifest: true, path: f.Name(), scratch: true, dec: o.Decrypt}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			a.Close()
		}
	}()

	dataKey := store.JoinKey(o.ArtifactPath, m.DataObject)
	rc, err := o.Store.Get(ctx, dataKey)
	if err != nil {
		if store.IsNotFound(err) {
			return nil, errorf(ReasonIntegrityMismatch, "the manifest names %s but the store has no such object", m.DataObject)
		}
		return nil, withReason(ReasonStoreError, fmt.Errorf("downloading %s: %w", m.DataObject, err))
	}
	defer rc.Close()
	sum := newHashCounter()
	var cnt, plain counter
	prog := startProgress(o.Progress, o.ProgressInterval, func(d time.Duration) string {
		n := cnt.n.Load()
		pct := 100.0
		if m.StoredSize > 0 {
			pct = 100 * float64(n) / float64(m.StoredSize)
		}
		return fmt.Sprintf("download: %s of %s (%.0f%%), %s; verify: %s of %s plaintext checked",
			humanBytes(n), humanBytes(m.StoredSize), pct, rate(n, d), humanBytes(plain.n.Load()), humanBytes(m.PlaintextSize))
	})
	// The plaintext is verified as the download arrives: the ciphertext
	// goes to the scratch file and, through a pipe, to the decryption. No
	// byte reaches the target before both are wholly checked.
	pr, pw := io.Pipe()
	downloaded := make(chan error, 1)
	go func() {
		// Read one byte past the stated size to notice an object that grew.
		_, err := io.Copy(io.MultiWriter(f, sum, &cnt, pw), io.LimitReader(rc, m.StoredSize+1))
		pw.CloseWithError(err)
		downloaded <- err
	}()
	verr := verifyPlaintext(ctx, pr, m, o, &plain)
	// The verification may stop early; the download goes on to the end, so
	// that a damaged object is reported by its checksum, the surer reason.
	_, _ = io.Copy(io.Discard, pr)
	err = <-downloaded
	prog.stop()
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, errorf(ReasonInvalidInput, "writing the scratch file in %s: %v", dir, pe.Err)
		}
		return nil, withReason(ReasonStoreError, fmt.Errorf("downloading %s: %w", m.DataObject, err))
	}
	// No fsync: the scratch copy is read back at once, from the page cache,
	// and a crash loses the restore, which is run again, not the copy.
	if err := f.Close(); err != nil {
		return nil, errorf(ReasonInvalidInput, "writing the scratch file in %s: %v", dir, err)
	}
	if err := checkStored(m.DataObject, m, sum); err != nil {
		return nil, err
	}
	if verr != nil {
		return nil, verr
	}
	ok = true
	return a, nil
}

// checkStored compares the ciphertext's size and SHA-256 with the manifest.
func checkStored(name string, m *manifest.Manifest, sum *hashCounter) error {
	if sum.n != m.StoredSize {
		return errorf(ReasonIntegrityMismatch, "%s has %s bytes, the manifest says %d", name, sizeWord(sum.n, m.StoredSize), m.StoredSize)
	}
	if got := sum.sum(); got != m.SHA256 {
		return errorf(ReasonIntegrityMismatch, "%s has SHA-256 %s, the manifest says %s", name, got, m.SHA256)
	}
	return nil
}

func sizeWord(got, want int64) string {
	if got > want {
		return fmt.Sprintf("more than %d", want)
	}
	return fmt.Sprintf("%d", got)
}

// ReadManifest reads and checks an artifact's manifest from the store, as
// Fetch does first: a drill reads it to size its scratch space before
// anything is downloaded.
func ReadManifest(ctx context.Context, o ReadOptions) (*manifest.Manifest, error) {
	if o.Store == nil {
		return nil, errorf(ReasonInvalidInput, "no store given")
	}
	if err := checkArtifactPath(o.ArtifactPath); err != nil {
		return nil, err
	}
	m, err := readManifest(ctx, o)
	if err != nil {
		return nil, err
	}
	return m, checkManifest(m, o)
}

func readManifest(ctx context.Context, o ReadOptions) (*manifest.Manifest, error) {
	key := ManifestKey(o.ArtifactPath)
	rc, err := o.Store.Get(ctx, key)
	if err != nil {
		if store.IsNotFound(err) {
			return nil, errorf(ReasonManifestNotFound, "no manifest at %s: the backup does not exist or did not complete", o.ArtifactPath)
		}
		return nil, withReason(ReasonStoreError, fmt.Errorf("reading the manifest: %w", err))
	}
	defer rc.Close()
	m, err := manifest.Read(rc)
	if err != nil {
		if preciseReason(err) != "" {
			return nil, withReason(ReasonStoreError, err)
		}
		return nil, errorf(ReasonIntegrityMismatch, "the manifest at %s is unreadable: %v", o.ArtifactPath, err)
	}
	return m, nil
}

func checkManifest(m *manifest.Manifest, o ReadOptions) error {
	if o.Engine != "" && m.Engine != o.Engine {
		return errorf(ReasonEngineMismatch, "the artifact was made by the %s engine, not %s", m.Engine, o.Engine)
	}
	if o.ExpectSHA256 != "" && !strings.EqualFold(m.SHA256, o.ExpectSHA256) {
		return errorf(ReasonIntegrityMismatch, "the artifact at %s is not the one expected: its data has SHA-256 %s, not %s", o.ArtifactPath, m.SHA256, o.ExpectSHA256)
	}
	switch crypto.Mode(m.Encryption.Mode) {
	case crypto.ModeX25519:
		if len(o.Decrypt.Identities) == 0 {
			return errorf(ReasonInvalidInput, "the artifact is encrypted to X25519 recipients; an identity file is required")
		}
	case crypto.ModeScrypt:
		if o.Decrypt.Passphrase == "" {
			return errorf(ReasonInvalidInput, "the artifact is passphrase-encrypted; a passphrase is required")
		}
	}
	return nil
}

// verifyPlaintext decrypts and decompresses the ciphertext read from r,
// compares the plaintext's size and SHA-256 with the manifest, and runs the
// engine's completeness check on the dump, as the backup did: an artifact
// holding a dump that was cut short (made by a version that did not check)
// fails here, before a restore touches anything. plain counts the
// plaintext checked so far.
func verifyPlaintext(ctx context.Context, ciphertext io.Reader, m *manifest.Manifest, o ReadOptions, plain *counter) error {
	r, err := decode(ciphertext, m, o.Decrypt)
	if err != nil {
		return err
	}
	defer r.Close()
	sum := newHashCounter()
	sinks := []io.Writer{sum, plain}
	check := engine.NewDumpCheck(m.Engine)
	if check != nil {
		sinks = append(sinks, check)
	}
	// The inventory is counted again and compared with the manifest's,
	// which a restore drill trusts as the list of what must be restored.
	var inv engine.Inventory
	if m.Inventory != nil {
		if inv = engine.NewInventory(m.Engine); inv != nil {
			defer inv.Close()
			sinks = append(sinks, inv)
		}
	}
	groups := [][]io.Writer{sinks}
	// The content digest is recomputed too, on a core of its own: status
	// and `describe` show it, and a Backup is said to hold the same data as
	// another by it.
	checkContent := m.ContentSHA256 != "" && !o.skipContentDigest
	content := newHashCounter()
	filter := engine.NewContentFilter(m.Engine, content)
	if filter != nil && checkContent {
		groups = append(groups, []io.Writer{filter})
	}
	fan := newFanOut(groups...)
	_, err = io.Copy(fan, ctxReader{ctx, r})
	if cerr := fan.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return withReason(ReasonIntegrityMismatch, fmt.Errorf("verifying %s: %w", m.DataObject, err))
	}
	if sum.n != m.PlaintextSize {
		return errorf(ReasonIntegrityMismatch, "the plaintext of %s has %d bytes, the manifest says %d", m.DataObject, sum.n, m.PlaintextSize)
	}
	if got := sum.sum(); got != m.PlaintextSHA256 {
		return errorf(ReasonIntegrityMismatch, "the plaintext of %s has SHA-256 %s, the manifest says %s", m.DataObject, got, m.PlaintextSHA256)
	}
	if err := checkCompleteness(m, check); err != nil {
		return err
	}
	// Checked last: a dump cut short is reported as such, not as a digest.
	if checkContent {
		got := m.PlaintextSHA256 // an engine that leaves no line out
		if filter != nil {
			_ = filter.Close() // it writes to a hash, which cannot fail
			got = content.sum()
		}
		if got != m.ContentSHA256 {
			return errorf(ReasonIntegrityMismatch, "the content digest of %s is %s, the manifest says %s", m.DataObject, got, m.ContentSHA256)
		}
	}
	if inv != nil {
		got, err := inv.Result()
		if err != nil {
			return withReason(ReasonIntegrityMismatch, fmt.Errorf("counting the inventory of %s: %w", m.DataObject, err))
		}
		if diff := inventoryDiff(m.Inventory, got); diff != "" {
			return errorf(ReasonIntegrityMismatch, "the inventory of %s differs from the manifest's: %s", m.DataObject, diff)
		}
	}
	return nil
}

// checkCompleteness runs the engine's completeness check on the dump, and
// compares its counts with the manifest's record.
func checkCompleteness(m *manifest.Manifest, check engine.DumpCheck) error {
	if check == nil {
		return nil
	}
	c, err := check.Complete()
	if err != nil {
		return withReason(ReasonDumpIncomplete, fmt.Errorf("%s holds an incomplete dump: %w", m.DataObject, err))
	}
	if rec := m.DumpCheck; rec != nil &&
		(rec.Entries != nil && c.Entries != nil && *rec.Entries != *c.Entries ||
			rec.FileBytes != nil && c.Bytes != nil && *rec.FileBytes != *c.Bytes) {
		var recEntries int64
		if rec.Entries != nil {
			recEntries = *rec.Entries
		}
		return errorf(ReasonDumpIncomplete, "%s holds %s, the manifest says %s", m.DataObject, counts(*c.Entries, c.Bytes), counts(recEntries, rec.FileBytes))
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

// fetchLocal verifies a local data object, against a local manifest when one
// is given; without one, from what the file says about itself.
func fetchLocal(ctx context.Context, o ReadOptions) (*Artifact, error) {
	var m *manifest.Manifest
	if o.ManifestFile != "" {
		mf, err := os.Open(o.ManifestFile)
		if err != nil {
			return nil, errorf(ReasonManifestNotFound, "opening the manifest: %v", errors.Unwrap(err))
		}
		m, err = manifest.Read(mf)
		mf.Close()
		if err != nil {
			return nil, errorf(ReasonIntegrityMismatch, "the manifest %s is unreadable: %v", o.ManifestFile, err)
		}
		if err := checkManifest(m, o); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(o.File)
	if err != nil {
		return nil, errorf(ReasonInvalidInput, "opening %s: %v", o.File, errors.Unwrap(err))
	}
	defer f.Close()

	// Ciphertext hash and size, plus format detection when there is no manifest.
	stored := newHashCounter()
	tee := io.TeeReader(ctxReader{ctx, f}, stored)
	hasManifest := m != nil
	if !hasManifest {
		mode, r, err := crypto.Detect(tee)
		if err != nil {
			return nil, errorf(ReasonInvalidInput, "reading %s: %v", o.File, err)
		}
		if mode != crypto.ModeNone && len(o.Decrypt.Identities) == 0 && o.Decrypt.Passphrase == "" {
			return nil, errorf(ReasonInvalidInput, "%s is an age file; an identity file or a passphrase is required", o.File)
		}
		dec, err := crypto.NewDecrypter(r, mode, o.Decrypt)
		if err != nil {
			return nil, withReason(ReasonDecryptionFailed, err)
		}
		alg, dr, err := compress.Detect(dec)
		if err != nil {
			return nil, withReason(ReasonIntegrityMismatch, err)
		}
		d, err := compress.NewReader(dr, alg)
		if err != nil {
			return nil, withReason(ReasonIntegrityMismatch, err)
		}
		plain := newHashCounter()
		_, err = io.Copy(plain, d)
		d.Close()
		if err == nil {
			// Drain what the decompressor left, so age authenticates the end.
			var extra int64
			extra, err = io.Copy(io.Discard, dec)
			if err == nil && extra > 0 {
				err = fmt.Errorf("%w: %d bytes of trailing data", compress.ErrCorrupt, extra)
			}
		}
		if err != nil {
			return nil, withReason(ReasonIntegrityMismatch, fmt.Errorf("verifying %s: %w", o.File, err))
		}
		m = &manifest.Manifest{
			FormatVersion:   manifest.FormatVersion,
			Compression:     manifest.Compression{Algorithm: string(alg)},
			Encryption:      manifest.Encryption{Mode: string(mode)},
			StoredSize:      stored.n,
			PlaintextSize:   plain.n,
			SHA256:          stored.sum(),
			PlaintextSHA256: plain.sum(),
		}
		if o.ExpectSHA256 != "" && !strings.EqualFold(m.SHA256, o.ExpectSHA256) {
			return nil, errorf(ReasonIntegrityMismatch, "%s is not the artifact expected: its SHA-256 is %s, not %s", o.File, m.SHA256, o.ExpectSHA256)
		}
		return &Artifact{Manifest: m, path: o.File, dec: o.Decrypt}, nil
	}

	var plain counter
	prog := startProgress(o.Progress, o.ProgressInterval, func(d time.Duration) string {
		n := plain.n.Load()
		return fmt.Sprintf("verify: %s of %s plaintext checked, %s", humanBytes(n), humanBytes(m.PlaintextSize), rate(n, d))
	})
	verr := verifyPlaintext(ctx, tee, m, o, &plain)
	// Read to the end: a damaged file is reported by its checksum.
	_, err = io.Copy(io.Discard, tee)
	prog.stop()
	if err != nil {
		return nil, errorf(ReasonInvalidInput, "reading %s: %v", o.File, err)
	}
	if err := checkStored(o.File, m, stored); err != nil {
		return nil, err
	}
	if verr != nil {
		return nil, verr
	}
	return &Artifact{Manifest: m, HasManifest: true, path: o.File, dec: o.Decrypt}, nil
}

// Verify fetches and verifies an artifact, then removes the scratch copy.
func Verify(ctx context.Context, o ReadOptions) (*Artifact, error) {
	a, err := Fetch(ctx, o)
	if err != nil {
		return nil, err
	}
	return a, a.Close()
}

// fetchWhileChecking fetches and verifies the artifact while the target is
// checked (read only: a connection and SELECT 1, or a directory read), so
// that a restore waits for neither before the other. A target that fails
// its check stops the download at once, unless o.VerifyWhateverTheTarget:
// a large artifact is not fetched for a target that cannot take it. It
// returns the artifact when it was verified, and the check's failure apart;
// a download the check stopped returns only the check's failure.
func fetchWhileChecking(ctx context.Context, o ReadOptions, eng engine.Engine) (a *Artifact, checkErr, err error) {
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	checked := make(chan error, 1)
	go func() {
		err := eng.Check(fetchCtx)
		if err != nil {
			err = withReason(ReasonTargetUnreachable, fmt.Errorf("checking target: %w", err))
		}
		checked <- err // before the download is stopped, so that it is there to read then
		if err != nil && !o.VerifyWhateverTheTarget {
			stopFetch()
		}
	}()
	a, err = Fetch(fetchCtx, o)
	if err != nil {
		// A check still under way ends on the deferred cancel; the channel
		// is buffered, so no one need wait for it.
		select {
		case checkErr = <-checked:
			if checkErr != nil && !o.VerifyWhateverTheTarget && ctx.Err() == nil {
				return nil, checkErr, nil
			}
		default:
		}
		return nil, nil, err
	}
	select {
	case checkErr = <-checked:
		return a, checkErr, nil
	case <-ctx.Done():
		a.Close()
		return nil, nil, fmt.Errorf("checking target: %w", ctx.Err())
	}
}

// Restore verifies the whole artifact, checking the target meanwhile, and
// only then restores it: the engine's Restore is not called before every
// byte is verified. An *engine.Warning from the engine (the data restored,
// something after the swap not as planned) goes to o.Warn, and the restore
// succeeds.
func Restore(ctx context.Context, o ReadOptions, eng engine.Engine) (*manifest.Manifest, error) {
	if eng == nil {
		return nil, errorf(ReasonInvalidInput, "restore: no engine")
	}
	if o.Engine == "" {
		o.Engine = eng.Name()
	}
	// The content digest only names the data, for telling backups apart;
	// the plaintext's SHA-256 already proves these are the bytes the backup
	// wrote, and the digest's recount would cost a restore a quarter of its
	// verification's CPU. `verify` recounts it.
	o.skipContentDigest = true
	a, checkErr, err := fetchWhileChecking(ctx, o, eng)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, checkErr
	}
	defer a.Close()
	if o.Verified != nil {
		o.Verified()
	}
	if checkErr != nil {
		return nil, checkErr
	}
	r, err := a.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var cnt counter
	prog := startProgress(o.Progress, o.ProgressInterval, func(d time.Duration) string {
		n := cnt.n.Load()
		return fmt.Sprintf("restore: %s of %s loaded, %s", humanBytes(n), humanBytes(a.Manifest.PlaintextSize), rate(n, d))
	})
	err = eng.Restore(ctx, io.TeeReader(r, &cnt))
	prog.stop()
	if w := engine.AsWarning(err); w != nil {
		if o.Warn != nil {
			o.Warn(w)
		}
		err = nil
	}
	if err != nil {
		if engine.ReasonOf(err) == engine.ReasonRestoreFailed && ctx.Err() == nil {
			err = withLoadHint(ctx, eng, a.Manifest, err)
		}
		return nil, withReason(ReasonRestoreFailed, fmt.Errorf("restore failed: %w", err))
	}
	return a.Manifest, nil
}

// withLoadHint adds to a load that failed what may explain it: the server
// (or psql) restored into is an older release than the backup's, or another
// kind of server. The error is left as it is when the versions do not say.
func withLoadHint(ctx context.Context, eng engine.Engine, m *manifest.Manifest, err error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	target, verr := eng.Version(ctx)
	if verr != nil {
		return err
	}
	if hint := engine.LoadHint(m.Engine, m.EngineVersion, target); hint != "" {
		return engine.Errorf(engine.ReasonOf(err), "%w; %s", err, hint)
	}
	return err
}
