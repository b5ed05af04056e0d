package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/pipeline"
	azurestore "github.com/backstop-io/backstop/internal/store/azure"
	gcsstore "github.com/backstop-io/backstop/internal/store/gcs"
)

// Version is the backstop version written to manifests. The build sets it
// with -ldflags "-X github.com/backstop-io/backstop/internal/agent.Version=v1.2.3";
// otherwise it comes from the module's build info.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Main runs `<prog> <backup|restore|verify|drill|delete> [flags]`; prog is how the
// user called the agent ("backstop agent", "backstop-agent"), for usage and
// error lines. args start with the subcommand (a leading "agent" is
// skipped). It prints the Result as one line of JSON on stdout (and to the
// termination log), a one-line error on stderr on failure, and returns the
// exit code: 0 on success, 1 on a failed run, 2 on bad usage.
func Main(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	return run(ctx, prog, args, stdout, stderr, os.Getenv)
}

// MemoryLimit is the soft limit of the Go heap for runs that do not upload
// (restore, verify, delete): the zstd decoder, download and engine buffers
// are well under it.
const MemoryLimit = 40 << 20

// memoryAllowance is what a backup holds besides the upload buffer, the
// compressor and what the runtime held at its start: copy buffers, age
// chunks, the upload's HTTP state (about 2 MiB), and a little room for
// garbage between collections: the data path makes little, so a few
// collections a second at most keep within it.
const memoryAllowance = 4 << 20

// minBackupMemoryLimit keeps the collector from running all the time in
// backups that hold little (a directory store, a low level): below it, the
// runtime's own memory leaves the heap too little room.
const minBackupMemoryLimit = 32 << 20

// limitMemory sets the Go heap's soft limit for a run, unless GOMEMLIMIT is
// set. A backup's live memory does not grow with the data: it is the upload
// buffer and the compressor, both fixed by the flags, on top of what the
// runtime holds already (the package initialisers' heap, larger in the
// backstop binary, which links the operator). The limit is their sum plus
// memoryAllowance, so the garbage collector keeps the heap near its live
// size instead of letting it double (GOGC's default): the peak RSS is the
// data path's, flat, and small. The data path makes little garbage, so
// collections stay rare.
func limitMemory(cmd string, c *config) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(MemoryLimit)
	if cmd == "backup" {
		limit = runtimeMemory() + c.uploadBuffer() + compressorMemory(c.compression, c.compressionLevel) + memoryAllowance
		limit = max(minBackupMemoryLimit, limit)
	}
	debug.SetMemoryLimit(limit)
}

// runtimeMemory is the memory the Go runtime holds now, as the soft limit
// counts it: everything it has mapped, less what it has given back.
func runtimeMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// uploadBuffer is the memory the store's upload holds at once.
func (c *config) uploadBuffer() int64 {
	switch c.storeType {
	case "s3":
		return int64(c.s3PartSizeMiB) << 20
	case "gcs":
		return gcsstore.DefaultChunkSize
	case "azure":
		return int64(c.azureBlockSizeMiB) << 20 * azurestore.DefaultConcurrency
	}
	return 0
}

// compressorMemory is what the compressor holds at a level, measured for
// klauspost/compress with the settings internal/compress uses (levels 1 to
// 5 in two 2 MiB frames at once, the others in one stream with a 2 MiB
// window), with some margin (memlimit_test.go checks it).
func compressorMemory(algorithm string, level int) int64 {
	switch compress.Algorithm(algorithm) {
	case compress.Zstd:
		switch {
		case level <= 5:
			return 16 << 20
		case level < 10:
			return 11 << 20
		}
		return 48 << 20
	case compress.Gzip:
		return 2 << 20
	}
	return 0
}

// UserMain runs the user commands `backstop verify [flags]` and
// `backstop decrypt [flags]`; args start with "verify" or "decrypt".
func UserMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runUser(ctx, args, stdout, stderr, os.Getenv)
}

func agentUsage(prog string) string {
	return fmt.Sprintf("usage: %[1]s <backup|restore|verify|drill|delete> [flags]\nRun \"%[1]s <command> -h\" for the flags.\n", prog)
}

