package engine_test

import (
	"archive/tar"
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
	_ "github.com/backstop-io/backstop/internal/engine/files"
	_ "github.com/backstop-io/backstop/internal/engine/mysql"
	_ "github.com/backstop-io/backstop/internal/engine/postgres"
)

// An inventory counter's Write does not fail on bytes it cannot parse
// (random bytes, or a dump's opening followed by them): a dump it does not
// understand is reported by Result, after the last byte, not by a Write
// that would break the stream through it midway.
func TestInventory_WriteNeverFails(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 1<<20)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	var tarStart bytes.Buffer
	tw := tar.NewWriter(&tarStart)
	if err := tw.WriteHeader(&tar.Header{Name: "data/file", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	openings := map[string][]byte{
		"postgres": []byte("CREATE TABLE public.t (a text);\nCOPY public.t (a) FROM stdin;\nx\t"),
		"mysql":    []byte("CREATE TABLE `t` (`a` text);\nINSERT INTO `t` VALUES ('x',"),
		"files":    tarStart.Bytes(),
	}
	for name, opening := range openings {
		for _, input := range [][]byte{junk, append(append([]byte{}, opening...), junk...)} {
			inv := engine.NewInventory(name)
			if inv == nil {
				t.Fatalf("%s: no inventory registered", name)
			}
			for off := 0; off < len(input); off += 4093 {
				if n, err := inv.Write(input[off:min(off+4093, len(input))]); err != nil || n != min(4093, len(input)-off) {
					t.Fatalf("%s: Write = %d, %v", name, n, err)
				}
			}
			_, _ = inv.Result()
			if err := inv.Close(); err != nil {
				t.Errorf("%s: Close: %v", name, err)
			}
		}
	}
}
