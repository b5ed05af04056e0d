package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

var (
	srv    *pgserver.Server
	srvErr error
)

func TestMain(m *testing.M) {
	srv, srvErr = pgserver.Launch()
	code := m.Run()
	if srv != nil {
		srv.Stop()
	}
	os.Exit(code)
}

func server(t *testing.T) *pgserver.Server {
	t.Helper()
	if srvErr != nil {
		pgserver.FailStart(t, srvErr)
	}
	return srv
}

var dbSeq int

// newDB creates a fresh database with a unique name.
func newDB(t *testing.T, s *pgserver.Server) string {
	t.Helper()
	dbSeq++
	name := fmt.Sprintf("%s_%d", strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())), dbSeq)
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	s.CreateDatabase(t, name, "")
	return name
}

func newEngine(t *testing.T, s *pgserver.Server, db string) *Engine {
	t.Helper()
	e, err := engine.New(Name, engine.Options{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password, Databases: []string{db}, TLSMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	return e.(*Engine)
}

const fixture = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SCHEMA app;
CREATE TABLE public.people (
	id serial PRIMARY KEY,
	name text NOT NULL,
	mood mood,
	born timestamptz,
	score numeric(10,3),
	tags text[],
	doc jsonb,
	photo bytea
);
CREATE INDEX people_name ON public.people (name);
INSERT INTO public.people (name, mood, born, score, tags, doc, photo)
SELECT 'person ' || i || E' with \t tab and '' quote and \\ backslash and ünïcode',
	(ARRAY['sad','ok','happy'])[1 + i % 3]::mood,
	'2020-01-01 00:00:00+00'::timestamptz + i * interval '1 hour',
	i * 1.5,
	ARRAY['a' || i, NULL, 'c'],
	jsonb_build_object('i', i, 'nested', jsonb_build_array(i, 'x')),
	decode(md5(i::text), 'hex')
FROM generate_series(1, 2000) i;
INSERT INTO public.people (name) VALUES ('nulls');
CREATE TABLE app.orders (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	person int NOT NULL REFERENCES public.people(id),
	amount numeric NOT NULL,
	updated_at timestamptz
);
INSERT INTO app.orders (person, amount) SELECT 1 + (i % 2000), i FROM generate_series(1, 3000) i;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := '1999-01-01 00:00:00+00'; RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON app.orders FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE VIEW app.big_orders AS SELECT o.id, p.name FROM app.orders o JOIN public.people p ON p.id = o.person WHERE o.amount > 2900;
CREATE MATERIALIZED VIEW app.order_totals AS SELECT person, sum(amount) AS total FROM app.orders GROUP BY person;
CREATE SEQUENCE app.counter START 100;
SELECT nextval('app.counter'), nextval('app.counter');
COMMENT ON TABLE public.people IS 'the people';
`

// checksums returns, per user table and materialized view, an md5 of all rows
// in a fixed order, plus sequence values and the names of views, functions
// and triggers: everything a user would look at after a restore.
func checksums(t *testing.T, s *pgserver.Server, db string) map[string]string {
	t.Helper()
	rels := s.MustQuery(t, db, `SELECT format('%I.%I', n.nspname, c.relname) || ' ' || c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','m','S','v','p') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1`)
	out := map[string]string{}
	if rels == "" {
		return out
	}
	for _, line := range strings.Split(rels, "\n") {
		name, kind, _ := strings.Cut(line, " ")
		switch kind {
		case "S":
			out[name] = s.MustQuery(t, db, "SELECT last_value || ',' || is_called FROM "+name)
		case "v":
			out[name] = "view:" + s.MustQuery(t, db, "SELECT md5(string_agg(v::text, ',' ORDER BY v::text)) FROM "+name+" v")
		default:
			out[name] = s.MustQuery(t, db, "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM "+name+" x")
		}
	}
	out["functions"] = s.MustQuery(t, db, `SELECT string_agg(p.oid::regprocedure::text, ',' ORDER BY 1) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog','information_schema')`)
	out["triggers"] = s.MustQuery(t, db, `SELECT string_agg(tgname, ',' ORDER BY 1) FROM pg_trigger WHERE NOT tgisinternal`)
	out["types"] = s.MustQuery(t, db, `SELECT string_agg(t.typname, ',' ORDER BY 1) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\_%' AND t.typtype = 'e'`)
	return out
}

func equalMaps(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s after restore: %q", k, got[k])
		}
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

// populatedTarget is a database with data that the restore must replace.
func populatedTarget(t *testing.T, s *pgserver.Server) string {
	t.Helper()
	db := newDB(t, s)
	s.MustQuery(t, db, `CREATE SCHEMA stale_schema;
CREATE TABLE stale_schema.t (a int); INSERT INTO stale_schema.t VALUES (1);
CREATE TABLE public.stale (a int); INSERT INTO public.stale SELECT generate_series(1, 10);
CREATE TABLE public.people (id int, name text); INSERT INTO public.people VALUES (-1, 'old');
CREATE FUNCTION public.old_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
SELECT lo_create(0);`)
	return db
}

func TestPostgres_RoundTripIntoAnotherDatabase(t *testing.T) {
	s := server(t)
	src := newDB(t, s)
	s.MustQuery(t, src, fixture)
	want := checksums(t, s, src)
	data := dump(t, newEngine(t, s, src))

	dst := populatedTarget(t, s)
	publicACLBefore := s.MustQuery(t, dst, `SELECT nspowner::regrole || ' ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'public'`)
	if err := newEngine(t, s, dst).Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	equalMaps(t, want, checksums(t, s, dst))
	if n := s.MustQuery(t, dst, `SELECT count(*) FROM pg_namespace WHERE nspname = 'stale_schema'`); n != "0" {
		t.Errorf("stale_schema survived the restore")
	}
	if n := s.MustQuery(t, dst, `SELECT count(*) FROM pg_largeobject_metadata`); n != "0" {
		t.Errorf("%s large objects survived the restore", n)
	}
	if got := s.MustQuery(t, dst, `SELECT nspowner::regrole || ' ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'public'`); got != publicACLBefore {
		t.Errorf("public schema owner/ACL changed: %q -> %q", publicACLBefore, got)
	}
	// The trigger works in the restored database, and identity/serial continue.
	s.MustQuery(t, dst, `UPDATE app.orders SET amount = amount WHERE id = 1`)
	if got := s.MustQuery(t, dst, `SELECT updated_at = '1999-01-01 00:00:00+00' FROM app.orders WHERE id = 1`); got != "t" {
		t.Errorf("trigger did not fire after restore: %q", got)
	}
	if got := s.MustQuery(t, dst, `INSERT INTO public.people (name) VALUES ('new') RETURNING id`); got != "2002" {
		t.Errorf("serial continued at %q, want 2002", got)
	}

	// Restoring the same dump again (over itself) is also fine.
	if err := newEngine(t, s, dst).Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("second Restore: %v", err)
	}
	equalMaps(t, want, checksums(t, s, dst))
}

