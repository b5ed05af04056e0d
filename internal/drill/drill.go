// Package drill proves that a backup restores: it restores the backup where
// it can do no harm, into a throwaway server started inside the drill's own
// pod (or a scratch target named for it), with the same verify-then-load code
// as a real restore, then checks what arrived against what the backup
// recorded while it streamed (manifest.Inventory) and against the user's own
// SQL checks.
//
// A drill never touches the target the backup was taken from: it is given
// neither its address nor its credentials.
package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/humanize"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/pipeline"
)

// Reasons a drill fails for, besides the pipeline's own (IntegrityMismatch,
// DecryptionFailed, RestoreFailed, ...).
const (
	ReasonCheckFailed       = "CheckFailed"
	ReasonScratchTooSmall   = "ScratchTooSmall"
	ReasonDrillServerFailed = "DrillServerFailed"
	reasonInvalidInput      = "InvalidInput"
)

// Names of the checks every drill runs before the user's.
const (
	CheckIntegrity = "integrity"
	CheckTables    = "tables"
	CheckFiles     = "files"
)

// Check is a user check: a SQL query run on the restored data, whose output
// must be exactly Expect (surrounding white space aside).
type Check struct {
	Name   string `json:"name"`
	SQL    string `json:"sql"`
	Expect string `json:"expect"`
}

// ParseChecks decodes the user checks (a JSON array) and checks their shape.
func ParseChecks(s string) ([]Check, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var checks []Check
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&checks); err != nil {
		return nil, fmt.Errorf("user checks: %v", err)
	}
	seen := map[string]bool{}
	for i, c := range checks {
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("user check %d has no name", i+1)
		case c.Name == CheckIntegrity || c.Name == CheckTables || c.Name == CheckFiles:
			return nil, fmt.Errorf("user check %q: the name is taken by a built-in check", c.Name)
		case seen[c.Name]:
			return nil, fmt.Errorf("user check %q is given twice", c.Name)
		case strings.TrimSpace(c.SQL) == "":
			return nil, fmt.Errorf("user check %q has no sql", c.Name)
		}
		seen[c.Name] = true
	}
	return checks, nil
}

// Options is one drill.
type Options struct {
	// Read locates and opens the artifact; its ScratchDir is set by Run.
	Read pipeline.ReadOptions
	// ScratchDir is the drill's own space (the pod's emptyDir): the
	// download and the throwaway server's data go there.
	ScratchDir string
	// ScratchLimit is the size limit of ScratchDir in bytes (the emptyDir's
	// sizeLimit, which the file system's free space does not show); 0: none.
	ScratchLimit int64
	// Checks are the user's SQL checks.
	Checks []Check
	// Target, when IntoTarget is set, is a scratch target to restore into
	// instead of a throwaway server.
	Target     engine.Options
	IntoTarget bool
}

// Report is what a drill found. It is part of the agent's Result, which the
// kubelet caps at 4 KiB: messages are short.
type Report struct {
	// Checks run, in order: "integrity", then "tables" (postgres, mysql)
	// or "files", then each user check by its name. A check that did not
	// run (an earlier step failed) is left out.
	Checks []CheckResult `json:"checks"`
	// RestoreSeconds is the time to restore: from the start of the
	// download to the restored data being ready, server start included.
	RestoreSeconds float64 `json:"restoreSeconds,omitempty"`
	// Tables and Rows restored (postgres, mysql); Files and Bytes (files).
	Tables int   `json:"tables,omitempty"`
	Rows   int64 `json:"rows,omitempty"`
	Files  int64 `json:"files,omitempty"`
	Bytes  int64 `json:"bytes,omitempty"`
	// Server describes the throwaway server (e.g. "PostgreSQL 15.14"), or
	// names the scratch target.
	Server string `json:"server,omitempty"`
}

// CheckResult is one check of a drill.
type CheckResult struct {
	Name    string `json:"name"`
	Passed  bool   `json:"passed"`
	Message string `json:"message,omitempty"`
}

// maxCheckMessage keeps a report within the termination message.
const maxCheckMessage = 160

func (r *Report) add(name string, err error, passed string) {
	c := CheckResult{Name: name, Passed: err == nil, Message: passed}
	if err != nil {
		c.Message = err.Error()
	}
	if len(c.Message) > maxCheckMessage {
		c.Message = c.Message[:maxCheckMessage-3] + "..."
	}
	r.Checks = append(r.Checks, c)
}

