package agent

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/engine/files"
	"github.com/backstop-io/backstop/internal/engine/mysql"
	"github.com/backstop-io/backstop/internal/engine/postgres"
	"github.com/backstop-io/backstop/internal/testutil/corpus"
)

// mariadbDump is n bytes shaped like a mariadb-dump of a table of mixed
// rows (--hex-blob, --quick): one INSERT of about 1 MB per statement with
// each row on its own line, as mariadb-dump 11 writes them, and strings
// holding quotes, backslashes, commas and parentheses.
func mariadbDump(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 4096)
	rng := rand.New(rand.NewPCG(17, 18))
	words := strings.Fields("the a backup (of) restore, data 'volume' stream\\ server client \"request\" error")
	const digits = "0123456789ABCDEF"
	b.WriteString("-- backstop-database: shop\n-- MariaDB dump 10.19\n\nCREATE TABLE `orders` (\n  `id` int(11) NOT NULL,\n  `note` text,\n  `blob` blob\n);\n")
	for id := 1; b.Len() < n; {
		b.WriteString("INSERT INTO `orders` VALUES\n")
		for start := b.Len(); b.Len()-start < 1<<20 && b.Len() < n; id++ {
			if b.Len() > start {
				b.WriteString(",\n")
			}
			fmt.Fprintf(&b, "(%d,'", id)
			for range 3 + rng.IntN(20) {
				w := words[rng.IntN(len(words))]
				w = strings.NewReplacer("'", "\\'", "\\", "\\\\", "\"", "\\\"").Replace(w)
				b.WriteString(w)
				b.WriteByte(' ')
			}
			b.WriteString("',")
			if rng.IntN(4) == 0 {
				b.WriteString("NULL")
			} else {
				b.WriteString("0x")
				for range 16 + rng.IntN(200) {
					v := rng.Uint32()
					b.WriteByte(digits[v&15])
					b.WriteByte(digits[v>>4&15])
				}
			}
			b.WriteByte(')')
		}
		b.WriteString(";\n")
	}
	b.WriteString("-- Dump completed\n")
	return b.Bytes()
}

type inventoryCorpus struct {
	name, engine string
	data         []byte
}

func inventoryCorpora(t testing.TB, n int) []inventoryCorpus {
	return []inventoryCorpus{
		{"pgbench-like dump", postgres.Name, corpus.PgbenchDump(n)},
		{"bytea (hex) dump", postgres.Name, corpus.ByteaDump(n)},
		{"mariadb-dump of mixed rows", mysql.Name, mariadbDump(n)},
		{"tar of mixed files", files.Name, corpus.MixedTar(t, n)},
	}
}

// feed writes data to w in writes of 256 KiB, as the agent's dump copy
// does.
func feed(tb testing.TB, w io.Writer, data []byte) {
	for off := 0; off < len(data); off += 256 << 10 {
		if _, err := w.Write(data[off:min(off+256<<10, len(data))]); err != nil {
			tb.Fatal(err)
		}
	}
}

// countInventory runs the inventory counter of engine over data.
func countInventory(tb testing.TB, name string, data []byte) (rows, entries int64) {
	inv := engine.NewInventory(name)
	defer inv.Close()
	feed(tb, inv, data)
	res, err := inv.Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range res.Tables {
		rows += t.Rows
	}
	if res.Files != nil {
		entries = res.Files.Entries
	}
	return rows, entries
}

// BenchmarkInventory is the throughput of each engine's inventory counter
// alone, in one goroutine, on 32 MiB corpora (go test -bench Inventory).
func BenchmarkInventory(b *testing.B) {
	for _, c := range inventoryCorpora(b, 32<<20) {
		b.Run(strings.ReplaceAll(c.name, " ", "_"), func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			for range b.N {
				countInventory(b, c.engine, c.data)
			}
		})
	}
}

// TestInventoryThroughput measures the inventory counters of the three
// engines on generated corpora next to what the backup's data path already
// does to every byte in the same goroutine (SHA-256 of the plaintext) and
// what it does beside it (zstd level 3, the default), in MiB/s of one core.
// It runs only with BACKSTOP_BENCH=1 (make bench); BACKSTOP_BENCH_SCALE
// scales the corpora (32 MiB each at 1), BACKSTOP_BENCH_REPS is the number
// of runs (the fastest counts). It fails when a counter counts nothing.
func TestInventoryThroughput(t *testing.T) {
	if os.Getenv("BACKSTOP_BENCH") != "1" || testing.Short() {
		t.Skip("a benchmark: set BACKSTOP_BENCH=1 (make bench) to run it; see docs/benchmarks.md")
	}
	scale := envFloat(t, "BACKSTOP_BENCH_SCALE", 1, 0.01, 4)
	reps := int(envFloat(t, "BACKSTOP_BENCH_REPS", 3, 1, 9))
	n := max(int(float64(32<<20)*scale), 1<<20)
	best := func(f func()) time.Duration {
		var d time.Duration
		for range reps {
			start := time.Now()
			f()
			if e := time.Since(start); d == 0 || e < d {
				d = e
			}
		}
		return d
	}
	var w strings.Builder
	fmt.Fprintf(&w, "Inventory counters, %d CPUs, GOMAXPROCS %d, about %.0f MiB per corpus, best of %d runs, MiB/s:\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), mib(int64(n)), reps)
	fmt.Fprintf(&w, "| corpus | counted | inventory | SHA-256 | zstd level 3 | inventory time / SHA-256 time |\n| --- | --- | --: | --: | --: | --: |\n")
	for _, c := range inventoryCorpora(t, n) {
		var rows, entries int64
		inv := best(func() { rows, entries = countInventory(t, c.engine, c.data) })
		if rows == 0 && entries == 0 {
			t.Fatalf("%s: the %s inventory counted nothing", c.name, c.engine)
		}
		sum := best(func() { h := sha256.New(); feed(t, h, c.data) })
		zst := best(func() {
			z, err := compress.NewWriter(io.Discard, compress.Zstd, 3)
			if err != nil {
				t.Fatal(err)
			}
			feed(t, z, c.data)
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
		})
		counted := fmt.Sprintf("%d rows", rows)
		if c.engine == files.Name {
			counted = fmt.Sprintf("%d entries", entries)
		}
		rate := func(d time.Duration) float64 { return mib(int64(len(c.data))) / d.Seconds() }
		fmt.Fprintf(&w, "| %s | %s | %.0f | %.0f | %.0f | %.2f |\n", c.name, counted, rate(inv), rate(sum), rate(zst), inv.Seconds()/sum.Seconds())
	}
	t.Logf("\n%s", w.String())
}