func run(ctx context.Context, prog string, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, agentUsage(prog))
		return 2
	}
	cmd := args[0]
	switch cmd {
	case "backup", "restore", "verify", "delete", "drill":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, agentUsage(prog))
		return 0
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n%s", prog, cmd, agentUsage(prog))
		return 2
	}

	c := &config{}
	fs := flag.NewFlagSet(prog+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.storeFlags(fs)
	switch cmd {
	case "backup":
		c.engineFlags(fs)
		c.encryptFlags(fs)
	case "restore", "verify":
		c.engineFlags(fs)
		c.decryptFlags(fs)
		if cmd == "restore" {
			fs.DurationVar(&c.lockTimeout, "lock-timeout", engine.DefaultLockTimeout,
				"how long to wait for a lock another session holds on the target before failing with TargetBusy, changing nothing")
		}
	case "drill":
		c.engineFlags(fs)
		c.decryptFlags(fs)
		c.drillFlags(fs)
	}
	c.runFlags(fs, true)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	start := time.Now()
	res := Result{Engine: c.engine, ArtifactPath: c.artifactPath, StartTime: timestamp(start)}
	finish := func(err error, m *manifest.Manifest) int {
		res.CompletionTime = timestamp(time.Now())
		if m != nil {
			fillFromManifest(&res, m)
		}
		code := 0
		if err != nil {
			res.Phase = PhaseFailed
			res.Reason = reasonOf(ctx, err)
			res.Message = c.redact(err.Error())
			if res.Reason == ReasonDeadlineExceeded && c.timeout > 0 {
				res.Message = fmt.Sprintf("the run did not finish within --timeout %s: %s", c.timeout, res.Message)
			}
			code = 1
		} else {
			res.Phase = PhaseSucceeded
			res.Message = successMessage(cmd, m)
		}
		b := res.Encode()
		writeTerminationLog(c.terminationLog, b)
		fmt.Fprintf(stdout, "%s\n", b)
		if err != nil {
			fmt.Fprintf(stderr, "%s %s: %s: %s\n", prog, cmd, res.Reason, res.Message)
		}
		return code
	}

	if fs.NArg() > 0 {
		return finish(invalid("unexpected arguments: %s", strings.Join(fs.Args(), " ")), nil)
	}
	limitMemory(cmd, c)
	if err := c.loadSecrets(getenv); err != nil {
		return finish(invalid("%v", err), nil)
	}
	if c.artifactPath == "" {
		return finish(invalid("--artifact-path is required"), nil)
	}
	st, err := c.openStore()
	if err != nil {
		return finish(invalid("%v", err), nil)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	progress := stderr
	if c.progressInterval <= 0 {
		progress = nil
	}

	switch cmd {
	case "delete":
		// Used for stores only a pod can reach (a volume): the operator
		// deletes S3 artifacts itself.
		return finish(pipeline.DeleteArtifact(ctx, st, c.artifactPath), nil)

	case "backup":
		eng, err := c.newEngine()
		if err != nil {
			return finish(err, nil)
		}
		alg, err := compress.Parse(c.compression)
		if err != nil {
			return finish(invalid("--compression: %v", err), nil)
		}
		enc, err := c.encryptOptions()
		if err != nil {
			return finish(invalid("%v", err), nil)
		}
		m, err := pipeline.Backup(ctx, pipeline.BackupOptions{
			Engine: eng, Store: st, ArtifactPath: c.artifactPath,
			Compression: alg, CompressionLevel: c.compressionLevel, Encryption: enc,
			Progress: progress, ProgressInterval: c.progressInterval,
			Version: version(),
		})
		return finish(err, m)

	case "restore":
		if c.lockTimeout < time.Second {
			return finish(invalid("--lock-timeout must be at least 1s, not %s", c.lockTimeout), nil)
		}
		eng, err := c.newEngine()
		if err != nil {
			return finish(err, nil)
		}
		dec, err := c.decryptOptions()
		if err != nil {
			return finish(invalid("%v", err), nil)
		}
		m, err := pipeline.Restore(ctx, pipeline.ReadOptions{
			Store: st, ArtifactPath: c.artifactPath, Engine: c.engine, Decrypt: dec, ExpectSHA256: c.expectSHA256,
			ScratchDir: c.scratchDir, Progress: progress, ProgressInterval: c.progressInterval,
			// Restored: a success, with what went wrong after the swap.
			Warn: func(w error) {
				res.Warning = c.redact(w.Error())
				fmt.Fprintf(stderr, "%s %s: warning: %s\n", prog, cmd, res.Warning)
			},
		}, eng)
		return finish(err, m)

	case "drill":
		rep, m, err := c.drill(ctx, st, getenv, progress)
		res.Drill = rep
		return finish(err, m)

	default: // verify
		dec, err := c.decryptOptions()
		if err != nil {
			return finish(invalid("%v", err), nil)
		}
		a, err := pipeline.Verify(ctx, pipeline.ReadOptions{
			Store: st, ArtifactPath: c.artifactPath, Engine: c.engine, Decrypt: dec, ExpectSHA256: c.expectSHA256,
			ScratchDir: c.scratchDir, Progress: progress, ProgressInterval: c.progressInterval,
		})
		if err != nil {
			return finish(err, nil)
		}
		return finish(nil, a.Manifest)
	}
}

func (c *config) newEngine() (engine.Engine, error) {
	if c.engine == "" {
		return nil, invalid("--engine is required (postgres, mysql or files)")
	}
	if err := checkTLSMode(c.tlsMode); err != nil {
		return nil, invalid("%v", err)
	}
	eng, err := engine.New(c.engine, c.engineOptions())
	if err != nil {
		if engine.ReasonOf(err) != "" {
			return nil, err
		}
		return nil, invalid("%v", err)
	}
	return eng, nil
}

func invalid(format string, args ...any) error {
	return &pipeline.Error{Reason: ReasonInvalidInput, Err: fmt.Errorf(format, args...)}
}

// reasonOf classifies err; a run past its deadline is DeadlineExceeded
// whatever failed first because of it.
func reasonOf(ctx context.Context, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ReasonDeadlineExceeded
	}
	return pipeline.ReasonOf(err)
}

