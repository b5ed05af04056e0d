package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
)

var (
	srv    *mariadbserver.Server
	srvErr error
)

func TestMain(m *testing.M) {
	srv, srvErr = mariadbserver.Launch()
	code := m.Run()
	if srv != nil {
		srv.Stop()
	}
	os.Exit(code)
}

func server(t *testing.T) *mariadbserver.Server {
	t.Helper()
	if srvErr != nil {
		mariadbserver.FailStart(t, srvErr)
	}
	return srv
}

var dbSeq int

func newDB(t *testing.T, s *mariadbserver.Server) string {
	t.Helper()
	dbSeq++
	name := fmt.Sprintf("db%d_%s", dbSeq, strings.ToLower(strings.NewReplacer("/", "_", " ", "_", "-", "_").Replace(t.Name())))
	if len(name) > 60 {
		name = name[:60]
	}
	s.CreateDatabase(t, name)
	return name
}

func newEngine(t *testing.T, s *mariadbserver.Server, dbs ...string) *Engine {
	t.Helper()
	e, err := engine.New(Name, engine.Options{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password, Databases: dbs, TLSMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	return e.(*Engine)
}

const fixture = `
CREATE TABLE people (
	id INT AUTO_INCREMENT PRIMARY KEY,
	name VARCHAR(200) CHARACTER SET utf8mb4 NOT NULL,
	born DATETIME(6),
	score DECIMAL(10,3),
	doc JSON,
	photo BLOB,
	note TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO people (name, born, score, doc, photo, note)
SELECT CONCAT('person ', seq, ' tab\t quote'' backslash\\ emoji 😀 ünïcode'),
	TIMESTAMP('2020-01-01 00:00:00.123456') + INTERVAL seq HOUR,
	seq * 1.5,
	JSON_OBJECT('i', seq, 'a', JSON_ARRAY(seq, 'x')),
	UNHEX(MD5(seq)),
	IF(seq % 7 = 0, NULL, REPEAT('n', seq % 50))
FROM seq_1_to_3000;
CREATE TABLE orders (
	id BIGINT AUTO_INCREMENT PRIMARY KEY,
	person INT NOT NULL,
	amount DECIMAL(12,2) NOT NULL,
	updated_at DATETIME,
	CONSTRAINT orders_person FOREIGN KEY (person) REFERENCES people(id)
) ENGINE=InnoDB;
INSERT INTO orders (person, amount) SELECT 1 + seq % 3000, seq FROM seq_1_to_5000;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100)) ENGINE=MyISAM;
CREATE TRIGGER orders_audit AFTER UPDATE ON orders FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
CREATE VIEW big_orders AS SELECT o.id, p.name FROM orders o JOIN people p ON p.id = o.person WHERE o.amount > 4900;
CREATE VIEW big_order_count AS SELECT COUNT(*) AS n FROM big_orders;
CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE PROCEDURE count_people(OUT n INT) SELECT COUNT(*) INTO n FROM people;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DO DELETE FROM audit WHERE id < 0;
CREATE SEQUENCE counter START WITH 100;
SELECT NEXTVAL(counter), NEXTVAL(counter);
`

// state describes a database the way a user checks a restore: per table the
// row count and CHECKSUM TABLE, per view its rows, and the names of
// triggers, routines and events.
func state(t *testing.T, s *mariadbserver.Server, db string) map[string]string {
	t.Helper()
	out := map[string]string{}
	q := mariadbserver.QuoteIdent
	rows := s.MustQuery(t, "", fmt.Sprintf(`SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' ORDER BY 1`, db))
	for _, line := range strings.Split(rows, "\n") {
		if line == "" {
			continue
		}
		name, typ, _ := strings.Cut(line, "\t")
		switch typ {
		case "VIEW":
			cols := s.MustQuery(t, "", fmt.Sprintf("SELECT GROUP_CONCAT(CONCAT('`', COLUMN_NAME, '`') ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s'", db, name))
			out["view "+name] = s.MustQuery(t, db, "SET SESSION group_concat_max_len = 1073741824; SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', "+cols+") ORDER BY 1)) FROM "+q(name))
		case "SEQUENCE":
			out["sequence "+name] = s.MustQuery(t, db, "SELECT next_not_cached_value FROM "+q(name))
		default:
			cs := s.MustQuery(t, db, "CHECKSUM TABLE "+q(name)+" EXTENDED")
			_, sum, _ := strings.Cut(cs, "\t")
			out["table "+name] = s.MustQuery(t, db, "SELECT COUNT(*) FROM "+q(name)) + " rows, checksum " + sum
			_, def, _ := strings.Cut(s.MustQuery(t, db, "SHOW CREATE TABLE "+q(name)), "\t")
			out["definition "+name] = def
		}
	}
	out["triggers"] = s.MustQuery(t, "", fmt.Sprintf(`SELECT GROUP_CONCAT(CONCAT(TRIGGER_NAME, ' ', EVENT_OBJECT_TABLE) ORDER BY 1) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '%s'`, db))
	out["routines"] = s.MustQuery(t, "", fmt.Sprintf(`SELECT GROUP_CONCAT(CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) ORDER BY 1) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '%s'`, db))
	out["events"] = s.MustQuery(t, "", fmt.Sprintf(`SELECT GROUP_CONCAT(CONCAT(EVENT_NAME, ' ', STATUS) ORDER BY 1) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '%s'`, db))
	return out
}

func equalMaps(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s: %q", k, v)
		}
	}
}

