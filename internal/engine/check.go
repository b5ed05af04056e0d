package engine

import (
	"fmt"
	"io"
)

// DumpCheck reads a whole dump, as it is written, and tells whether it is
// complete: a dump tool that exits 0 after writing part of its output (a
// killed connection it did not notice, a wrapper that lost its exit
// status) must not become a backup. A backup runs it before writing the
// manifest; a verify runs it again on the stored plaintext.
type DumpCheck interface {
	io.Writer
	// Complete is called after the last byte. It returns what was checked,
	// or an error with ReasonDumpIncomplete.
	Complete() (Completeness, error)
}

// Completeness is what a DumpCheck found; the manifest records it.
type Completeness struct {
	// Method names what was checked, e.g. "pg_dump completion trailer".
	Method string
	// Entries and Bytes are what the check counted: the entries of an
	// archive and the bytes of its regular files (files), the databases of
	// a dump (mysql, Bytes nil). Nil when the check does not count.
	Entries, Bytes *int64
}

// DumpCounter is implemented by engines that count what their Dump wrote
// (the entries and file bytes of an archive, the databases of a dump).
// After a Dump, the counts must equal the ones the engine's DumpCheck
// finds in the output (bytes only where the check counts them).
type DumpCounter interface {
	DumpCounts() (entries, bytes int64)
}

var checks = map[string]func() DumpCheck{}

// RegisterDumpCheck makes the completeness check of an engine's dumps
// available by the engine's name. Engines call it from init().
func RegisterDumpCheck(name string, f func() DumpCheck) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := checks[name]; ok {
		panic(fmt.Sprintf("dump check %q registered twice", name))
	}
	checks[name] = f
}

// NewDumpCheck returns a new completeness check for the dumps of engine
// name, or nil when that engine has none.
func NewDumpCheck(name string) DumpCheck {
	registryMu.RLock()
	f := checks[name]
	registryMu.RUnlock()
	if f == nil {
		return nil
	}
	return f()
}
