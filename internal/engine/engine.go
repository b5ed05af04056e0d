// Package engine holds what every data-store engine (postgres, mysql, files)
// implements: a streaming dump and an atomic wipe-and-restore.
package engine

import (
	"context"
	"io"
)

// Engine is one kind of data store the agent can back up and restore.
type Engine interface {
	// Name is the engine's name as written in the manifest: "postgres", "mysql" or "files".
	Name() string
	// Check connects to the target and fails with a precise error when it is
	// unreachable or the credentials are refused. It changes nothing.
	Check(ctx context.Context) error
	// Version describes the server and the dump tool, for the manifest.
	Version(ctx context.Context) (string, error)
	// Dump streams the engine's own dump format to w. It returns an error,
	// never a partial success, when the dump does not complete.
	Dump(ctx context.Context, w io.Writer) error
	// Restore replaces the target's data with the dump read from r, atomically:
	// on any error the target is left exactly as it was, but a *Warning, which
	// says the data was restored. r holds plaintext that has already been
	// verified in full.
	Restore(ctx context.Context, r io.Reader) error
}