func noBackstopSchemas(t *testing.T, s *mariadbserver.Server) {
	t.Helper()
	if got := s.MustQuery(t, "", `SELECT GROUP_CONCAT(SCHEMA_NAME) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'backstop\_%'`); got != "NULL" && got != "" {
		t.Errorf("leftover schemas: %s", got)
	}
}

func dump(t *testing.T, e *Engine) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Dump(context.Background(), &buf); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return buf.Bytes()
}

// fixtureDump makes a database holding the fixture, and returns it and
// its dump.
func fixtureDump(t *testing.T, s *mariadbserver.Server) (src string, data []byte) {
	t.Helper()
	src = newDB(t, s)
	s.MustQuery(t, src, fixture)
	return src, dump(t, newEngine(t, s, src))
}

// populatedTarget is a database with objects the restore must replace.
func populatedTarget(t *testing.T, s *mariadbserver.Server) string {
	t.Helper()
	db := newDB(t, s)
	s.MustQuery(t, db, `
CREATE TABLE stale (a INT); INSERT INTO stale VALUES (1), (2);
CREATE TABLE people (id INT PRIMARY KEY, name TEXT); INSERT INTO people VALUES (-1, 'old');
CREATE TABLE child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES people(id)); INSERT INTO child VALUES (1, -1);
CREATE VIEW stale_view AS SELECT a FROM stale;
CREATE TRIGGER stale_trg BEFORE INSERT ON stale FOR EACH ROW SET NEW.a = NEW.a + 1;
CREATE PROCEDURE stale_proc() SELECT 1;
CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 3;
CREATE EVENT stale_event ON SCHEDULE EVERY 1 HOUR DO DELETE FROM stale WHERE a < 0;`)
	return db
}

