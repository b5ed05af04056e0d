package postgres

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

const inventoryFixture = `
CREATE SCHEMA "Odd ""Schema""";
CREATE TABLE "Odd ""Schema"""."Ta.ble, (x)" (id int, note text);
INSERT INTO "Odd ""Schema"""."Ta.ble, (x)" VALUES (1, 'a'), (2, 'b');
CREATE TABLE public.empty (a int);
CREATE TABLE public.tricky (id int, s text, b bytea);
INSERT INTO public.tricky VALUES
	(1, E'line one\nline two\r\nthree', '\x00ff0a'),
	(2, 'quote '' "double" , comma ( paren ) paren', NULL),
	(3, E'back\\slash \\. and \\N', '\x5c2e0a'),
	(4, NULL, NULL),
	(5, '', ''),
	(6, E'\\.', decode('5c2e', 'hex')),
	(7, E'\n\\.\n', '\x0a');
INSERT INTO public.tricky SELECT i, repeat('x', i % 100), NULL FROM generate_series(100, 1099) i;
CREATE TABLE public.parted (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE public.parted_low PARTITION OF public.parted FOR VALUES FROM (0) TO (100);
CREATE TABLE public.parted_high PARTITION OF public.parted FOR VALUES FROM (100) TO (1000);
INSERT INTO public.parted SELECT i, 'v' || i FROM generate_series(1, 250) i;
CREATE TABLE public.parent (id int);
CREATE TABLE public.child (extra text) INHERITS (public.parent);
INSERT INTO public.parent VALUES (1), (2);
INSERT INTO public.child VALUES (3, 'c');
CREATE UNLOGGED TABLE public.scratch (a int);
INSERT INTO public.scratch VALUES (1);
CREATE VIEW public.tricky_view AS SELECT * FROM public.tricky;
CREATE MATERIALIZED VIEW public.tricky_mat AS SELECT id FROM public.tricky;
CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
CREATE TABLE public.not_a_table (a int);
END
$fn$;
`

// tablesByCount lists the ordinary and partitioned tables of db with
// `SELECT count(*) FROM ONLY` of each, as a drill counts them.
func tablesByCount(t *testing.T, s *pgserver.Server, db string) []manifest.TableRows {
	t.Helper()
	out := s.MustQuery(t, db, `SELECT n.nspname || E'\t' || c.relname || E'\t' || format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\_%'`)
	var tables []manifest.TableRows
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		n, err := strconv.ParseInt(s.MustQuery(t, db, "SELECT count(*) FROM ONLY "+f[2]), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, manifest.TableRows{Schema: f[0], Name: f[1], Rows: n})
	}
	return sortTables(tables)
}

func sortTables(ts []manifest.TableRows) []manifest.TableRows {
	ts = append([]manifest.TableRows{}, ts...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Schema+"\x00"+ts[i].Name < ts[j].Schema+"\x00"+ts[j].Name })
	return ts
}

// The inventory counted from a real pg_dump lists every table with the
// rows that `SELECT count(*) FROM ONLY` finds, in the source and after a
// restore: rows with line breaks, quotes, backslashes and NULLs count
// once, an empty table 0, a partitioned table 0 and each partition its own,
// and views, materialized views and a CREATE TABLE inside a function body
// are not tables.
func TestPostgres_InventoryMatchesCountsAfterRestore(t *testing.T) {
	s := server(t)
	src := newDB(t, s)
	s.MustQuery(t, src, inventoryFixture)
	want := tablesByCount(t, s, src)

	inv := engine.NewInventory(Name)
	var buf bytes.Buffer
	if err := newEngine(t, s, src).Dump(context.Background(), io.MultiWriter(&buf, inv)); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	got, err := inv.Result()
	if err != nil {
		t.Fatal(err)
	}
	if g := sortTables(got.Tables); !equalTables(g, want) {
		t.Fatalf("inventory:\n%+v\nSELECT count(*) FROM ONLY:\n%+v", g, want)
	}
	for _, tr := range got.Tables {
		if tr.Name == "tricky" && tr.Rows != 1007 || tr.Name == "parted" && tr.Rows != 0 || tr.Name == "parted_high" && tr.Rows != 151 {
			t.Errorf("%s: %d rows", tr.Name, tr.Rows)
		}
	}

	dst := newDB(t, s)
	if err := newEngine(t, s, dst).Restore(context.Background(), bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if after := tablesByCount(t, s, dst); !equalTables(sortTables(got.Tables), after) {
		t.Fatalf("inventory:\n%+v\nafter the restore:\n%+v", sortTables(got.Tables), after)
	}
}

func equalTables(a, b []manifest.TableRows) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