// failed returns the error a report with a failed check ends the drill with.
func (r *Report) failed() error {
	var names []string
	var first string
	for _, c := range r.Checks {
		if !c.Passed {
			names = append(names, c.Name)
			if first == "" {
				first = c.Name + ": " + c.Message
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	return engine.Errorf(ReasonCheckFailed, "%d of %d checks failed (%s); %s", len(names), len(r.Checks), strings.Join(names, ", "), first)
}

// Run restores the artifact into a throwaway server (or the scratch target),
// checks it, and reports. It returns the report (nil when the drill stopped
// before restoring), the artifact's manifest when it was read, and an error
// with a reason when the drill failed, a check included.
func Run(ctx context.Context, o Options) (*Report, *manifest.Manifest, error) {
	if o.ScratchDir == "" {
		return nil, nil, engine.Errorf(reasonInvalidInput, "--scratch-dir is required: the drill's server and download need a place of their own")
	}
	m, err := pipeline.ReadManifest(ctx, o.Read)
	if err != nil {
		return nil, nil, err
	}
	if m.Engine == "files" && len(o.Checks) > 0 {
		return nil, m, engine.Errorf(reasonInvalidInput, "user checks are SQL queries; a files backup has no database to run them in")
	}
	if err := checkSpace(o, m); err != nil {
		return nil, m, err
	}
	dir, err := os.MkdirTemp(o.ScratchDir, "drill-")
	if err != nil {
		return nil, m, engine.Errorf(reasonInvalidInput, "creating the drill's directory in %s: %v", o.ScratchDir, errors.Unwrap(err))
	}
	defer os.RemoveAll(dir)

	start := time.Now()
	var sb sandbox
	switch {
	case o.IntoTarget:
		sb, err = newScratchTarget(m.Engine, o.Target)
	default:
		sb, err = newThrowaway(ctx, m, dir)
	}
	if err != nil {
		return nil, m, err
	}
	defer sb.stop()

	rep := &Report{}
	ro := o.Read
	ro.ScratchDir = dir
	ro.Engine = m.Engine
	verified := false
	ro.Verified = func() { verified = true }
	ro.VerifyWhateverTheTarget = true
	// A warning (a files drill's old tree left behind) is no failure: the
	// data arrived, and the checks below look at it.
	if _, err := pipeline.Restore(ctx, ro, sb); err != nil {
		if verified {
			rep.add(CheckIntegrity, nil, integrityPassed(m))
			rep.Server = sb.describe()
			return rep, m, err
		}
		switch pipeline.ReasonOf(err) {
		case pipeline.ReasonIntegrityMismatch, pipeline.ReasonDumpIncomplete, pipeline.ReasonDecryptionFailed, pipeline.ReasonEngineMismatch:
			rep.add(CheckIntegrity, err, "")
			return rep, m, err
		}
		return nil, m, err
	}
	rep.RestoreSeconds = time.Since(start).Seconds()
	rep.Server = sb.describe()
	rep.add(CheckIntegrity, nil, integrityPassed(m))
	sb.checkInventory(ctx, m, rep)
	for _, c := range o.Checks {
		got, err := runCheck(ctx, sb, c)
		rep.add(c.Name, err, fmt.Sprintf("returned %q", got))
	}
	return rep, m, rep.failed()
}

func integrityPassed(m *manifest.Manifest) string {
	return fmt.Sprintf("%s of %s: sizes, SHA-256, age authentication and the dump's completeness verified", humanize.Bytes(m.StoredSize), m.DataObject)
}

func runCheck(ctx context.Context, sb sandbox, c Check) (string, error) {
	out, err := sb.runQuery(ctx, c.SQL)
	if err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, "ERROR"); i >= 0 {
			msg = msg[i:] // the server's words, without the client's echo of the query
		}
		return "", fmt.Errorf("the query failed: %s", msg)
	}
	got := strings.TrimSpace(out)
	if want := strings.TrimSpace(c.Expect); got != want {
		return got, fmt.Errorf("returned %q, want %q", got, want)
	}
	return got, nil
}

// sandbox is where a drill restores: a throwaway server or a scratch
// target. It is the engine the restore pipeline loads into, and answers the
// checks afterwards.
type sandbox interface {
	engine.Engine
	checkInventory(ctx context.Context, m *manifest.Manifest, r *Report)
	runQuery(ctx context.Context, sql string) (string, error)
	describe() string
	stop()
}

// restoredSize estimates the space the restored data takes: a database's
// files hold more than its dump (indexes, page overhead; a MariaDB restore
// also stages each database before swapping it in).
func restoredSize(m *manifest.Manifest) int64 {
	switch m.Engine {
	case "files":
		return m.PlaintextSize
	case "mysql":
		return 3 * m.PlaintextSize
	}
	return 2*m.PlaintextSize + 64<<20 // the cluster's own files and WAL
}

// checkSpace fails before anything is downloaded when the scratch space
// cannot hold the artifact and the restored data.
func checkSpace(o Options, m *manifest.Manifest) error {
	need := m.StoredSize
	if !o.IntoTarget {
		need += restoredSize(m)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(o.ScratchDir, &st); err != nil {
		return engine.Errorf(reasonInvalidInput, "--scratch-dir %s: %v", o.ScratchDir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	have, what := free, "free on its file system"
	if o.ScratchLimit > 0 {
		if used, err := dirSize(o.ScratchDir); err == nil && o.ScratchLimit-used < have {
			have, what = o.ScratchLimit-used, fmt.Sprintf("left under its size limit of %s", humanize.Bytes(o.ScratchLimit))
		}
	}
	if need > have {
		return engine.Errorf(ReasonScratchTooSmall, "the drill needs about %s of scratch space (the %s artifact and %s of restored data) but has %s %s; give it more (scratchSize) or restore into a scratch target",
			humanize.Bytes(need), humanize.Bytes(m.StoredSize), humanize.Bytes(need-m.StoredSize), humanize.Bytes(max(have, 0)), what)
	}
	return nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}