func TestMySQL_RoundTripIntoAnotherDatabase(t *testing.T) {
	s := server(t)
	src, data := fixtureDump(t, s)
	want := state(t, s, src)

	dst := populatedTarget(t, s)
	if err := newEngine(t, s, dst).Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	equalMaps(t, want, state(t, s, dst))
	noBackstopSchemas(t, s)

	// The restored objects work in their new home.
	s.MustQuery(t, dst, "UPDATE orders SET amount = amount WHERE id = 1")
	if got := s.MustQuery(t, dst, "SELECT what FROM audit"); got != "order 1" {
		t.Errorf("trigger after restore: audit = %q", got)
	}
	if got := s.MustQuery(t, dst, "SELECT double_it(21)"); got != "42" {
		t.Errorf("double_it(21) = %q", got)
	}
	if got := s.MustQuery(t, dst, "CALL count_people(@n); SELECT @n"); got != "3000" {
		t.Errorf("count_people = %q", got)
	}
	if got := s.MustQuery(t, dst, "SELECT n FROM big_order_count"); got != "100" {
		t.Errorf("view over view = %q", got)
	}
	if got := s.MustQuery(t, "", fmt.Sprintf("SELECT VIEW_DEFINITION LIKE '%%%s%%' FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = 'big_orders'", src, dst)); got != "0" {
		t.Errorf("the restored view still refers to the source database")
	}
	next := s.MustQuery(t, src, "INSERT INTO people (name) VALUES ('new'); SELECT LAST_INSERT_ID()")
	if got := s.MustQuery(t, dst, "INSERT INTO people (name) VALUES ('new'); SELECT LAST_INSERT_ID()"); got != next {
		t.Errorf("auto_increment continued at %q, want %q", got, next)
	}

	// Restoring again over the restored data works too.
	s.MustQuery(t, dst, "DELETE FROM audit")
	if err := newEngine(t, s, dst).Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("second Restore: %v", err)
	}
	equalMaps(t, want, state(t, s, dst))
}

func TestMySQL_RestoreWithStockClient(t *testing.T) {
	s := server(t)
	src, data := fixtureDump(t, s)
	want := state(t, s, src)
	dst := newDB(t, s)
	if _, err := s.Query(dst, string(data)); err != nil {
		t.Fatalf("mariadb < dump: %v", err)
	}
	equalMaps(t, want, state(t, s, dst))
}

func TestMySQL_MultipleDatabases(t *testing.T) {
	s := server(t)
	a, b := newDB(t, s), newDB(t, s)
	s.MustQuery(t, a, "CREATE TABLE t (x INT); INSERT INTO t VALUES (1), (2); CREATE VIEW v AS SELECT SUM(x) AS s FROM t")
	s.MustQuery(t, b, "CREATE TABLE u (y TEXT); INSERT INTO u VALUES ('b'); CREATE TRIGGER tu BEFORE INSERT ON u FOR EACH ROW SET NEW.y = UPPER(NEW.y)")
	wantA, wantB := state(t, s, a), state(t, s, b)
	e := newEngine(t, s, a, b)
	data := dump(t, e)
	s.MustQuery(t, a, "DELETE FROM t; CREATE TABLE extra (z INT)")
	s.MustQuery(t, b, "DROP TRIGGER tu; INSERT INTO u VALUES ('changed')")
	if err := e.Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	equalMaps(t, wantA, state(t, s, a))
	equalMaps(t, wantB, state(t, s, b))
	noBackstopSchemas(t, s)
}

// A failure in the second database of a restore puts the first one back
// too: a restore changes all of its databases or none.
func TestMySQL_MultipleDatabasesFailureLeavesAll(t *testing.T) {
	s := server(t)
	a, b := newDB(t, s), newDB(t, s)
	s.MustQuery(t, a, "CREATE TABLE t (x INT); INSERT INTO t VALUES (1), (2); CREATE VIEW v AS SELECT SUM(x) AS s FROM t")
	s.MustQuery(t, b, "CREATE TABLE u (y TEXT); INSERT INTO u VALUES ('b')")
	e := newEngine(t, s, a, b)
	data := dump(t, e)
	// b's events, the last part of the dump, fail after b's tables are
	// swapped in, and so after a has been restored.
	last := bytes.LastIndex(data, []byte(eventsMarker+b))
	if last < 0 || bytes.Index(data, []byte(eventsMarker+a)) > last {
		t.Fatalf("the dump does not end with the events of %s", b)
	}
	bad := append(append([]byte{}, data[:last]...),
		[]byte(eventsMarker+b+"\nCREATE EVENT broken ON SCHEDULE NEVER DO nothing;\n-- Dump completed on 2030-01-01\n")...)
	s.MustQuery(t, a, "DELETE FROM t; INSERT INTO t VALUES (7); CREATE TABLE extra (z INT)")
	s.MustQuery(t, b, "INSERT INTO u VALUES ('changed')")
	beforeA, beforeB := state(t, s, a), state(t, s, b)
	err := e.Restore(context.Background(), bytes.NewReader(bad))
	if err == nil {
		t.Fatal("Restore with a broken event succeeded")
	}
	if r := engine.ReasonOf(err); r != engine.ReasonRestoreFailed {
		t.Errorf("reason = %q (%v)", r, err)
	}
	if !strings.Contains(err.Error(), "put back as well") {
		t.Errorf("the error does not say the first database was put back: %v", err)
	}
	t.Logf("error: %v", err)
	equalMaps(t, beforeA, state(t, s, a))
	equalMaps(t, beforeB, state(t, s, b))
	noBackstopSchemas(t, s)
	if got := s.MustQuery(t, a, "SELECT s FROM v"); got != "7" {
		t.Errorf("the view of %s after the failed restore: %q", a, got)
	}
}

