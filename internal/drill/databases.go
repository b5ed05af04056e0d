package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/engine/mysql"
	"github.com/backstop-io/backstop/internal/engine/postgres"
	"github.com/backstop-io/backstop/internal/manifest"
)

// dbSandbox is a database a drill restores into: a throwaway server that
// comes up while the artifact downloads, or a scratch target.
type dbSandbox struct {
	*starting
	name string // the engine's
	srv  *server
	desc string
	// Set when the database is ready.
	eng   engine.Engine
	tc    tableCounter
	query func(ctx context.Context, sql string) (string, error)
}

func (d *dbSandbox) Name() string { return d.name }

// Check waits for the throwaway server, then checks it as a restore checks
// its target.
func (d *dbSandbox) Check(ctx context.Context) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	return d.eng.Check(ctx)
}

func (d *dbSandbox) Version(ctx context.Context) (string, error) { return d.eng.Version(ctx) }

func (d *dbSandbox) Dump(context.Context, io.Writer) error {
	return errors.New("a drill does not dump")
}

// Restore loads the dump. A load that fails says so when the throwaway
// server is older than the backup's, or another kind: the restore pipeline
// compares the backup's versions with Version's.
func (d *dbSandbox) Restore(ctx context.Context, r io.Reader) error {
	return d.eng.Restore(ctx, r)
}

func (d *dbSandbox) checkInventory(ctx context.Context, m *manifest.Manifest, r *Report) {
	checkTables(ctx, d.tc, m, r)
}

func (d *dbSandbox) runQuery(ctx context.Context, sql string) (string, error) {
	return d.query(ctx, sql)
}

func (d *dbSandbox) describe() string { return d.desc }

// stop waits for a start still under way (a drill that failed early), so
// that no server outlives it, then kills the server.
func (d *dbSandbox) stop() {
	if d.srv != nil {
		<-d.ready
		d.srv.stop()
	}
}

// newScratchTarget restores into a target named for drills. Its checks
// read it with the target's own credentials.
func newScratchTarget(engineName string, o engine.Options) (sandbox, error) {
	eng, err := engine.New(engineName, o)
	if err != nil {
		return nil, engine.Errorf(reasonInvalidInput, "the scratch target: %v", err)
	}
	d := &dbSandbox{starting: newStarting(), name: engineName, eng: eng}
	switch e := eng.(type) {
	case *postgres.Engine:
		d.tc, d.query = pgTables{e}, e.Query
		d.desc = fmt.Sprintf("scratch target %s/%s", o.Host, o.Databases[0])
	case *mysql.Engine:
		db := ""
		if len(o.Databases) == 1 {
			db = o.Databases[0]
		}
		d.tc = myTables{e}
		d.query = func(ctx context.Context, sql string) (string, error) { return e.Query(ctx, db, sql) }
		d.desc = "scratch target " + o.Host
	default:
		f, err := newFilesSandbox(o.Path)
		if err != nil {
			return nil, err
		}
		f.(*filesSandbox).desc = "scratch target " + o.Path
		return f, nil
	}
	d.finish(nil)
	return d, nil
}

// ---- PostgreSQL ----

// startPostgres starts initdb and postgres in dir in the background: a
// cluster of a major at least the backup's, listening only on a socket in
// dir, trusting local connections (nothing else can reach it), with
// durability off (its data is thrown away).
func startPostgres(ctx context.Context, m *manifest.Manifest, dir string) (sandbox, error) {
	want := major(m.EngineVersion, "PostgreSQL ")
	bin, version := postgresBinDir()
	have := major(version, "")
	if bin == "" {
		return nil, engine.Errorf(ReasonDrillServerFailed, "no PostgreSQL server (initdb, postgres) in the agent's image: drill into a scratch target instead")
	}
	if want > have {
		return nil, engine.Errorf(ReasonDrillServerFailed, "the backup is of PostgreSQL %d, and the newest server in the agent's image is %d: drill into a scratch target instead", want, have)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, engine.Errorf(reasonInvalidInput, "creating %s: %v", dir, err)
	}
	cred, err := serverCredential(dir, "postgres")
	if err != nil {
		return nil, engine.Errorf(ReasonDrillServerFailed, "handing %s to the server's user: %v", dir, err)
	}
	if cred != nil {
		// The server's user must reach dir through the drill's directory.
		_ = os.Chmod(filepath.Dir(dir), 0o711)
	}
	sock := filepath.Join(dir, "s")
	data := filepath.Join(dir, "data")
	d := &dbSandbox{starting: newStarting(), name: postgres.Name, srv: &server{name: "PostgreSQL"},
		desc: "PostgreSQL " + version + " (throwaway)"}
	go func() {
		d.finish(func() error {
			if err := runSetup(ctx, "initdb", cred, dir, filepath.Join(bin, "initdb"), "-D", data, "-U", "backstop",
				"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
				return err
			}
			if err := os.Mkdir(sock, 0o700); err != nil {
				return err
			}
			if cred != nil {
				if err := os.Chown(sock, int(cred.Uid), int(cred.Gid)); err != nil {
					return err
				}
			}
			args := []string{"-D", data, "-k", sock}
			for _, setting := range postgresSettings {
				args = append(args, "-c", setting)
			}
			if err := d.srv.start(cred, dir, filepath.Join(bin, "postgres"), args...); err != nil {
				return err
			}
			admin, _ := postgres.New(engine.Options{Host: sock, Databases: []string{"postgres"}, User: "backstop", TLSMode: "disable"})
			target, _ := postgres.New(engine.Options{Host: sock, Databases: []string{"drill"}, User: "backstop", TLSMode: "disable"})
			if psql := filepath.Join(bin, "psql"); isExec(psql) {
				admin.Psql, target.Psql = psql, psql
			}
			if err := d.srv.waitReady(ctx, admin.Check); err != nil {
				return err
			}
			if _, err := admin.Query(ctx, "CREATE DATABASE drill"); err != nil {
				return engine.Errorf(ReasonDrillServerFailed, "creating the drill's database: %v", err)
			}
			d.eng, d.tc, d.query = target, pgTables{target}, target.Query
			return nil
		}())
	}()
	return d, nil
}