func fillFromManifest(r *Result, m *manifest.Manifest) {
	if m.Engine != "" {
		r.Engine = m.Engine
	}
	r.DataObject = m.DataObject
	r.StoredBytes = m.StoredSize
	r.PlaintextBytes = m.PlaintextSize
	r.SHA256 = m.SHA256
	r.PlaintextSHA256 = m.PlaintextSHA256
	r.ContentSHA256 = m.ContentSHA256
}

func successMessage(cmd string, m *manifest.Manifest) string {
	switch cmd {
	case "delete":
		return "Deleted the artifact"
	case "backup":
		return fmt.Sprintf("Stored %s (%d bytes, %d bytes of plaintext)", m.DataObject, m.StoredSize, m.PlaintextSize)
	case "restore":
		return fmt.Sprintf("Restored %s after verifying it in full", m.DataObject)
	case "drill":
		return fmt.Sprintf("Drilled %s: restored it where it can do no harm and every check passed", m.DataObject)
	}
	return fmt.Sprintf("Verified %s: size, SHA-256, age authentication and plaintext SHA-256 match", m.DataObject)
}

const userUsage = `usage:
  backstop verify  [store flags] --artifact-path ns/target/backup [--identity-file F]
  backstop verify  --file data.sql.zst.age [--manifest manifest.json] [--identity-file F]
  backstop decrypt [store flags] --artifact-path ns/target/backup [--identity-file F] [--output FILE]
  backstop decrypt --file data.sql.zst.age [--manifest manifest.json] [--identity-file F] [--output FILE]
  backstop manifest [store flags] --artifact-path ns/target/backup
Run "backstop <command> -h" for the flags.
`