// A failed restore into databases that did not exist leaves none behind,
// whether the failing database is the new one or one restored after it.
func TestMySQL_FailureLeavesNoNewDatabase(t *testing.T) {
	s := server(t)
	a, b := newDB(t, s), newDB(t, s)
	s.MustQuery(t, a, "CREATE TABLE t (x INT); INSERT INTO t VALUES (1)")
	s.MustQuery(t, b, "CREATE TABLE u (y TEXT); INSERT INTO u VALUES ('b')")
	data := dump(t, newEngine(t, s, a, b))
	// withBrokenEvents replaces the events of db, the last part of dump,
	// with one that fails after db's tables are swapped in.
	withBrokenEvents := func(dump []byte, db string) []byte {
		last := bytes.LastIndex(dump, []byte(eventsMarker+db))
		if last < 0 || bytes.Index(dump[last+1:], []byte(eventsMarker)) >= 0 {
			t.Fatalf("the dump does not end with the events of %s", db)
		}
		return append(append([]byte{}, dump[:last]...),
			[]byte(eventsMarker+db+"\nCREATE EVENT broken ON SCHEDULE NEVER DO nothing;\n-- Dump completed on 2030-01-01\n")...)
	}
	exists := func(db string) bool {
		t.Helper()
		return s.MustQuery(t, "", "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '"+db+"'") != "0"
	}

	t.Run("the only database", func(t *testing.T) {
		missing := a + "_new"
		single := dump(t, newEngine(t, s, a))
		err := newEngine(t, s, missing).Restore(context.Background(), bytes.NewReader(withBrokenEvents(single, a)))
		if err == nil {
			t.Fatal("Restore with a broken event succeeded")
		}
		t.Logf("error: %v", err)
		if exists(missing) {
			t.Errorf("the failed restore left database %s behind", missing)
		}
		noBackstopSchemas(t, s)
		// The same name restores fine from a good dump.
		if err := newEngine(t, s, missing).Restore(context.Background(), bytes.NewReader(single)); err != nil {
			t.Fatalf("Restore into a new database: %v", err)
		}
		t.Cleanup(func() { s.MustQuery(t, "", "DROP DATABASE IF EXISTS "+mariadbserver.QuoteIdent(missing)) })
		if got := s.MustQuery(t, missing, "SELECT SUM(x) FROM t"); got != "1" {
			t.Errorf("restored data: %q", got)
		}
	})

	t.Run("restored before the failing one", func(t *testing.T) {
		// The database the dump holds first is missing; the second fails.
		first, second := a, b
		if bytes.Index(data, []byte(eventsMarker+a)) > bytes.Index(data, []byte(eventsMarker+b)) {
			first, second = b, a
		}
		s.MustQuery(t, "", "DROP DATABASE "+mariadbserver.QuoteIdent(first))
		before := state(t, s, second)
		err := newEngine(t, s, a, b).Restore(context.Background(), bytes.NewReader(withBrokenEvents(data, second)))
		if err == nil {
			t.Fatal("Restore with a broken event succeeded")
		}
		if !strings.Contains(err.Error(), "put back as well") {
			t.Errorf("the error does not say the first database was put back: %v", err)
		}
		t.Logf("error: %v", err)
		if exists(first) {
			t.Errorf("the failed restore left database %s behind", first)
		}
		equalMaps(t, before, state(t, s, second))
		noBackstopSchemas(t, s)
	})
}

