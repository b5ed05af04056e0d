package agent

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/testutil/pgserver"
	"github.com/backstop-io/backstop/internal/testutil/testtls"
)

// The agent as a Job runs it, against a PostgreSQL server that requires
// TLS: --tls-mode verify-full with the target's CA bundle (what
// caSecretRef mounts) backs up and restores; the wrong CA fails with a
// reason, stores nothing, and the restore leaves the target as it was.
func TestAgent_PostgresOverVerifiedTLS(t *testing.T) {
	pg := pgserver.Start(t)
	ca := testtls.Serve(t, pg, nil, []net.IP{net.ParseIP("127.0.0.1")})
	pg.CreateDatabase(t, "shop", pg.User)
	pg.CreateDatabase(t, "copy", pg.User)
	pg.MustQuery(t, "shop", "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 250)")
	pg.MustQuery(t, "copy", "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")

	rightCA, otherCA := ca.File(t), testtls.NewCA(t, "another-ca").File(t)
	env := map[string]string{EnvDBUser: pg.User, EnvDBPassword: pg.Password}
	target := func(db, caFile string) []string {
		return []string{"--engine", "postgres", "--host", pg.Host, "--port", strconv.Itoa(pg.Port), "--database", db,
			"--tls-mode", "verify-full", "--ca-file", caFile}
	}
	f := newDrillFixture(t)

	f.backup(t, env, "ns/shop/tls", target("shop", rightCA)...)

	args := append([]string{"backup", "--encryption", "x25519", "--recipient", f.recipient, "--scratch-dir", t.TempDir()}, f.common("ns/shop/untrusted")...)
	rr := runAgent(t, env, append(args, target("shop", otherCA)...)...)
	if rr.code != 1 || rr.result.Reason != ReasonTargetUnreachable || !strings.Contains(rr.result.Message, "certificate verify failed") {
		t.Fatalf("backup with another CA: exit %d, %s %s; want 1, %s, certificate verify failed", rr.code, rr.stdout, rr.stderr, ReasonTargetUnreachable)
	}
	filepath.WalkDir(f.root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(path, filepath.Join("ns", "shop", "tls")+string(filepath.Separator)) {
			t.Errorf("the failed backup left %s in the store", path)
		}
		return err
	})

	restore := func(caFile string) runResult {
		args := append([]string{"restore", "--identity-file", f.idFile, "--scratch-dir", t.TempDir()}, f.common("ns/shop/tls")...)
		return runAgent(t, env, append(args, target("copy", caFile)...)...)
	}
	if rr := restore(otherCA); rr.code != 1 || rr.result.Reason != ReasonTargetUnreachable {
		t.Fatalf("restore with another CA: exit %d, %s %s", rr.code, rr.stdout, rr.stderr)
	}
	if got := pg.MustQuery(t, "copy", "SELECT x FROM kept"); got != "7" {
		t.Fatalf("after the refused restore, the target holds %q", got)
	}
	if rr := restore(rightCA); rr.code != 0 {
		t.Fatalf("restore: exit %d, %s %s", rr.code, rr.stdout, rr.stderr)
	}
	if got := pg.MustQuery(t, "copy", "SELECT count(*), sum(id) FROM orders"); got != "250|31375" {
		t.Errorf("restored orders: %s, want 250|31375", got)
	}
}
