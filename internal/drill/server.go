package drill

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
)

// startTimeout bounds a throwaway server's start.
const startTimeout = 2 * time.Minute

// server is a throwaway database server: a process in the drill's pod, its
// data in the drill's scratch directory, discarded at the end.
type server struct {
	name string // "PostgreSQL", "MariaDB"
	cmd  *exec.Cmd
	done chan struct{}
	log  *logTail
}

// serverCredential is who a throwaway server runs as. Database servers
// refuse to run as root; a drill runs as the image's non-root user, but
// where the agent is root (a node's test runner, a custom image) the
// server runs as its own OS user, or nobody.
func serverCredential(dir string, users ...string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	uid, gid := 65534, 65534
	for _, name := range users {
		if u, err := user.Lookup(name); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
			break
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *server) start(cred *syscall.Credential, dir, bin string, args ...string) error {
	s.log = &logTail{max: 4096}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return engine.Errorf(ReasonDrillServerFailed, "starting %s: %v", s.name, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	return nil
}

// waitReady polls ready until it succeeds, the server exits, or the start
// times out; the error carries the server's log tail.
func (s *server) waitReady(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return engine.Errorf(ReasonDrillServerFailed, "the throwaway %s server exited during its start: %s", s.name, s.log.lines())
		case <-ctx.Done():
			return engine.Errorf(ReasonDrillServerFailed, "the throwaway %s server did not accept connections within %s: %v; its log: %s", s.name, startTimeout, err, s.log.lines())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop kills the server: its data is thrown away, so nothing needs flushing.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// runSetup runs a server's setup tool (initdb, mariadb-install-db).
func runSetup(ctx context.Context, what string, cred *syscall.Credential, dir, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "TZ=UTC"}
	out := &logTail{max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Run(); err != nil {
		return engine.Errorf(ReasonDrillServerFailed, "%s failed (%v): %s", what, err, out.lines())
	}
	return nil
}

// logTail keeps the last bytes of a server's output.
type logTail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *logTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// lines returns the last few lines, joined by "; ".
func (t *logTail) lines() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ls := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	if len(ls) > 5 {
		ls = ls[len(ls)-5:]
	}
	if len(ls) == 1 && ls[0] == "" {
		return "(no output)"
	}
	return strings.Join(ls, "; ")
}

// findBinary looks for a server binary in PATH, then in dirs.
func findBinary(names []string, dirs ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range dirs {
			if p := filepath.Join(d, n); isExec(p) {
				return p
			}
		}
	}
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newThrowaway starts the throwaway server for the artifact's engine. The
// server starts while the artifact downloads: its start is hidden behind
// the download, and the pipeline waits for it only when it checks the
// target, after the artifact was verified.
func newThrowaway(ctx context.Context, m *manifest.Manifest, dir string) (sandbox, error) {
	switch m.Engine {
	case "postgres":
		return startPostgres(ctx, m, filepath.Join(dir, "pg"))
	case "mysql":
		return startMariaDB(ctx, m, filepath.Join(dir, "mysql"))
	case "files":
		return newFilesSandbox(filepath.Join(dir, "files"))
	}
	return nil, engine.Errorf(reasonInvalidInput, "a drill of a %s backup is not supported", m.Engine)
}

// starting is the part of a sandbox that comes up in the background.
type starting struct {
	once  sync.Once
	ready chan struct{}
	err   error
}

func newStarting() *starting { return &starting{ready: make(chan struct{})} }

func (s *starting) finish(err error) { s.once.Do(func() { s.err = err; close(s.ready) }) }

// wait is called by the pipeline's target check, which runs while the
// artifact downloads.
func (s *starting) wait(ctx context.Context) error {
	select {
	case <-s.ready:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tableCounter reads the restored tables and their rows.
type tableCounter interface {
	// existing lists the tables the server holds, by key.
	existing(ctx context.Context) (map[string]bool, error)
	// count returns the rows of the given tables, in order.
	count(ctx context.Context, tables []manifest.TableRows) ([]int64, error)
	key(t manifest.TableRows) string
	display(t manifest.TableRows) string
}

// countBatch bounds the tables counted by one query.
const countBatch = 200

// checkTables compares the restored tables with the manifest's inventory:
// every table there, with the rows the dump held.
func checkTables(ctx context.Context, tc tableCounter, m *manifest.Manifest, r *Report) {
	if m.Inventory == nil {
		// Artifacts of earlier versions: nothing to compare with.
		return
	}
	tables := m.Inventory.Tables
	have, err := tc.existing(ctx)
	if err != nil {
		r.add(CheckTables, fmt.Errorf("listing the restored tables: %v", err), "")
		return
	}
	var missing []string
	var present []manifest.TableRows
	for _, t := range tables {
		if have[tc.key(t)] {
			present = append(present, t)
		} else {
			missing = append(missing, tc.display(t))
		}
	}
	var differ []string
	var rows int64
	for i := 0; i < len(present); i += countBatch {
		batch := present[i:min(i+countBatch, len(present))]
		counts, err := tc.count(ctx, batch)
		if err != nil {
			r.add(CheckTables, fmt.Errorf("counting the restored rows: %v", err), "")
			return
		}
		for j, n := range counts {
			rows += n
			if n != batch[j].Rows {
				differ = append(differ, fmt.Sprintf("%s has %d rows, the backup recorded %d", tc.display(batch[j]), n, batch[j].Rows))
			}
		}
	}
	r.Tables, r.Rows = len(present), rows
	switch {
	case len(missing) > 0:
		sort.Strings(missing)
		r.add(CheckTables, fmt.Errorf("%d of %d tables are missing: %s", len(missing), len(tables), strings.Join(missing, ", ")), "")
	case len(differ) > 0:
		r.add(CheckTables, fmt.Errorf("%d of %d tables differ: %s", len(differ), len(tables), strings.Join(differ, "; ")), "")
	default:
		r.add(CheckTables, nil, fmt.Sprintf("%d tables, %d rows, as the backup recorded", len(tables), rows))
	}
}

// parseCounts reads "index<sep>count" lines.
func parseCounts(out, sep string, n int) ([]int64, error) {
	counts := make([]int64, n)
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		i, c, ok := strings.Cut(line, sep)
		if !ok {
			continue
		}
		idx, err1 := strconv.Atoi(strings.TrimSpace(i))
		cnt, err2 := strconv.ParseInt(strings.TrimSpace(c), 10, 64)
		if err1 != nil || err2 != nil || idx < 0 || idx >= n {
			return nil, fmt.Errorf("unexpected output %q", line)
		}
		counts[idx] = cnt
		seen++
	}
	if seen != n {
		return nil, fmt.Errorf("got %d counts for %d tables", seen, n)
	}
	return counts, nil
}

// major returns the major of the release in s after prefix
// ("PostgreSQL 15.14" → 15), or 0.
func major(s, prefix string) int {
	first, _, _ := strings.Cut(engine.ReleaseOf(s, prefix), ".")
	n, _ := strconv.Atoi(first)
	return n
}

func output(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(bytes.SplitN(out, []byte("\n"), 2)[0]))
}
