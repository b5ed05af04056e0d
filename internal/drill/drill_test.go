package drill

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/engine/enginetest"
	"github.com/backstop-io/backstop/internal/engine/mysql"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
)

func TestParseChecks(t *testing.T) {
	good, err := ParseChecks(`[{"name":"recent","sql":"SELECT 1","expect":"1"},{"name":"other","sql":"SELECT 2","expect":"2"}]`)
	if err != nil || len(good) != 2 || good[1].Name != "other" {
		t.Fatalf("ParseChecks: %v %+v", err, good)
	}
	if none, err := ParseChecks(" "); err != nil || none != nil {
		t.Fatalf("no checks: %v %+v", err, none)
	}
	for in, want := range map[string]string{
		`{`: "user checks:",
		`[{"name":"a","sql":"x","expected":"1"}]`:         `unknown field "expected"`,
		`[{"sql":"SELECT 1"}]`:                            "user check 1 has no name",
		`[{"name":"tables","sql":"SELECT 1"}]`:            "taken by a built-in check",
		`[{"name":"a","sql":" "}]`:                        `user check "a" has no sql`,
		`[{"name":"a","sql":"x"},{"name":"a","sql":"y"}]`: `user check "a" is given twice`,
	} {
		if _, err := ParseChecks(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseChecks(%s) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("1|7\n0|3\n", "|", 2)
	if err != nil || got[0] != 3 || got[1] != 7 {
		t.Fatalf("parseCounts = %v, %v", got, err)
	}
	for _, in := range []string{"0|3", "0|3\n5|1", "0|x\n1|2"} {
		if _, err := parseCounts(in, "|", 2); err == nil {
			t.Errorf("parseCounts(%q) took a wrong count", in)
		}
	}
}

func TestVersions(t *testing.T) {
	if n := major("PostgreSQL 15.14 (Debian 15.14-0+deb12u1); pg_dump (PostgreSQL) 18.1", "PostgreSQL "); n != 15 {
		t.Errorf("the backup's major = %d, want 15", n)
	}
	if n := major("postgres (PostgreSQL) 18.1 (Debian 18.1-1.pgdg12+1)", "(PostgreSQL) "); n != 18 {
		t.Errorf("the server's major = %d, want 18", n)
	}
	if n := major("MariaDB 10.11", "PostgreSQL "); n != 0 {
		t.Errorf("no major = %d", n)
	}
	for in, want := range map[string]string{
		"/usr/sbin/mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)": "MariaDB 10.11.19",
		"/usr/sbin/mysqld  Ver 8.0.40 for Linux on x86_64 (MySQL Community Server - GPL)":               "MySQL 8.0.40",
		"": "MariaDB",
	} {
		if got := mariadbVersion(in); got != want {
			t.Errorf("mariadbVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// A server that does not start fails the drill with DrillServerFailed and
// the last lines of its log; a backup of a newer major than the image's
// server fails before anything starts.
func TestThrowawayServerFailures(t *testing.T) {
	scratch := serversScratch(t)
	m := &manifest.Manifest{Engine: "postgres", EngineVersion: "PostgreSQL 15.14; pg_dump (PostgreSQL) 15.14"}

	saved := postgresSettings
	postgresSettings = append(append([]string{}, saved...), "no_such_setting=1")
	t.Cleanup(func() { postgresSettings = saved })
	sb, err := startPostgres(context.Background(), m, filepath.Join(scratch, "pg"))
	if err != nil {
		t.Fatal(err)
	}
	err = sb.Check(context.Background())
	sb.stop()
	if engine.ReasonOf(err) != ReasonDrillServerFailed || !strings.Contains(err.Error(), `unrecognized configuration parameter "no_such_setting"`) {
		t.Fatalf("a server that cannot start: %v (reason %q)", err, engine.ReasonOf(err))
	}

	m.EngineVersion = "PostgreSQL 99.1"
	if _, err := startPostgres(context.Background(), m, filepath.Join(scratch, "pg99")); engine.ReasonOf(err) != ReasonDrillServerFailed || !strings.Contains(err.Error(), "the backup is of PostgreSQL 99") {
		t.Fatalf("a backup of PostgreSQL 99: %v", err)
	}
}

// A dump the drill's server refuses to load says, when the backup was made
// with a newer release of the same major (its server's or its pg_dump's),
// that the server's age may be why, and names both releases; from the same
// release it does not.
func TestOlderServerNamedWhenTheLoadFails(t *testing.T) {
	bin, version := postgresBinDir()
	if bin == "" {
		t.Fatal("no PostgreSQL server binaries: the drill's tests need them (make test installs them)")
	}
	scratch := serversScratch(t)
	server, have := engine.ReleaseOf(version, ""), major(version, "")

	// A column option this server does not know, as a newer release's dump
	// can carry; the dump is otherwise complete.
	dump := "CREATE TABLE public.t (c int);\nALTER TABLE ONLY public.t ALTER COLUMN c SET (no_such_option=1);\n-- PostgreSQL database dump complete\n"
	load := func(name, backupServer, backupDumper string) error {
		m := &manifest.Manifest{Engine: "postgres", EngineVersion: "PostgreSQL " + backupServer + "; pg_dump (PostgreSQL) " + backupDumper}
		sb, err := startPostgres(context.Background(), m, filepath.Join(scratch, name))
		if err != nil {
			t.Fatal(err)
		}
		defer sb.stop()
		if err := sb.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		return loadWithHint(t, sb, m, dump)
	}

	newer := fmt.Sprintf("%d.999", have)
	for _, c := range []struct{ name, backupServer, backupDumper string }{
		{"newer server", newer, newer},
		{"newer pg_dump", server, newer},
	} {
		err := load(strings.ReplaceAll(c.name, " ", "-"), c.backupServer, c.backupDumper)
		if engine.ReasonOf(err) != engine.ReasonRestoreFailed || !strings.Contains(err.Error(), "no_such_option") ||
			!strings.Contains(err.Error(), "the backup was made with PostgreSQL "+newer+" and the server restored into is an older "+server) {
			t.Fatalf("%s: a backup made with %s into %s: %v (reason %q)", c.name, newer, server, err, engine.ReasonOf(err))
		}
	}
	err := load("same", server, server)
	if engine.ReasonOf(err) != engine.ReasonRestoreFailed || strings.Contains(err.Error(), "older") {
		t.Fatalf("a backup of the server's own release %s: %v (reason %q)", server, err, engine.ReasonOf(err))
	}
}

// loadWithHint loads dump into the throwaway server and, when the load
// fails, adds what the restore pipeline adds: the hint the backup's and the
// server's own Version give (the pipeline's test covers that it does).
func loadWithHint(t *testing.T, sb sandbox, m *manifest.Manifest, dump string) error {
	t.Helper()
	err := sb.Restore(context.Background(), strings.NewReader(dump))
	if err == nil {
		return nil
	}
	version, verr := sb.Version(context.Background())
	if verr != nil {
		t.Fatalf("the throwaway server's version: %v", verr)
	}
	if hint := engine.LoadHint(m.Engine, m.EngineVersion, version); hint != "" {
		return engine.Errorf(engine.ReasonOf(err), "%w; %s", err, hint)
	}
	return err
}

// A MySQL backup that the drill's MariaDB refuses (a MySQL 8 collation)
// says the two servers differ; a MariaDB backup of the server's own release
// does not.
func TestMySQLDumpIntoMariaDBNamesBothServers(t *testing.T) {
	src := mariadbserver.Start(t)
	src.CreateDatabase(t, "shop")
	src.MustQuery(t, "shop", "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(20)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci; INSERT INTO orders VALUES (1, 'a')")
	dump, err := enginetest.Dump(t, mysql.Name, engine.Options{Host: src.Host, Port: src.Port, User: src.User, Password: src.Password, Databases: []string{"shop"}, TLSMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	// What MySQL 8's mysqldump writes for a table in one of its
	// collations that MariaDB does not have (its Japanese one).
	mysqlDump := strings.ReplaceAll(dump, "utf8mb4_general_ci", "utf8mb4_ja_0900_as_cs_ks")
	if mysqlDump == dump {
		t.Fatal("the dump names no utf8mb4_general_ci collation to replace")
	}
	scratch := serversScratch(t)
	load := func(name, engineVersion string, dump string) (string, error) {
		m := &manifest.Manifest{Engine: "mysql", EngineVersion: engineVersion}
		sb, err := startMariaDB(context.Background(), m, filepath.Join(scratch, name))
		if err != nil {
			t.Fatal(err)
		}
		defer sb.stop()
		if err := sb.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(sb.describe(), " (throwaway)"), loadWithHint(t, sb, m, dump)
	}

	server, err := load("mysql8", "8.0.40 MySQL Community Server - GPL; mysqldump  Ver 8.0.40", mysqlDump)
	if engine.ReasonOf(err) != engine.ReasonRestoreFailed || !strings.Contains(err.Error(), "utf8mb4_ja_0900_as_cs_ks") ||
		!strings.Contains(err.Error(), "the backup was made with MySQL 8.0.40 and the server restored into is "+server+", which may not load all a MySQL dump holds") {
		t.Fatalf("a MySQL 8 dump into %s: %v (reason %q)", server, err, engine.ReasonOf(err))
	}
	release := strings.TrimPrefix(server, "MariaDB ")
	_, err = load("same", release+"-MariaDB; mariadb-dump", mysqlDump)
	if engine.ReasonOf(err) != engine.ReasonRestoreFailed || strings.Contains(err.Error(), "the backup was made with") {
		t.Fatalf("a dump of the server's own release %s: %v (reason %q)", release, err, engine.ReasonOf(err))
	}
}

// serversScratch is a directory for throwaway servers, which run as their
// own users when the test runs as root: they must be able to enter it.
func serversScratch(t *testing.T) string {
	t.Helper()
	scratch, err := os.MkdirTemp("", "drill-servers-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratch) })
	if err := os.Chmod(scratch, 0o777); err != nil {
		t.Fatal(err)
	}
	return scratch
}
