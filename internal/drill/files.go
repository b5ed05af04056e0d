package drill

import (
	"context"
	"fmt"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/engine/files"
	"github.com/backstop-io/backstop/internal/manifest"
)

// filesSandbox extracts a files backup into the drill's scratch directory
// (or a scratch target's path) with the files engine's own restore.
type filesSandbox struct {
	*starting
	*files.Engine
	path string
	desc string
}

func newFilesSandbox(path string) (sandbox, error) {
	e, err := files.New(engine.Options{Path: path})
	if err != nil {
		return nil, engine.Errorf(reasonInvalidInput, "%v", err)
	}
	s := &filesSandbox{starting: newStarting(), Engine: e, path: path, desc: "the drill's scratch volume"}
	s.finish(nil)
	return s, nil
}

// Check passes at once: the scratch directory is the drill's own, and need
// not exist yet.
func (s *filesSandbox) Check(ctx context.Context) error { return s.wait(ctx) }

func (s *filesSandbox) checkInventory(_ context.Context, m *manifest.Manifest, r *Report) {
	got, err := files.TreeDigest(s.path)
	if err != nil {
		r.add(CheckFiles, fmt.Errorf("reading the extracted tree: %v", err), "")
		return
	}
	r.Files, r.Bytes = got.Entries, got.Bytes
	if m.Inventory == nil || m.Inventory.Files == nil {
		return
	}
	want := *m.Inventory.Files
	switch {
	case got.Entries != want.Entries || got.Bytes != want.Bytes:
		r.add(CheckFiles, fmt.Errorf("the extracted tree has %d entries and %d bytes of files, the backup recorded %d and %d", got.Entries, got.Bytes, want.Entries, want.Bytes), "")
	case got.TreeSHA256 != want.TreeSHA256:
		r.add(CheckFiles, fmt.Errorf("the extracted tree's digest differs from the one the backup recorded (same count and size: some content, name or link differs)"), "")
	default:
		r.add(CheckFiles, nil, fmt.Sprintf("%d entries, %d bytes of files, tree digest as the backup recorded", got.Entries, got.Bytes))
	}
}

func (s *filesSandbox) runQuery(context.Context, string) (string, error) {
	return "", fmt.Errorf("a files backup has no database to query")
}

func (s *filesSandbox) describe() string { return s.desc }

func (s *filesSandbox) stop() {}