// runManifest prints an artifact's manifest.json from a store, validated:
// no identity is needed, the manifest is not encrypted.
func runManifest(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &config{}
	fs := flag.NewFlagSet("backstop manifest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.storeFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "backstop manifest: %s: %s\n", reasonOf(ctx, err), c.redact(err.Error()))
		return 1
	}
	if fs.NArg() > 0 {
		return fail(invalid("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if c.artifactPath == "" {
		return fail(invalid("give --artifact-path with store flags"))
	}
	if err := c.loadSecrets(getenv); err != nil {
		return fail(invalid("%v", err))
	}
	st, err := c.openStore()
	if err != nil {
		return fail(invalid("%v", err))
	}
	r, err := st.Get(ctx, pipeline.ManifestKey(c.artifactPath))
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	m, err := manifest.Read(r)
	if err != nil {
		return fail(err)
	}
	b, err := m.Marshal()
	if err != nil {
		return fail(err)
	}
	_, _ = stdout.Write(b)
	return 0
}

func runUser(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return 2
	}
	cmd := args[0]
	if cmd == "manifest" {
		return runManifest(ctx, args[1:], stdout, stderr, getenv)
	}
	if cmd != "verify" && cmd != "decrypt" {
		fmt.Fprintf(stderr, "backstop: unknown command %q\n%s", cmd, userUsage)
		return 2
	}
	c := &config{}
	fs := flag.NewFlagSet("backstop "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.storeFlags(fs)
	c.decryptFlags(fs)
	c.runFlags(fs, false)
	fs.StringVar(&c.engine, "engine", "", "fail unless the artifact was made by this engine")
	fs.StringVar(&c.file, "file", "", "a local data object instead of a store")
	fs.StringVar(&c.manifestFile, "manifest", "", "the local data object's manifest.json (recommended)")
	if cmd == "decrypt" {
		fs.StringVar(&c.output, "output", "", "write the plaintext dump to this file (mode 0600) instead of stdout")
	} else {
		fs.BoolVar(&c.jsonOut, "json", false, "print the result as JSON")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "backstop %s: %s: %s\n", cmd, reasonOf(ctx, err), c.redact(err.Error()))
		return 1
	}
	if fs.NArg() > 0 {
		return fail(invalid("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if err := c.loadSecrets(getenv); err != nil {
		return fail(invalid("%v", err))
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	dec, err := c.decryptOptions()
	if err != nil {
		return fail(invalid("%v", err))
	}
	o := pipeline.ReadOptions{
		ArtifactPath: c.artifactPath, File: c.file, ManifestFile: c.manifestFile,
		Engine: c.engine, Decrypt: dec, ScratchDir: c.scratchDir, ExpectSHA256: c.expectSHA256,
		ProgressInterval: c.progressInterval,
	}
	if c.progressInterval > 0 {
		o.Progress = stderr
	}
	if c.file == "" {
		if c.artifactPath == "" {
			return fail(invalid("give --artifact-path with store flags, or --file"))
		}
		if o.Store, err = c.openStore(); err != nil {
			return fail(invalid("%v", err))
		}
	} else if c.storeType != "" || c.artifactPath != "" {
		return fail(invalid("--file excludes --store-type and --artifact-path"))
	}
	if c.output != "" {
		if _, err := os.Lstat(c.output); err == nil {
			return fail(invalid("--output %s exists; refusing to overwrite it", c.output))
		}
	}

	start := time.Now()
	a, err := pipeline.Fetch(ctx, o)
	if err != nil {
		return fail(err)
	}
	defer a.Close()
	m := a.Manifest

	if cmd == "verify" {
		res := Result{Phase: PhaseSucceeded, ArtifactPath: c.artifactPath, StartTime: timestamp(start), CompletionTime: timestamp(time.Now())}
		fillFromManifest(&res, m)
		res.Message = successMessage("verify", m)
		if !a.HasManifest {
			res.Message = fmt.Sprintf("Verified %s by age authentication and compression checksums only (no manifest given)", filepath.Base(c.file))
		}
		if c.jsonOut {
			fmt.Fprintf(stdout, "%s\n", res.Encode())
			return 0
		}
		fmt.Fprintf(stdout, "OK  %s\n", res.Message)
		if m.Engine != "" {
			fmt.Fprintf(stdout, "    engine:           %s %s\n", m.Engine, m.EngineVersion)
		}
		if !m.CreatedAt.IsZero() {
			fmt.Fprintf(stdout, "    created:          %s (backstop %s)\n", timestamp(m.CreatedAt), m.BackstopVersion)
		}
		fmt.Fprintf(stdout, "    compression:      %s\n", m.Compression.Algorithm)
		enc := m.Encryption.Mode
		if len(m.Encryption.RecipientFingerprints) > 0 {
			enc += " (recipients " + strings.Join(m.Encryption.RecipientFingerprints, ", ") + ")"
		}
		fmt.Fprintf(stdout, "    encryption:       %s\n", enc)
		fmt.Fprintf(stdout, "    stored:           %d bytes, sha256 %s\n", m.StoredSize, m.SHA256)
		fmt.Fprintf(stdout, "    plaintext:        %d bytes, sha256 %s\n", m.PlaintextSize, m.PlaintextSHA256)
		if m.ContentSHA256 != "" {
			fmt.Fprintf(stdout, "    content digest:   sha256 %s\n", m.ContentSHA256)
		}
		if m.DumpCheck != nil {
			fmt.Fprintf(stdout, "    dump complete:    %s\n", m.DumpCheck.Method)
		}
		if inv := m.Inventory; inv != nil {
			fmt.Fprintf(stdout, "    inventory:        %s\n", inventoryLine(inv))
		}
		return 0
	}

	// decrypt: the artifact is verified; write the plaintext.
	r, err := a.Open()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	if c.output == "" {
		if _, err := io.Copy(stdout, r); err != nil {
			return fail(invalid("writing the plaintext: %v", err))
		}
		return 0
	}
	if err := writeFileAtomic(c.output, r); err != nil {
		return fail(invalid("writing %s: %v", c.output, err))
	}
	fmt.Fprintf(stderr, "backstop decrypt: wrote %s (%d bytes, sha256 %s)\n", c.output, m.PlaintextSize, m.PlaintextSHA256)
	return 0
}

// writeFileAtomic writes r to path with mode 0600 through a temporary file
// in the same directory.
func writeFileAtomic(path string, r io.Reader) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = io.Copy(f, r); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// inventoryLine sums up an inventory for `verify`: "3 tables, 1200 rows",
// or "12 entries, 4096 bytes of files" (entries of every kind: files,
// directories, links).
func inventoryLine(inv *manifest.Inventory) string {
	if f := inv.Files; f != nil {
		return fmt.Sprintf("%d entries, %d bytes of files", f.Entries, f.Bytes)
	}
	var rows int64
	for _, t := range inv.Tables {
		rows += t.Rows
	}
	return fmt.Sprintf("%d tables, %d rows", len(inv.Tables), rows)
}