func TestMySQL_RestoreFailureLeavesTarget(t *testing.T) {
	s := server(t)
	src, data := fixtureDump(t, s)
	events := bytes.Index(data, []byte(eventsMarker))
	cases := map[string][]byte{
		"truncated in half":           data[:len(data)/2],
		"truncated before the events": data[:events],
		"truncated before trailer":    data[:bytes.LastIndex(data, []byte("-- Dump completed"))],
		"corrupt statement":           bytes.Replace(data, []byte("CREATE TABLE `orders`"), []byte("CREATE TABEL `orders`"), 1),
		"corrupt row":                 bytes.Replace(data, []byte("INSERT INTO `orders` VALUES"), []byte("INSERT INTO `orders` VALUES (1,2,3"), 1),
		// The server skips a table the dump announces: the count check catches it.
		"table missing after load": bytes.Replace(data, []byte("CREATE TABLE `audit`"), []byte("/*\nCREATE TABLE `ghost` (x INT)\n*/\nCREATE TABLE `audit`"), 1),
		"garbage":                  []byte("\x00\x01 this is not SQL"),
		"empty":                    nil,
		// Fails after the swap, when the events are created: the swap is undone.
		"broken event": append(append([]byte{}, data[:events]...),
			[]byte(eventsMarker+src+"\nCREATE EVENT broken ON SCHEDULE NEVER DO nothing;\n-- Dump completed on 2030-01-01\n")...),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			dst := populatedTarget(t, s)
			before := state(t, s, dst)
			err := newEngine(t, s, dst).Restore(context.Background(), bytes.NewReader(bad))
			if err == nil {
				t.Fatal("Restore of a bad dump succeeded")
			}
			if r := engine.ReasonOf(err); r != engine.ReasonRestoreFailed {
				t.Errorf("reason = %q (%v)", r, err)
			}
			t.Logf("error: %v", err)
			equalMaps(t, before, state(t, s, dst))
			noBackstopSchemas(t, s)
			// The old objects still work.
			s.MustQuery(t, dst, "INSERT INTO stale VALUES (10)")
			if got := s.MustQuery(t, dst, "SELECT MAX(a) FROM stale_view"); got != "11" {
				t.Errorf("old trigger/view after failed restore: %q", got)
			}
		})
	}
}