// postgresSettings are the throwaway server's: reachable only through its
// socket, and without durability (its data is thrown away).
var postgresSettings = []string{
	"listen_addresses=", "fsync=off", "full_page_writes=off", "synchronous_commit=off",
	"wal_level=minimal", "max_wal_senders=0", "max_wal_size=4GB", "dynamic_shared_memory_type=mmap",
	"max_connections=10", "jit=off", "logging_collector=off", "log_min_messages=warning",
}

// postgresBinDir finds the newest PostgreSQL server binaries and their
// version ("15.20").
func postgresBinDir() (dir, version string) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if initdb := findBinary([]string{"initdb"}); initdb != "" {
		dirs = append(dirs, filepath.Dir(initdb))
	}
	bestMajor := 0
	for _, d := range dirs {
		if !isExec(filepath.Join(d, "initdb")) || !isExec(filepath.Join(d, "postgres")) {
			continue
		}
		// "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
		_, v, _ := strings.Cut(output(filepath.Join(d, "postgres"), "--version"), "(PostgreSQL) ")
		v, _, _ = strings.Cut(v, " ")
		if n := major(v, ""); n > bestMajor {
			dir, version, bestMajor = d, v, n
		}
	}
	return dir, version
}

// pgTables counts the tables of a PostgreSQL database. A dump's data for a
// table is the table's own rows, so they are counted without its
// inheritance children or partitions (FROM ONLY).
type pgTables struct{ e *postgres.Engine }

func (p pgTables) key(t manifest.TableRows) string { return t.Schema + "\t" + t.Name }

func (p pgTables) display(t manifest.TableRows) string { return t.Schema + "." + t.Name }

func (p pgTables) existing(ctx context.Context) (map[string]bool, error) {
	out, err := p.e.Query(ctx, `SELECT n.nspname || E'\t' || c.relname FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')`)
	return lineSet(out), err
}

func (p pgTables) count(ctx context.Context, tables []manifest.TableRows) ([]int64, error) {
	q := make([]string, len(tables))
	for i, t := range tables {
		q[i] = fmt.Sprintf("SELECT %d, count(*) FROM ONLY %s.%s", i, pgIdent(t.Schema), pgIdent(t.Name))
	}
	out, err := p.e.Query(ctx, strings.Join(q, " UNION ALL "))
	if err != nil {
		return nil, err
	}
	return parseCounts(out, "|", len(tables))
}

func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// ---- MariaDB ----