func TestPostgres_RestoreWithStockPsql(t *testing.T) {
	// No lock-in: the dump is plain SQL that psql loads into an empty database.
	s := server(t)
	src := newDB(t, s)
	s.MustQuery(t, src, fixture)
	want := checksums(t, s, src)
	data := dump(t, newEngine(t, s, src))
	dst := newDB(t, s)
	if _, err := s.Query(dst, string(data)); err != nil {
		t.Fatalf("psql < dump: %v", err)
	}
	equalMaps(t, want, checksums(t, s, dst))
}

func TestPostgres_RestoreFailureLeavesTarget(t *testing.T) {
	s := server(t)
	src := newDB(t, s)
	s.MustQuery(t, src, fixture)
	data := dump(t, newEngine(t, s, src))
	copyAt := bytes.Index(data, []byte("COPY public.people"))
	if copyAt < 0 {
		copyAt = bytes.Index(data, []byte(`COPY "public"."people"`))
	}
	if copyAt < 0 {
		t.Fatal("no COPY of people in the dump")
	}
	cases := map[string][]byte{
		"truncated in half":        data[:len(data)/2],
		"truncated inside COPY":    data[:copyAt+2000],
		"truncated before trailer": data[:bytes.LastIndex(data, []byte("-- PostgreSQL database dump complete"))],
		"corrupt statement":        bytes.Replace(data, []byte("CREATE TABLE"), []byte("CREATE TABEL"), 1),
		"corrupt row":              bytes.Replace(data, []byte("\t1.500\t"), []byte("\tnot-a-number\t"), 1),
		"garbage":                  []byte("\x00\x01 this is not SQL at all"),
		"empty":                    nil,
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			dst := populatedTarget(t, s)
			before := checksums(t, s, dst)
			err := newEngine(t, s, dst).Restore(context.Background(), bytes.NewReader(bad))
			if err == nil {
				t.Fatal("Restore of a bad dump succeeded")
			}
			if r := engine.ReasonOf(err); r != engine.ReasonRestoreFailed {
				t.Errorf("reason = %q, want %q (%v)", r, engine.ReasonRestoreFailed, err)
			}
			equalMaps(t, before, checksums(t, s, dst))
			if n := s.MustQuery(t, dst, `SELECT count(*) FROM pg_largeobject_metadata`); n != "1" {
				t.Errorf("large object count = %s, want 1", n)
			}
		})
	}
}

