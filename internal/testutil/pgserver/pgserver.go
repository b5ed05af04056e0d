// Package pgserver starts a throwaway PostgreSQL server for tests: initdb in a
// temporary directory, postgres listening on 127.0.0.1 on a free port,
// password (scram-sha-256) authentication for a generated superuser password.
//
// Tests run as root on our machines and PostgreSQL refuses to run as root, so
// when the test process is root, initdb and postgres run as the "postgres" OS
// user and the data directory is handed to that user.
//
// When PostgreSQL is not installed, Start fails the test (make test installs it).
package pgserver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/testutil/opentx"
)

// ErrNotInstalled is returned by Launch when no PostgreSQL server binaries are found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, postgres) not found; install the postgresql package")

// Server is a running PostgreSQL server.
type Server struct {
	// Host is always 127.0.0.1.
	Host string
	// PodHost is the other address the server listens on, for pods of a
	// real node (StartOn), or empty.
	PodHost string
	// Port is the TCP port the server listens on.
	Port int
	// User is the superuser, "postgres".
	User string
	// Password is the superuser's generated password.
	Password string
	// BinDir holds initdb, postgres, psql.
	BinDir string
	// Dir is the temporary directory with the data directory and the socket.
	Dir string

	cmd     *exec.Cmd
	done    chan struct{}
	log     *bytes.Buffer
	cred    *syscall.Credential
	sslMode string // of Env: disable until EnableTLS
}

