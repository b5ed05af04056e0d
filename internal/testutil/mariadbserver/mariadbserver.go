// Package mariadbserver starts a throwaway MariaDB server for tests:
// mariadb-install-db in a temporary directory, mariadbd listening on
// 127.0.0.1 on a free port with its socket in that directory, and a root
// account with a generated password.
//
// When the test process is root, the server runs as the "mysql" OS user and
// the data directory is handed to that user.
//
// When MariaDB is not installed, Start fails the test (make test installs it).
package mariadbserver

import (
	"bytes"
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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/testutil/opentx"
)

// ErrNotInstalled is returned by Launch when the MariaDB server or client is missing.
var ErrNotInstalled = errors.New("MariaDB server/client binaries (mariadbd, mariadb-install-db, mariadb) not found; install mariadb-server and mariadb-client")

// Server is a running MariaDB server.
type Server struct {
	// Host is always 127.0.0.1.
	Host string
	// PodHost is the other address the server listens on, for pods of a
	// real node (StartOn), or empty.
	PodHost string
	// Port is the TCP port the server listens on.
	Port int
	// User is "root".
	User string
	// Password is root's generated password.
	Password string
	// Socket is the server's Unix socket.
	Socket string
	// Dir is the temporary directory with the data directory and the socket.
	Dir string

	mariadbd, installDB, client string
	cmd                         *exec.Cmd
	done                        chan struct{}
	log                         *bytes.Buffer
	cred                        *syscall.Credential
	tlsArgs                     []string // of mariadbd, set by EnableTLS
}