// startMariaDB starts mariadb-install-db and mariadbd in dir in the
// background, listening on a free loopback port of the pod, with a root
// password made up for the drill, durability off.
func startMariaDB(ctx context.Context, m *manifest.Manifest, dir string) (sandbox, error) {
	sbin := []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"}
	mariadbd := findBinary([]string{"mariadbd", "mysqld"}, sbin...)
	install := findBinary([]string{"mariadb-install-db", "mysql_install_db"}, sbin...)
	client := findBinary([]string{"mariadb", "mysql"}, sbin...)
	if mariadbd == "" || install == "" || client == "" {
		return nil, engine.Errorf(ReasonDrillServerFailed, "no MariaDB server (mariadbd, mariadb-install-db) in the agent's image: drill into a scratch target instead")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, engine.Errorf(reasonInvalidInput, "creating %s: %v", dir, err)
	}
	cred, err := serverCredential(dir, "mysql")
	if err != nil {
		return nil, engine.Errorf(ReasonDrillServerFailed, "handing %s to the server's user: %v", dir, err)
	}
	if cred != nil {
		_ = os.Chmod(filepath.Dir(dir), 0o711)
	}
	port, err := freePort()
	if err != nil {
		return nil, engine.Errorf(ReasonDrillServerFailed, "finding a free port: %v", err)
	}
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "mysqld.sock")
	version := mariadbVersion(output(mariadbd, "--version"))
	d := &dbSandbox{starting: newStarting(), name: mysql.Name, srv: &server{name: "MariaDB"},
		desc: version + " (throwaway)"}
	password := randomPassword()
	go func() {
		d.finish(func() error {
			if err := runSetup(ctx, "mariadb-install-db", cred, dir, install, "--no-defaults", "--datadir="+data,
				"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"); err != nil {
				return err
			}
			err := d.srv.start(cred, dir, mariadbd, "--no-defaults", "--datadir="+data,
				"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket="+sock,
				"--pid-file="+filepath.Join(dir, "mysqld.pid"), "--skip-name-resolve",
				"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=64M", "--innodb-flush-log-at-trx-commit=0",
				"--innodb-doublewrite=0", "--skip-log-bin", "--event-scheduler=OFF")
			if err != nil {
				return err
			}
			local := func(ctx context.Context, sql string) error {
				return runSetup(ctx, "mariadb", nil, dir, client, "--no-defaults", "--protocol=socket", "--socket="+sock, "-uroot", "--batch", "-e", sql)
			}
			if err := d.srv.waitReady(ctx, func(ctx context.Context) error { return local(ctx, "SELECT 1") }); err != nil {
				return err
			}
			// The engine connects over TCP, as to any target, with a
			// password made up for this server.
			setup := fmt.Sprintf(`CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '%s';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;`, password)
			if err := local(ctx, setup); err != nil {
				return engine.Errorf(ReasonDrillServerFailed, "%s", strings.ReplaceAll(err.Error(), password, "[password]"))
			}
			e, err := mysql.New(engine.Options{Host: "127.0.0.1", Port: port, User: "root", Password: password, TLSMode: "disable"})
			if err != nil {
				return err
			}
			e.Client = client
			d.eng, d.tc = e, myTables{e}
			var db *string
			d.query = func(ctx context.Context, sql string) (string, error) {
				if db == nil {
					only, err := onlyDatabase(ctx, e)
					if err != nil {
						return "", err
					}
					db = &only
				}
				return e.Query(ctx, *db, sql)
			}
			return nil
		}())
	}()
	return d, nil
}

// onlyDatabase is the database user checks run in on a throwaway server:
// the one the backup restored, when it holds one; else none, and checks
// name their tables with the database.
func onlyDatabase(ctx context.Context, e *mysql.Engine) (string, error) {
	out, err := e.Query(ctx, "", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')")
	if err != nil {
		return "", err
	}
	if dbs := strings.Fields(out); len(dbs) == 1 {
		return dbs[0], nil
	}
	return "", nil
}

// mariadbVersion makes "MariaDB 10.11.19" of mariadbd --version.
func mariadbVersion(s string) string {
	// What follows "Ver" reads as the server part of a mysql Version string.
	if _, v, ok := strings.Cut(s, " Ver "); ok {
		if server := engine.MySQLServer(v); server != "" {
			return server
		}
	}
	return "MariaDB"
}

// myTables counts the tables of a MariaDB or MySQL server.
type myTables struct{ e *mysql.Engine }

func (p myTables) key(t manifest.TableRows) string { return t.Database + "\t" + t.Name }

func (p myTables) display(t manifest.TableRows) string { return t.Database + "." + t.Name }

func (p myTables) existing(ctx context.Context) (map[string]bool, error) {
	out, err := p.e.Query(ctx, "", "SELECT CONCAT(TABLE_SCHEMA, '\\t', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')")
	return lineSet(out), err
}

func (p myTables) count(ctx context.Context, tables []manifest.TableRows) ([]int64, error) {
	q := make([]string, len(tables))
	for i, t := range tables {
		q[i] = fmt.Sprintf("SELECT %d, COUNT(*) FROM %s.%s", i, myIdent(t.Database), myIdent(t.Name))
	}
	out, err := p.e.Query(ctx, "", strings.Join(q, " UNION ALL "))
	if err != nil {
		return nil, err
	}
	return parseCounts(out, "\t", len(tables))
}

func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func lineSet(out string) map[string]bool {
	set := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			set[l] = true
		}
	}
	return set
}
