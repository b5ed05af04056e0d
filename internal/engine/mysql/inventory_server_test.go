package mysql

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
)

const inventoryFixture = `
CREATE TABLE tricky (id INT PRIMARY KEY, s TEXT, b BLOB, j JSON);
INSERT INTO tricky VALUES
	(1, 'line one\nline two\r\nthree', X'00FF0A', '{"a": "(,)"}'),
	(2, 'quote '' "double" , comma ( paren ) paren;', NULL, NULL),
	(3, 'back\\slash \\'' \\\\', X'5C27', '[1,2]'),
	(4, NULL, NULL, NULL),
	(5, '', X'', '{}'),
	(6, '),(', X'29282C', NULL),
	(7, 'INSERT INTO tricky VALUES (1);', X'3B', NULL);
CREATE TABLE big (id INT PRIMARY KEY, pad TEXT);
INSERT INTO big SELECT seq, REPEAT('(x,''y'')', 200) FROM seq_1_to_4000;
CREATE TABLE empty (a INT);
CREATE TABLE ` + "`we``ird, (x)`" + ` (a INT);
INSERT INTO ` + "`we``ird, (x)`" + ` VALUES (1), (2);
`

// tableCounts lists the base tables of db with SELECT COUNT(*) of each.
func tableCounts(t *testing.T, s *mariadbserver.Server, db string) []manifest.TableRows {
	t.Helper()
	out := s.MustQuery(t, "", fmt.Sprintf(`SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND TABLE_TYPE = 'BASE TABLE'`, db))
	var tables []manifest.TableRows
	for _, name := range strings.Split(out, "\n") {
		n, err := strconv.ParseInt(s.MustQuery(t, db, "SELECT COUNT(*) FROM "+mariadbserver.QuoteIdent(name)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, manifest.TableRows{Database: db, Name: name, Rows: n})
	}
	return tables
}

func sortTables(ts []manifest.TableRows) []manifest.TableRows {
	ts = append([]manifest.TableRows{}, ts...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Database+"\x00"+ts[i].Name < ts[j].Database+"\x00"+ts[j].Name })
	return ts
}

// The inventory counted from a real two-database dump lists every base
// table of both databases with the rows SELECT COUNT(*) finds, before and
// after a restore: values with quotes, commas, parentheses, backslashes,
// line breaks, NULLs and binary count once, a table split over several
// INSERT statements counts them all, an empty table 0; views, sequences
// and the INSERT inside a trigger's body are not counted.
func TestMySQL_InventoryMatchesCountsAfterRestore(t *testing.T) {
	s := server(t)
	a, b := newDB(t, s), newDB(t, s)
	s.MustQuery(t, a, fixture)
	s.MustQuery(t, a, inventoryFixture)
	s.MustQuery(t, b, "CREATE TABLE u (y TEXT); INSERT INTO u VALUES ('b'), (NULL); CREATE VIEW uv AS SELECT * FROM u")
	want := sortTables(append(tableCounts(t, s, a), tableCounts(t, s, b)...))

	e := newEngine(t, s, a, b)
	inv := engine.NewInventory(Name)
	var buf bytes.Buffer
	if err := e.Dump(context.Background(), io.MultiWriter(&buf, inv)); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if n := bytes.Count(buf.Bytes(), []byte("\nINSERT INTO `big` VALUES")); n < 2 {
		t.Fatalf("table big is in %d INSERT statements; the test wants several", n)
	}
	res, err := inv.Result()
	if err != nil {
		t.Fatal(err)
	}
	got := sortTables(res.Tables)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("inventory:\n%+v\nSELECT COUNT(*):\n%+v", got, want)
	}
	for _, tr := range got {
		if tr.Name == "tricky" && tr.Rows != 7 || tr.Name == "big" && tr.Rows != 4000 || tr.Name == "empty" && tr.Rows != 0 {
			t.Errorf("%s: %d rows", tr.Name, tr.Rows)
		}
	}

	s.MustQuery(t, a, "DELETE FROM tricky; DELETE FROM big")
	s.MustQuery(t, b, "DELETE FROM u")
	if err := e.Restore(context.Background(), bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if after := sortTables(append(tableCounts(t, s, a), tableCounts(t, s, b)...)); fmt.Sprint(after) != fmt.Sprint(got) {
		t.Fatalf("inventory:\n%+v\nafter the restore:\n%+v", got, after)
	}
}