func lookup(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
			p := filepath.Join(d, n)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// Start launches a server for one test and stops it at t.Cleanup. It fails
// the test when MariaDB is not installed.
func Start(tb testing.TB) *Server { tb.Helper(); return StartOn(tb, "") }

// StartOn is Start with the server also listening on podHost (a real
// node's bridge address).
func StartOn(tb testing.TB, podHost string) *Server {
	tb.Helper()
	s, err := LaunchOn(podHost)
	if err != nil {
		FailStart(tb, err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// FailStart ends the test for a Launch error. It never skips: a suite
// that cannot run fails loudly (make test installs MariaDB: hack/setup.sh).
func FailStart(tb testing.TB, err error) {
	tb.Helper()
	tb.Fatalf("starting MariaDB: %v", err)
}

// Launch starts a server. The caller must call Stop. Use it from TestMain to
// share one server between the tests of a package.
func Launch() (*Server, error) { return LaunchOn("") }

// LaunchOn is Launch with the server also listening on podHost, if not empty.
func LaunchOn(podHost string) (*Server, error) {
	s := &Server{
		Host: "127.0.0.1", PodHost: podHost, User: "root", Password: randomHex(16), log: &bytes.Buffer{},
		mariadbd:  lookup("mariadbd", "mysqld"),
		installDB: lookup("mariadb-install-db", "mysql_install_db"),
		client:    lookup("mariadb", "mysql"),
	}
	if s.mariadbd == "" || s.installDB == "" || s.client == "" {
		return nil, ErrNotInstalled
	}
	dir, err := os.MkdirTemp("", "mariadbserver-")
	if err != nil {
		return nil, err
	}
	s.Dir = dir
	s.Socket = filepath.Join(dir, "mysqld.sock")
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("mysql")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the mysql OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	install := exec.Command(s.installDB, "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	install.Dir = dir
	install.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.startServer(data)
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	// root@localhost has no password after install; give it one, and a TCP
	// account for 127.0.0.1 (the server skips name resolution).
	pw := strings.ReplaceAll(s.Password, "'", "''")
	setup := fmt.Sprintf(`CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '%[1]s';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '%[1]s';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED BY '%[1]s';
FLUSH PRIVILEGES;`, pw)
	cmd := exec.Command(s.client, "--no-defaults", "--protocol=socket", "--socket="+s.Socket, "-uroot", "--batch")
	cmd.Stdin = strings.NewReader(setup)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("setting the root password: %v: %s", err, out)
	}
	if _, err := s.Query("", "SELECT 1"); err != nil {
		return nil, fmt.Errorf("connecting over TCP: %w", err)
	}
	ok = true
	return s, nil
}

func (s *Server) startServer(data string) error {
	s.log.Reset()
	bind := "127.0.0.1"
	if s.PodHost != "" {
		bind += "," + s.PodHost
	}
	cmd := exec.Command(s.mariadbd, "--no-defaults", "--datadir="+data,
		"--port="+strconv.Itoa(s.Port), "--bind-address="+bind, "--socket="+s.Socket,
		"--pid-file="+filepath.Join(s.Dir, "mysqld.pid"), "--skip-name-resolve",
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=0",
		"--skip-log-bin", "--event-scheduler=OFF", "--log-error="+filepath.Join(s.Dir, "error.log"))
	cmd.Args = append(cmd.Args, s.tlsArgs...)
	cmd.Dir = s.Dir
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting mariadbd: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.cmd = nil
			errlog, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
			return fmt.Errorf("mariadbd exited early: %s%s", s.log.String(), tail(errlog, 4000))
		case <-time.After(100 * time.Millisecond):
		}
		c := exec.Command(s.client, "--no-defaults", "--protocol=socket", "--socket="+s.Socket, "-uroot", "--batch", "-e", "SELECT 1")
		// Refusing root without its password (set after the first start)
		// is an answer too.
		if out, err := c.CombinedOutput(); err == nil || bytes.Contains(out, []byte("Access denied")) {
			return nil
		}
	}
	s.kill()
	errlog, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
	return fmt.Errorf("mariadbd did not become ready: %s", tail(errlog, 4000))
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Stop shuts the server down (SIGTERM, then SIGKILL) and removes its directory.
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
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// EnableTLS restarts the server serving certPEM and keyPEM, and refusing
// every TCP connection without TLS (require_secure_transport). Query then
// connects with --ssl. The data is kept.
func (s *Server) EnableTLS(tb testing.TB, certPEM, keyPEM []byte) {
	tb.Helper()
	args := []string{"--require-secure-transport=ON"}
	for _, f := range []struct {
		flag, name string
		pem        []byte
	}{{"--ssl-cert", "server.crt", certPEM}, {"--ssl-key", "server.key", keyPEM}} {
		path := filepath.Join(s.Dir, f.name)
		if err := os.WriteFile(path, f.pem, 0o600); err != nil {
			tb.Fatal(err)
		}
		if s.cred != nil {
			if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				tb.Fatal(err)
			}
		}
		args = append(args, f.flag+"="+path)
	}
	s.kill()
	s.tlsArgs = args
	if err := s.startServer(filepath.Join(s.Dir, "data")); err != nil {
		tb.Fatalf("restarting MariaDB with TLS: %v", err)
	}
	if out, err := s.Query("", "SHOW STATUS LIKE 'Ssl_cipher'"); err != nil || !strings.Contains(out, "\t") || strings.HasSuffix(out, "\t") {
		tb.Fatalf("MariaDB does not serve TLS: %q, %v", out, err)
	}
}

// Query runs sql (several statements allowed) as root over TCP, in database db
// when not empty, and returns the tab-separated rows without column names,
// with the final newline trimmed.
func (s *Server) Query(db, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	args := []string{"--no-defaults", "--protocol=tcp", "--host=" + s.Host, "--port=" + strconv.Itoa(s.Port),
		"--user=" + s.User, "--batch", "--skip-column-names", "--raw", "--default-character-set=utf8mb4"}
	if s.tlsArgs != nil {
		args = append(args, "--ssl")
	}
	if db != "" {
		args = append(args, "--database="+db)
	}
	cmd := exec.CommandContext(ctx, s.client, args...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+s.Password)
	cmd.Stdin = strings.NewReader(sql)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mariadb: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

// MustQuery is Query that fails the test on error.
func (s *Server) MustQuery(tb testing.TB, db, sql string) string {
	tb.Helper()
	out, err := s.Query(db, sql)
	if err != nil {
		tb.Fatalf("query in %q failed: %v\n%s", db, err, sql)
	}
	return out
}

// HoldTable keeps a transaction open in a session of its own that has read
// db.table, as an application's does: the session holds the table's
// metadata lock until release (or the test's cleanup).
func (s *Server) HoldTable(tb testing.TB, db, table string) (release func()) {
	tb.Helper()
	cmd := exec.Command(s.client, "--no-defaults", "--protocol=tcp", "--host="+s.Host, "--port="+strconv.Itoa(s.Port),
		"--user="+s.User, "--batch", "--unbuffered", "--skip-column-names")
	if s.tlsArgs != nil {
		cmd.Args = append(cmd.Args, "--ssl")
	}
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+s.Password)
	return opentx.Hold(tb, cmd, fmt.Sprintf("SELECT COUNT(*) FROM %s.%s; SELECT 'held';", QuoteIdent(db), QuoteIdent(table)))
}

// CreateDatabase creates database name.
func (s *Server) CreateDatabase(tb testing.TB, name string) {
	tb.Helper()
	s.MustQuery(tb, "", "CREATE DATABASE "+QuoteIdent(name))
}

// CreateUser creates user@'127.0.0.1' with a password and grants it all
// privileges on the given database patterns (e.g. "app", "backstop\\_%").
func (s *Server) CreateUser(tb testing.TB, name, password string, dbs ...string) {
	tb.Helper()
	q := fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s';\n", esc(name), esc(password))
	for _, db := range dbs {
		q += fmt.Sprintf("GRANT ALL PRIVILEGES ON %s.* TO '%s'@'127.0.0.1';\n", QuoteIdent(db), esc(name))
	}
	s.MustQuery(tb, "", q)
}

// QuoteIdent quotes a MariaDB identifier with backticks.
func QuoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func esc(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") }

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
