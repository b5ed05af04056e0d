package postgres

import (
	"reflect"
	"testing"

	"github.com/backstop-io/backstop/internal/manifest"
)

// countSplit counts dump written in two writes cut at every byte, and in
// writes of one byte, and fails unless every way gives want.
func countSplit(t *testing.T, dump string, want []manifest.TableRows) {
	t.Helper()
	run := func(parts ...string) []manifest.TableRows {
		c := NewInventory()
		for _, p := range parts {
			if n, err := c.Write([]byte(p)); n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		inv, err := c.Result()
		if err != nil {
			t.Fatal(err)
		}
		return inv.Tables
	}
	for i := 0; i <= len(dump); i++ {
		if got := run(dump[:i], dump[i:]); !reflect.DeepEqual(got, want) {
			t.Fatalf("cut at byte %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	var bytes []string
	for i := range dump {
		bytes = append(bytes, dump[i:i+1])
	}
	if got := run(bytes...); !reflect.DeepEqual(got, want) {
		t.Fatalf("one byte per write:\n got %+v\nwant %+v", got, want)
	}
}

// Tables and rows come from CREATE TABLE and COPY blocks only: not from
// look-alike lines inside function bodies, string literals or comments,
// nor from data lines that start with a backslash or hold escaped line
// breaks; partitioned parents have 0 rows, views and foreign tables are
// not tables.
func TestInventory_CountsCopyRowsPerTable(t *testing.T) {
	dump := `--
-- PostgreSQL database dump
--

\restrict Abc123

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE FUNCTION "public"."f"() RETURNS "text"
    LANGUAGE "plpgsql"
    AS $_$
BEGIN
CREATE TABLE "public"."not_a_table" (a int);
COPY "public"."t" ("a") FROM stdin;
RETURN 'x$_';
END
$_$;

COMMENT ON FUNCTION "public"."f"() IS 'it''s
CREATE TABLE "public"."in_a_string" (a int);
COPY "public"."t" ("a") FROM stdin;
end';

/* a comment /* nested */
CREATE TABLE "public"."in_a_comment" (a int);
*/

CREATE TABLE "public"."t" (
    "a" "text"
);

CREATE TABLE "we""ird"."ta.b le" (
    "x" integer
);

CREATE UNLOGGED TABLE "public"."u" (
    "x" integer
);

CREATE TABLE "public"."empty" (
    "x" integer
);

CREATE TABLE "public"."parted" (
    "x" integer
)
PARTITION BY RANGE ("x");

CREATE TABLE "public"."parted_1" (
    "x" integer
);

CREATE VIEW "public"."v" AS
 SELECT "a"
   FROM "public"."t";

CREATE FOREIGN TABLE "public"."ft" (
    "x" integer
)
SERVER "s";

ALTER TABLE ONLY "public"."parted" ATTACH PARTITION "public"."parted_1" FOR VALUES FROM (0) TO (10);

COPY "public"."t" ("a") FROM stdin;
plain
with\nnewline
\\.not the end
\N

'quote' "dq" , ( ) \\ $$
\.

COPY "we""ird"."ta.b le" ("x") FROM stdin;
1
\.

COPY "public"."u" ("x") FROM stdin;
\.

COPY "public"."parted_1" ("x") FROM stdin;
1
2
3
\.

COPY "public"."ext_config" ("x") FROM stdin;
7
\.

SELECT pg_catalog.setval('"public"."s"', 1, false);

--
-- PostgreSQL database dump complete
--

\unrestrict Abc123

`
	countSplit(t, dump, []manifest.TableRows{
		{Schema: "public", Name: "t", Rows: 6},
		{Schema: `we"ird`, Name: "ta.b le", Rows: 1},
		{Schema: "public", Name: "u", Rows: 0},
		{Schema: "public", Name: "empty", Rows: 0},
		{Schema: "public", Name: "parted", Rows: 0},
		{Schema: "public", Name: "parted_1", Rows: 3},
		{Schema: "public", Name: "ext_config", Rows: 1},
	})
}

// Strings with an E prefix keep backslash escapes, also after a doubled quote; $1 is
// not a dollar quote.
func TestInventory_Lexer(t *testing.T) {
	dump := "SELECT E'a\\'b'';\nCREATE TABLE \"x\".\"no1\" (a int);\n';\n" +
		"SELECT $1, 'x';\nCREATE TABLE \"x\".\"yes\" (a int);\n" +
		"SELECT a$b$ FROM t;\nCREATE TABLE \"x\".\"yes2\" (a int);\n" +
		"SELECT $tag$ $ta $tag $tag$;\nCREATE TABLE x.yes3 (a int);\n"
	countSplit(t, dump, []manifest.TableRows{
		{Schema: "x", Name: "yes", Rows: 0},
		{Schema: "x", Name: "yes2", Rows: 0},
		{Schema: "x", Name: "yes3", Rows: 0},
	})
}