func TestPostgres_RestoreReaderErrorLeavesTarget(t *testing.T) {
	s := server(t)
	src := newDB(t, s)
	s.MustQuery(t, src, fixture)
	data := dump(t, newEngine(t, s, src))
	dst := populatedTarget(t, s)
	before := checksums(t, s, dst)
	r := io.MultiReader(bytes.NewReader(data[:len(data)-200]), errReader{errors.New("network went away")})
	err := newEngine(t, s, dst).Restore(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "network went away") {
		t.Fatalf("Restore error = %v, want the reader's error", err)
	}
	equalMaps(t, before, checksums(t, s, dst))
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestPostgres_Check(t *testing.T) {
	s := server(t)
	db := newDB(t, s)
	ctx := context.Background()
	if err := newEngine(t, s, db).Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}

	bad := newEngine(t, s, db)
	bad.opts.Password = "wrong-password-123"
	err := bad.Check(ctx)
	if engine.ReasonOf(err) != engine.ReasonTargetAuthenticationFailed {
		t.Errorf("bad password: reason %q (%v), want %s", engine.ReasonOf(err), err, engine.ReasonTargetAuthenticationFailed)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-password-123") {
		t.Errorf("error reveals the password: %v", err)
	}

	port, err := pgserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	down := newEngine(t, s, db)
	down.opts.Port = port
	if err := down.Check(ctx); engine.ReasonOf(err) != engine.ReasonTargetUnreachable {
		t.Errorf("nothing listening: reason %q (%v), want %s", engine.ReasonOf(err), err, engine.ReasonTargetUnreachable)
	}
	var buf bytes.Buffer
	if err := down.Dump(ctx, &buf); engine.ReasonOf(err) != engine.ReasonTargetUnreachable {
		t.Errorf("Dump with nothing listening: reason %q (%v)", engine.ReasonOf(err), err)
	}
	if err := down.Restore(ctx, strings.NewReader("SELECT 1;")); engine.ReasonOf(err) != engine.ReasonTargetUnreachable {
		t.Errorf("Restore with nothing listening: reason %q (%v)", engine.ReasonOf(err), err)
	}

	nohost := newEngine(t, s, db)
	nohost.opts.Host = "no-such-host.invalid"
	if err := nohost.Check(ctx); engine.ReasonOf(err) != engine.ReasonTargetUnreachable {
		t.Errorf("unknown host: reason %q (%v), want %s", engine.ReasonOf(err), err, engine.ReasonTargetUnreachable)
	}
	nodb := newEngine(t, s, "no_such_db")
	if err := nodb.Check(ctx); engine.ReasonOf(err) != engine.ReasonDatabaseNotFound {
		t.Errorf("missing database: reason %q (%v), want %s", engine.ReasonOf(err), err, engine.ReasonDatabaseNotFound)
	}
	if err := nodb.Dump(ctx, &buf); engine.ReasonOf(err) != engine.ReasonDatabaseNotFound {
		t.Errorf("Dump of a missing database: reason %q (%v), want %s", engine.ReasonOf(err), err, engine.ReasonDatabaseNotFound)
	}
}

