package agent

import (
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/backstop-io/backstop/internal/compress"
)

// The memory limit of a backup counts on compressorMemory: if the
// compressor held more, the heap's soft limit would sit under the live
// memory and the collector would run without pause. This measures what a
// compressor really keeps live after compressing a few MiB of mixed data.
func TestCompressorMemory_CoversTheCompressor(t *testing.T) {
	data := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		if i%2048 < 1024 {
			data[i] = byte(rng.Uint32()) // incompressible half
		} else {
			data[i] = "backstop "[i%9]
		}
	}
	for _, tc := range []struct {
		alg   compress.Algorithm
		level int
	}{
		{compress.Zstd, 0}, {compress.Zstd, 1}, {compress.Zstd, 3}, {compress.Zstd, 7},
		{compress.Zstd, 19}, {compress.Gzip, 0}, {compress.Gzip, 9},
	} {
		// Twice: a sync.Pool (the parallel zstd jobs keep their buffers in
		// pools) lets go of its objects only at the second collection, and
		// the previous case's must not count here.
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w, err := compress.NewWriter(io.Discard, tc.alg, tc.level)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 256 << 10 {
			if _, err := w.Write(data[off : off+256<<10]); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		live := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		runtime.KeepAlive(w)
		_ = w.Close()
		if est := compressorMemory(string(tc.alg), tc.level); live > est {
			t.Errorf("%s level %d keeps %.1f MiB live, compressorMemory says %.1f MiB", tc.alg, tc.level, float64(live)/(1<<20), float64(est)/(1<<20))
		} else {
			t.Logf("%s level %d: %.1f MiB live, estimate %.0f MiB", tc.alg, tc.level, float64(live)/(1<<20), float64(est)/(1<<20))
		}
	}
}
