package engine

import (
	"io"

	"github.com/backstop-io/backstop/internal/manifest"
)

// Inventory counts what a dump holds while the dump is written through it:
// the tables and their rows of a postgres or mysql dump, the files of an
// archive. It reads only the dump (it never queries the source again) and
// its memory does not grow with the size of the dump, only with the number
// of tables. A backup records the result in the manifest; a verify counts
// the stored plaintext again and compares; a restore drill checks the
// restored data against it.
type Inventory interface {
	// Write never fails: a dump the counter does not understand is
	// reported by Result.
	io.Writer
	// Result is called after the last byte; it returns what was counted.
	Result() (*manifest.Inventory, error)
	// Close releases what the counter holds. It is called once, after
	// Result or instead of it when the dump is abandoned.
	io.Closer
}

var inventories = map[string]func() Inventory{}

// RegisterInventory makes the inventory counter of an engine's dumps
// available by the engine's name. Engines call it from init().
func RegisterInventory(name string, f func() Inventory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := inventories[name]; ok {
		panic("inventory " + name + " registered twice")
	}
	inventories[name] = f
}

// NewInventory returns a new inventory counter for the dumps of engine
// name, or nil when that engine has none.
func NewInventory(name string) Inventory {
	registryMu.RLock()
	f := inventories[name]
	registryMu.RUnlock()
	if f == nil {
		return nil
	}
	return f()
}