func TestMySQL_Check(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	db := newDB(t, s)
	if err := newEngine(t, s, db).Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	bad := newEngine(t, s, db)
	bad.opts.Password = "wrong-password-123"
	err := bad.Check(ctx)
	if engine.ReasonOf(err) != engine.ReasonTargetAuthenticationFailed {
		t.Errorf("bad password: reason %q (%v)", engine.ReasonOf(err), err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-password-123") {
		t.Errorf("error reveals the password: %v", err)
	}
	if err := bad.Restore(ctx, strings.NewReader("SELECT 1;")); engine.ReasonOf(err) != engine.ReasonTargetAuthenticationFailed {
		t.Errorf("Restore with a bad password: reason %q (%v)", engine.ReasonOf(err), err)
	}

	port, err := mariadbserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	down := newEngine(t, s, db)
	down.opts.Port = port
	if err := down.Check(ctx); engine.ReasonOf(err) != engine.ReasonTargetUnreachable {
		t.Errorf("nothing listening: reason %q (%v)", engine.ReasonOf(err), err)
	}
	if err := down.Dump(ctx, io.Discard); engine.ReasonOf(err) != engine.ReasonTargetUnreachable {
		t.Errorf("Dump with nothing listening: reason %q (%v)", engine.ReasonOf(err), err)
	}
	nohost := newEngine(t, s, db)
	nohost.opts.Host = "no-such-host.invalid"
	if err := nohost.Check(ctx); engine.ReasonOf(err) != engine.ReasonTargetUnreachable {
		t.Errorf("unknown host: reason %q (%v)", engine.ReasonOf(err), err)
	}
	nodb := newEngine(t, s, db, "no_such_db")
	if err := nodb.Dump(ctx, io.Discard); engine.ReasonOf(err) != engine.ReasonDatabaseNotFound || !strings.Contains(err.Error(), "no_such_db") {
		t.Errorf("Dump of a missing database: reason %q (%v), want %s", engine.ReasonOf(err), err, engine.ReasonDatabaseNotFound)
	}
	// mariadb-dump's own error for it gets the same reason.
	var buf bytes.Buffer
	if err := nodb.runDump(ctx, &buf, append(append([]string{}, DumpArgs...), "--", "no_such_db")); engine.ReasonOf(err) != engine.ReasonDatabaseNotFound {
		t.Errorf("mariadb-dump of a missing database: reason %q (%v), want %s", engine.ReasonOf(err), err, engine.ReasonDatabaseNotFound)
	}
}

func TestMySQL_Version(t *testing.T) {
	s := server(t)
	v, err := newEngine(t, s).Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v, "MariaDB") {
		t.Errorf("Version = %q", v)
	}
}

func TestMySQL_DumpAllDatabasesSkipsSystemSchemas(t *testing.T) {
	s := server(t)
	dbs, err := newEngine(t, s).databases(context.Background(), engine.ReasonDumpFailed)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dbs {
		if systemSchemas[d] {
			t.Errorf("system schema %q would be dumped", d)
		}
	}
}

type gateWriter struct {
	once    sync.Once
	first   chan struct{}
	release chan struct{}
	n       int
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.n += len(p)
	if g.n > 256<<10 {
		g.once.Do(func() { close(g.first) })
		<-g.release
	}
	return len(p), nil
}

func bigDB(t *testing.T, s *mariadbserver.Server) string {
	db := newDB(t, s)
	s.MustQuery(t, db, "CREATE TABLE big (i INT PRIMARY KEY, h CHAR(32), pad VARCHAR(300)); INSERT INTO big SELECT seq, MD5(seq), REPEAT('x', 250) FROM seq_1_to_200000")
	return db
}

func TestMySQL_DumpFailsWhenConnectionKilled(t *testing.T) {
	s := server(t)
	db := bigDB(t, s)
	g := &gateWriter{first: make(chan struct{}), release: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- newEngine(t, s, db).Dump(context.Background(), g) }()
	select {
	case <-g.first:
	case err := <-errc:
		t.Fatalf("Dump ended early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no data")
	}
	ids := s.MustQuery(t, "", fmt.Sprintf("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '%s'", db))
	for _, id := range strings.Fields(ids) {
		s.MustQuery(t, "", "KILL "+id)
	}
	close(g.release)
	err := <-errc
	if err == nil {
		t.Fatal("Dump succeeded although its connection was killed")
	}
	if r := engine.ReasonOf(err); r != engine.ReasonDumpFailed && r != engine.ReasonTargetUnreachable {
		t.Errorf("reason = %q (%v)", r, err)
	}
	t.Logf("Dump error: %v", err)
}

