package agent

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/compress"
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
		{"pgbench-like dump", genPgbenchDump},
		{"bytea (hex) dump", genByteaDump},
		{"tar of mixed files", func(n int) []byte { return genMixedTar(t, n) }},
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

// The corpora below are those of internal/compress's
// TestZstd_RatioMatchesTheCLI (same shapes and seeds), at any size.

// genPgbenchDump is n bytes shaped like a pg_dump of `pgbench -i` data: the
// accounts table's rows (sequential ids, a branch id, a zero balance, 84
// spaces of filler), which compress to about 1%, and a short history of
// transactions.
func genPgbenchDump(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 4096)
	rng := rand.New(rand.NewPCG(11, 12))
	b.WriteString("--\n-- PostgreSQL database dump\n--\n\nCOPY \"public\".\"pgbench_accounts\" (\"aid\", \"bid\", \"abalance\", \"filler\") FROM stdin;\n")
	filler := strings.Repeat(" ", 84)
	for aid := 1; b.Len() < n-n/32; aid++ {
		fmt.Fprintf(&b, "%d\t%d\t0\t%s\n", aid, (aid-1)/100000+1, filler)
	}
	b.WriteString("\\.\n\nCOPY \"public\".\"pgbench_history\" (\"tid\", \"bid\", \"aid\", \"delta\", \"mtime\", \"filler\") FROM stdin;\n")
	for b.Len() < n {
		fmt.Fprintf(&b, "%d\t%d\t%d\t%d\t2026-12-03 19:%02d:%02d.%06d\t\\N\n",
			rng.IntN(100)+1, rng.IntN(10)+1, rng.IntN(1000000)+1, rng.IntN(10001)-5000, rng.IntN(60), rng.IntN(60), rng.IntN(1000000))
	}
	return b.Bytes()[:n]
}

// genByteaDump is n bytes of a dump dominated by bytea values: random bytes
// written as hex (1 KB to 600 KB per value), which only entropy coding
// compresses (to about half).
func genByteaDump(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 700<<10)
	rng := rand.New(rand.NewPCG(13, 14))
	b.WriteString("COPY \"public\".\"blobs\" (\"id\", \"name\", \"data\") FROM stdin;\n")
	const digits = "0123456789abcdef"
	for id := 1; b.Len() < n; id++ {
		fmt.Fprintf(&b, "%d\tattachment-%06d.bin\t\\\\x", id, id)
		for range 1000 + rng.IntN(300000) {
			v := rng.Uint32()
			b.WriteByte(digits[v&15])
			b.WriteByte(digits[v>>4&15])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

// genMixedTar is about n bytes of a tar stream of a tree of mixed files, a
// quarter each: prose, log lines, random (already compressed) bytes and
// skewed binary data, 1 KB to 400 KB per file.
func genMixedTar(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Grow(n + 512<<10)
	tw := tar.NewWriter(&b)
	rng := rand.New(rand.NewPCG(15, 16))
	words := strings.Fields("the a backup of restore data volume stream server client request error " +
		"table index key value config node pod cluster schedule retention window level frame")
	var f bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		f.Reset()
		size := 1000 + rng.IntN(400000)
		switch i % 4 {
		case 0:
			for f.Len() < size {
				f.WriteString(words[rng.IntN(len(words))])
				f.WriteByte(" \n"[min(rng.IntN(12), 1)^1])
			}
		case 1:
			for f.Len() < size {
				fmt.Fprintf(&f, "2026-12-03T19:%02d:%02dZ level=info msg=%q id=%d\n", rng.IntN(60), rng.IntN(60), words[rng.IntN(len(words))], rng.IntN(100000))
			}
		case 2:
			for range size {
				f.WriteByte(byte(rng.Uint32()))
			}
		case 3:
			for range size {
				f.WriteByte(byte(rng.NormFloat64()*16 + 128))
			}
		}
		hdr := &tar.Header{Name: fmt.Sprintf("dir%d/file-%d", i%7, i), Mode: 0o644, Size: int64(f.Len()), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
