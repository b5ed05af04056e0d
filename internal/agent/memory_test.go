package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/testutil/minio"
)

const memDumpSize = 512 << 20

// streamEngine dumps memDumpSize bytes of half-compressible data without
// holding them, and counts what a restore reads.
type streamEngine struct{ restored int64 }

var streamTarget = &streamEngine{}

func init() {
	engine.Register("streamdb", func(engine.Options) (engine.Engine, error) { return streamTarget, nil })
}

func (e *streamEngine) Name() string                            { return "streamdb" }
func (e *streamEngine) Check(context.Context) error             { return nil }
func (e *streamEngine) Version(context.Context) (string, error) { return "stream 1", nil }
func (e *streamEngine) Restore(_ context.Context, r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	e.restored = n
	return err
}
func (e *streamEngine) Dump(ctx context.Context, w io.Writer) error {
	buf := randomData(1 << 20)
	rng := rand.New(rand.NewPCG(5, 6))
	for left := int64(memDumpSize); left > 0; left -= int64(len(buf)) {
		// Fresh random bytes in half of every block: the object is about
		// half the dump, as with real data.
		for i := len(buf) / 2; i+8 <= len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func peakRSS(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// TestMemory_ConstantPeakRSS backs up and restores 512 MiB through MinIO with
// the default part size in a fresh agent process and checks its peak RSS
// stays under 64 MiB. It takes about 10 seconds, so it runs only with
// BACKSTOP_MEMORY_TEST=1.
func TestMemory_ConstantPeakRSS(t *testing.T) {
	if os.Getenv("BACKSTOP_MEMORY_TEST") != "1" {
		t.Skip("set BACKSTOP_MEMORY_TEST=1 to run")
	}
	srv := minio.Start(t)
	id, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(t.TempDir(), "id.txt")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryChild$", "-test.v")
	cmd.Env = append(os.Environ(),
		"BACKSTOP_MEMORY_CHILD=1",
		"MEMTEST_ENDPOINT="+srv.Endpoint, "MEMTEST_BUCKET="+srv.Bucket, "MEMTEST_RECIPIENT="+id.Recipient().String(), "MEMTEST_IDENTITY="+idFile,
		EnvAccessKeyID+"="+srv.AccessKey, EnvSecretAccessKey+"="+srv.SecretKey)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
}

func TestMemoryChild(t *testing.T) {
	if os.Getenv("BACKSTOP_MEMORY_CHILD") != "1" {
		t.Skip("child of TestMemory_ConstantPeakRSS")
	}
	store := []string{"--store-type", "s3", "--s3-endpoint", os.Getenv("MEMTEST_ENDPOINT"), "--s3-insecure", "--s3-force-path-style",
		"--s3-bucket", os.Getenv("MEMTEST_BUCKET"), "--artifact-path", "mem/test/b1", "--termination-log", "", "--progress-interval", "0",
		"--engine", "streamdb"}
	ctx := context.Background()
	if code := Main(ctx, append([]string{"backup", "--encryption", "x25519", "--recipient", os.Getenv("MEMTEST_RECIPIENT")}, store...), os.Stdout, os.Stderr); code != 0 {
		t.Fatalf("backup exit %d", code)
	}
	afterBackup := peakRSS(t)
	if code := Main(ctx, append([]string{"restore", "--identity-file", os.Getenv("MEMTEST_IDENTITY"), "--scratch-dir", t.TempDir()}, store...), os.Stdout, os.Stderr); code != 0 {
		t.Fatalf("restore exit %d", code)
	}
	if streamTarget.restored != memDumpSize {
		t.Fatalf("restored %d bytes", streamTarget.restored)
	}
	peak := peakRSS(t)
	t.Logf("peak RSS: %d MiB after the backup, %d MiB after the restore", afterBackup>>20, peak>>20)
	if peak > 64<<20 {
		t.Fatalf("peak RSS %d MiB exceeds 64 MiB", peak>>20)
	}
}