func TestMySQL_DumpFailsWhenKilled(t *testing.T) {
	s := server(t)
	db := bigDB(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &gateWriter{first: make(chan struct{}), release: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- newEngine(t, s, db).Dump(ctx, g) }()
	select {
	case <-g.first:
	case err := <-errc:
		t.Fatalf("Dump ended early: %v", err)
	}
	cancel()
	time.Sleep(200 * time.Millisecond)
	close(g.release)
	err := <-errc
	if err == nil {
		t.Fatal("Dump succeeded although mariadb-dump was killed")
	}
	if r := engine.ReasonOf(err); r != engine.ReasonDumpFailed {
		t.Errorf("reason = %q (%v)", r, err)
	}
	t.Logf("Dump error: %v", err)
}

func TestMySQL_DumpWriterError(t *testing.T) {
	s := server(t)
	db := bigDB(t, s)
	err := newEngine(t, s, db).Dump(context.Background(), failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Dump error = %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestMySQL_PasswordNotInArgv(t *testing.T) {
	e := &Engine{opts: engineOpts("s3cr3t-pw")}
	cmd := e.command(context.Background(), "true", "--batch")
	for _, a := range cmd.Args {
		if strings.Contains(a, "s3cr3t-pw") {
			t.Fatalf("password in argv: %v", cmd.Args)
		}
	}
	found := false
	for _, kv := range cmd.Env {
		found = found || kv == "MYSQL_PWD=s3cr3t-pw"
	}
	if !found {
		t.Error("password not passed through MYSQL_PWD")
	}
	_ = exec.ErrNotFound
}

func engineOpts(pw string) engine.Options {
	return engine.Options{Host: "127.0.0.1", Port: 3306, User: "u", Password: pw, Databases: []string{"d"}}
}

// An application's open transaction on one of the target's tables makes
// the swap wait at most the lock timeout, then give up with TargetBusy,
// the target as it was and no staging schema left; once it ends, the
// restore goes through.
func TestMySQL_RestoreGivesUpOnABusyTarget(t *testing.T) {
	s := server(t)
	src, data := fixtureDump(t, s)
	want := state(t, s, src)
	dst := populatedTarget(t, s)
	before := state(t, s, dst)

	release := s.HoldTable(t, dst, "stale")
	e := newEngine(t, s, dst)
	e.opts.LockTimeout = time.Second
	start := time.Now()
	err := e.Restore(context.Background(), bytes.NewReader(data))
	if engine.ReasonOf(err) != engine.ReasonTargetBusy || !strings.Contains(err.Error(), "more than 1s") {
		t.Fatalf("restore of a busy target: reason %q, %v; want %s", engine.ReasonOf(err), err, engine.ReasonTargetBusy)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the restore gave up after %s", took)
	}
	release()
	equalMaps(t, before, state(t, s, dst))
	noBackstopSchemas(t, s)

	if err := e.Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("restore once the transaction ended: %v", err)
	}
	equalMaps(t, want, state(t, s, dst))
}

// A transaction begun after the lock probe found the tables free, before
// the swap's first statement, makes that statement wait at most the lock
// timeout too: the restore fails with TargetBusy and the target is put
// back as it was, once the transaction ends.
func TestMySQL_RestoreBoundsTheSwapsWaitForATransactionBegunAfterTheProbe(t *testing.T) {
	s := server(t)
	_, data := fixtureDump(t, s)
	dst := populatedTarget(t, s)
	before := state(t, s, dst)

	var released atomic.Bool
	var release func()
	afterLockProbe = func() {
		hold := s.HoldTable(t, dst, "stale")
		release = sync.OnceFunc(func() { released.Store(true); hold() })
		// Were the rollback to wait for the session (it need not: the
		// swap's first DROP, of this table's trigger, gave up and nothing
		// changed), the application ends its transaction a while later.
		time.AfterFunc(30*time.Second, release)
	}
	t.Cleanup(func() { afterLockProbe = nil })
	e := newEngine(t, s, dst)
	e.opts.LockTimeout = time.Second
	err := e.Restore(context.Background(), bytes.NewReader(data))
	if released.Load() {
		t.Error("the restore waited for the session that holds the table")
	}
	release()
	if engine.ReasonOf(err) != engine.ReasonTargetBusy || !strings.Contains(err.Error(), "more than 1s") ||
		!strings.Contains(err.Error(), "the target was restored to its previous state") {
		t.Fatalf("restore with a transaction begun after the probe: reason %q, %v; want %s", engine.ReasonOf(err), err, engine.ReasonTargetBusy)
	}
	equalMaps(t, before, state(t, s, dst))
	noBackstopSchemas(t, s)
}