// BinDir finds the directory with the PostgreSQL server binaries: the newest
// /usr/lib/postgresql/<major>/bin, or `pg_config --bindir`.
func BinDir() (string, error) {
	majors, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(majors, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(majors[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(majors[j])))
		return a > b
	})
	for _, d := range majors {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Start launches a server for one test and stops it at t.Cleanup. It fails
// the test when PostgreSQL is not installed.
func Start(tb testing.TB) *Server { tb.Helper(); return StartOn(tb, "") }

// StartOn is Start with the server also listening on podHost (a real
// node's bridge address), where it takes password logins from any address.
func StartOn(tb testing.TB, podHost string) *Server {
	tb.Helper()
	s, err := LaunchOn(podHost)
	if err != nil {
		FailStart(tb, err)
	}
	tb.Cleanup(func() { s.Stop() })
	return s
}

// FailStart ends the test for a Launch error. It never skips: a suite
// that cannot run fails loudly (make test installs PostgreSQL: hack/setup.sh).
func FailStart(tb testing.TB, err error) {
	tb.Helper()
	tb.Fatalf("starting PostgreSQL: %v", err)
}

// Launch starts a server. The caller must call Stop. Use it from TestMain to
// share one server between the tests of a package.
func Launch() (*Server, error) { return LaunchOn("") }

// LaunchOn is Launch with the server also listening on podHost, if not empty.
func LaunchOn(podHost string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	psql := filepath.Join(bin, "psql")
	if !isExec(psql) {
		if p, err := exec.LookPath("psql"); err == nil {
			psql = p
		} else {
			return nil, fmt.Errorf("psql not found: %w", ErrNotInstalled)
		}
	}
	dir, err := os.MkdirTemp("", "pgserver-")
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", PodHost: podHost, User: "postgres", Password: randomHex(16), BinDir: bin, Dir: dir, log: &bytes.Buffer{}}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if s.cred != nil {
		if err := os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", s.User, "--pwfile="+pwfile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	_ = os.Remove(pwfile)
	if podHost != "" {
		// Pods connect from their own addresses, with the password.
		hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		_, err = hba.WriteString("host all all 0.0.0.0/0 scram-sha-256\n")
		if cerr := hba.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}

	for attempt := 0; ; attempt++ {
		s.Port, err = freePort()
		if err != nil {
			return nil, err
		}
		err = s.startPostgres(data)
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *Server) startPostgres(data string) error {
	s.log.Reset()
	cmd := exec.Command(filepath.Join(s.BinDir, "postgres"), "-D", data,
		"-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses="+strings.Join(slices.DeleteFunc([]string{"127.0.0.1", s.PodHost}, func(h string) bool { return h == "" }), ","),
		"-c", "unix_socket_directories="+s.Dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=50", "-c", "shared_buffers=32MB")
	cmd.Dir = s.Dir
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.cmd = nil
			return fmt.Errorf("postgres exited early: %s", s.log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := s.Query("postgres", "SELECT 1"); err == nil {
			return nil
		}
	}
	s.Stop()
	return fmt.Errorf("postgres did not become ready: %s", s.log.String())
}

// Stop shuts the server down (fast shutdown, then SIGKILL) and removes its directory.
func (s *Server) Stop() {
	s.kill()
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// Kill stops the server process but keeps its data directory, so a test can
// check what a client does when the server goes away.
func (s *Server) Kill() { s.kill() }

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// Env is the libpq environment for connecting as the superuser to database db.
func (s *Server) Env(db string) []string {
	return append(os.Environ(),
		"PGHOST="+s.Host, "PGPORT="+strconv.Itoa(s.Port), "PGUSER="+s.User,
		"PGPASSWORD="+s.Password, "PGDATABASE="+db, "PGSSLMODE="+cmp.Or(s.sslMode, "disable"), "PGCONNECT_TIMEOUT=5")
}

// EnableTLS makes the server serve certPEM and keyPEM and refuse every TCP
// connection without TLS (pg_hba.conf: hostnossl ... reject). Env and Query
// then connect with sslmode=require.
func (s *Server) EnableTLS(tb testing.TB, certPEM, keyPEM []byte) {
	tb.Helper()
	data := filepath.Join(s.Dir, "data")
	for name, b := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM} {
		path := filepath.Join(data, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			tb.Fatal(err)
		}
		if s.cred != nil {
			if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	s.MustQuery(tb, "postgres", "ALTER SYSTEM SET ssl = on")
	hbaPath := filepath.Join(data, "pg_hba.conf")
	hba, err := os.ReadFile(hbaPath)
	if err != nil {
		tb.Fatal(err)
	}
	// The first matching line wins: these come before every host line.
	hba = append([]byte("hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n"), hba...)
	if err := os.WriteFile(hbaPath, hba, 0o600); err != nil {
		tb.Fatal(err)
	}
	s.MustQuery(tb, "postgres", "SELECT pg_reload_conf()")
	s.sslMode = "require"
	// The reload is asynchronous: wait until a TLS connection is served.
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := s.Query("postgres", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
		if err == nil && out == "t" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("postgres did not start serving TLS: %q, %v; log: %s", out, err, s.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Query runs sql in database db with psql (unaligned, tuples only, stop on
// error) and returns its standard output with the final newline trimmed.
func (s *Server) Query(db, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.psql(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-")
	cmd.Env = s.Env(db)
	cmd.Stdin = strings.NewReader(sql)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

// MustQuery is Query that fails the test on error.
func (s *Server) MustQuery(tb testing.TB, db, sql string) string {
	tb.Helper()
	out, err := s.Query(db, sql)
	if err != nil {
		tb.Fatalf("query in %s failed: %v\n%s", db, err, sql)
	}
	return out
}

// CreateDatabase creates database name (owned by owner, when not empty).
func (s *Server) CreateDatabase(tb testing.TB, name, owner string) {
	tb.Helper()
	q := "CREATE DATABASE " + quoteIdent(name)
	if owner != "" {
		q += " OWNER " + quoteIdent(owner)
	}
	s.MustQuery(tb, "postgres", q)
}

// CreateUser creates a login role with a password.
func (s *Server) CreateUser(tb testing.TB, name, password string) {
	tb.Helper()
	s.MustQuery(tb, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", quoteIdent(name), strings.ReplaceAll(password, "'", "''")))
}

func (s *Server) psql() string {
	if p := filepath.Join(s.BinDir, "psql"); isExec(p) {
		return p
	}
	return "psql"
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
func FreePort() (int, error) { return freePort() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LockTable holds an ACCESS EXCLUSIVE lock on a table from a psql session,
// so that a pg_dump of the database waits on it; release ends the session
// (it also ends at the test's cleanup).
func (s *Server) LockTable(tb testing.TB, db, table string) (release func()) {
	tb.Helper()
	cmd := exec.Command(filepath.Join(s.BinDir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1")
	cmd.Env = s.Env(db)
	return opentx.Hold(tb, cmd, fmt.Sprintf("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE; SELECT 'held';", table))
}

// WaitLockWaiter waits (up to three minutes) until a session of the
// application application waits on a lock in db, as a pg_dump does behind
// LockTable.
func (s *Server) WaitLockWaiter(tb testing.TB, db, application string) {
	tb.Helper()
	q := fmt.Sprintf(`SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND application_name = '%s' AND wait_event_type = 'Lock'`, db, application)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if out, _ := s.Query("postgres", q); out == "1" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no %s session waited on a lock in %s", application, db)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