func TestPostgres_Version(t *testing.T) {
	s := server(t)
	v, err := newEngine(t, s, "postgres").Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "PostgreSQL ") || !strings.Contains(v, "pg_dump") {
		t.Errorf("Version = %q", v)
	}
}

// gateWriter accepts the first chunk, then blocks until released.
type gateWriter struct {
	once    sync.Once
	first   chan struct{}
	release chan struct{}
	n       int
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.n += len(p)
	if g.n > 64<<10 {
		g.once.Do(func() { close(g.first) })
		<-g.release
	}
	return len(p), nil
}

func bigDB(t *testing.T, s *pgserver.Server) string {
	db := newDB(t, s)
	s.MustQuery(t, db, `CREATE TABLE big AS SELECT i, md5(i::text) AS h, repeat('x', 200) AS pad FROM generate_series(1, 200000) i`)
	return db
}

func TestPostgres_DumpFailsWhenServerConnectionDies(t *testing.T) {
	s := server(t)
	db := bigDB(t, s)
	g := &gateWriter{first: make(chan struct{}), release: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- newEngine(t, s, db).Dump(context.Background(), g) }()
	select {
	case <-g.first:
	case err := <-errc:
		t.Fatalf("Dump ended before the gate: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("Dump produced no data")
	}
	// The server ends pg_dump's session while pg_dump is mid-dump.
	s.MustQuery(t, "postgres", fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND application_name = 'backstop'`, db))
	close(g.release)
	err := <-errc
	if err == nil {
		t.Fatal("Dump succeeded although its connection was terminated")
	}
	if r := engine.ReasonOf(err); r != engine.ReasonDumpFailed && r != engine.ReasonTargetUnreachable {
		t.Errorf("reason = %q (%v)", r, err)
	}
	t.Logf("Dump error: %v", err)
}

func TestPostgres_DumpFailsWhenKilled(t *testing.T) {
	s := server(t)
	db := bigDB(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &gateWriter{first: make(chan struct{}), release: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- newEngine(t, s, db).Dump(ctx, g) }()
	<-g.first
	cancel() // pg_dump is signalled while it is mid-dump
	time.Sleep(200 * time.Millisecond)
	close(g.release)
	err := <-errc
	if err == nil {
		t.Fatal("Dump succeeded although pg_dump was killed")
	}
	if r := engine.ReasonOf(err); r != engine.ReasonDumpFailed {
		t.Errorf("reason = %q (%v), want DumpFailed", r, err)
	}
	t.Logf("Dump error: %v", err)
}

func TestPostgres_WriterErrorFailsDump(t *testing.T) {
	s := server(t)
	db := bigDB(t, s)
	err := newEngine(t, s, db).Dump(context.Background(), failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Dump error = %v, want the writer's error", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPostgres_NewValidatesOptions(t *testing.T) {
	if _, err := New(engine.Options{Host: "h", Databases: []string{"a", "b"}}); err == nil {
		t.Error("two databases accepted")
	}
	if _, err := New(engine.Options{Host: "h", Databases: []string{"a"}, TLSMode: "bogus"}); err == nil {
		t.Error("bogus TLS mode accepted")
	}
}
