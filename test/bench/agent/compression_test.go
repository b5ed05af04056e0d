package agent

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/testutil/corpus"
)

// TestCompressionVsCLI compares the agent's compressor (internal/compress,
// as the agent calls it) at zstd levels 1 to 6 with the stock `zstd -3` and
// `zstd -T2 -3` on three generated corpora: a pgbench-like PostgreSQL dump,
// a dump dominated by large bytea values (hex text), and a tar stream of a
// tree of mixed text and binary files. It reports the stored size and the
// throughput of each (best of BACKSTOP_BENCH_REPS runs). It runs only with
// BACKSTOP_BENCH=1 (make bench); the corpora are 32 MiB each at
// BACKSTOP_BENCH_SCALE=1, generated in memory one at a time. It fails only
// when something does not work (a stream that does not read back, a CLI
// error); the sizes are reported, not checked (TestZstd_RatioMatchesTheCLI
// in internal/compress checks them).
func TestCompressionVsCLI(t *testing.T) {
	if os.Getenv("BACKSTOP_BENCH") != "1" || testing.Short() {
		t.Skip("a benchmark: set BACKSTOP_BENCH=1 (make bench) to run it; see docs/benchmarks.md")
	}
	if _, err := exec.LookPath("zstd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the zstd CLI is not installed")
		}
		t.Skip("skipping: the zstd CLI is not installed")
	}
	scale := envFloat(t, "BACKSTOP_BENCH_SCALE", 1, 0.01, 4)
	reps := int(envFloat(t, "BACKSTOP_BENCH_REPS", 2, 1, 5))
	n := max(int(float64(32<<20)*scale), 1<<20)

	type row struct {
		corpus, name  string
		plain, stored int
		wall, cpu     time.Duration
	}
	var rows []row
	corpora := []struct {
		name string
		gen  func(int) []byte
	}{
		{"pgbench-like dump", corpus.PgbenchDump},
		{"bytea (hex) dump", corpus.ByteaDump},
		{"tar of mixed files", func(n int) []byte { return corpus.MixedTar(t, n) }},
	}
	for _, c := range corpora {
		data := c.gen(n)
		sum := sha256.Sum256(data)
		for level := 1; level <= 6; level++ {
			var best row
			for range reps {
				var out bytes.Buffer
				out.Grow(len(data) / 2)
				cpu0 := selfCPU(t)
				start := time.Now()
				w, err := compress.NewWriter(&out, compress.Zstd, level)
				if err != nil {
					t.Fatal(err)
				}
				// The agent writes in pieces of a pipe's size or so.
				for off := 0; off < len(data); off += 256 << 10 {
					if _, err := w.Write(data[off:min(off+256<<10, len(data))]); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				wall, cpu := time.Since(start), selfCPU(t)-cpu0
				if best.wall == 0 || wall < best.wall {
					best = row{c.name, fmt.Sprintf("agent level %d", level), len(data), out.Len(), wall, cpu}
				}
				// It reads back to the same bytes.
				r, err := compress.NewReader(bytes.NewReader(out.Bytes()), compress.Zstd)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				if _, err := io.Copy(h, r); err != nil {
					t.Fatalf("%s, level %d: reading back: %v", c.name, level, err)
				}
				r.Close()
				if !bytes.Equal(h.Sum(nil), sum[:]) {
					t.Fatalf("%s, level %d: reads back to other bytes", c.name, level)
				}
			}
			rows = append(rows, best)
		}
		for _, args := range [][]string{{"-3"}, {"-T2", "-3"}} {
			var best row
			for range reps {
				var out countingWriter
				cmd := exec.Command("zstd", append([]string{"-q", "-c"}, args...)...)
				cmd.Stdin, cmd.Stdout = bytes.NewReader(data), &out
				stderr := &tailBuffer{max: 4096}
				cmd.Stderr = stderr
				start := time.Now()
				if err := cmd.Run(); err != nil {
					t.Fatalf("zstd %s: %v: %s", strings.Join(args, " "), err, stderr)
				}
				wall := time.Since(start)
				cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				if best.wall == 0 || wall < best.wall {
					best = row{c.name, "`zstd " + strings.Join(args, " ") + "`", len(data), int(out.n), wall, cpu}
				}
			}
			rows = append(rows, best)
		}
		data = nil
		runtime.GC()
	}

	var w strings.Builder
	fmt.Fprintf(&w, "Compression, %d CPUs, about %.0f MiB per corpus, best of %d runs (wall time; CPU is user+system; the agent's compressor in-process, the CLI reading stdin and writing stdout through pipes):\n\n", runtime.NumCPU(), mib(int64(n)), reps)
	fmt.Fprintf(&w, "| corpus | compressor | stored bytes | stored / plain | stored / `zstd -3` | MiB/s | CPU s |\n")
	fmt.Fprintf(&w, "| --- | --- | --: | --: | --: | --: | --: |\n")
	ref := map[string]int{}
	for _, r := range rows {
		if r.name == "`zstd -3`" {
			ref[r.corpus] = r.stored
		}
	}
	for _, r := range rows {
		fmt.Fprintf(&w, "| %s | %s | %d | %.3f | %.3f | %.0f | %.2f |\n", r.corpus, r.name, r.stored,
			float64(r.stored)/float64(r.plain), float64(r.stored)/float64(ref[r.corpus]),
			mib(int64(r.plain))/r.wall.Seconds(), r.cpu.Seconds())
	}
	t.Logf("\n%s", w.String())
}

// selfCPU is the user+system CPU time this process has used.
func selfCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
