package engine_test

import (
	"math/rand/v2"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
	_ "github.com/backstop-io/backstop/internal/engine/files"
	_ "github.com/backstop-io/backstop/internal/engine/mysql"
	_ "github.com/backstop-io/backstop/internal/engine/postgres"
)

// An inventory counter's Write never fails, whatever it is given: a dump it
// does not understand must not fail the backup that streams through it.
func TestInventory_WriteNeverFails(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 1<<20)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	for _, name := range []string{"postgres", "mysql", "files"} {
		inv := engine.NewInventory(name)
		if inv == nil {
			t.Fatalf("%s: no inventory registered", name)
		}
		for off := 0; off < len(junk); off += 4093 {
			if n, err := inv.Write(junk[off:min(off+4093, len(junk))]); err != nil || n != min(4093, len(junk)-off) {
				t.Fatalf("%s: Write = %d, %v", name, n, err)
			}
		}
		_, _ = inv.Result()
		if err := inv.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}
}
