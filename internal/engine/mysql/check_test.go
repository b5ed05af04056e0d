package mysql

import (
	"bytes"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
)

func checkDump(data []byte, chunk int) (int64, error) {
	c := &DumpCheck{}
	for off := 0; off < len(data); off += chunk {
		c.Write(data[off:min(off+chunk, len(data))])
	}
	got, err := c.Complete()
	if err != nil || got.Entries == nil {
		return 0, err
	}
	return *got.Entries, nil
}

// A dump of several databases is complete only with every database's dump
// and events dump whole, however it is cut into writes.
func TestDumpCheck_SeveralDatabases(t *testing.T) {
	s := server(t)
	a, b := newDB(t, s), newDB(t, s)
	s.MustQuery(t, a, "CREATE TABLE t (x INT); INSERT INTO t VALUES (1), (2)")
	s.MustQuery(t, b, "CREATE TABLE u (y TEXT); INSERT INTO u VALUES ('b')")
	data := dump(t, newEngine(t, s, a, b))
	for _, chunk := range []int{1, 7, 4096, len(data)} {
		if n, err := checkDump(data, chunk); err != nil || n != 2 {
			t.Fatalf("writes of %d bytes: the whole dump: %d databases, %v", chunk, n, err)
		}
	}
	second := bytes.Index(data, []byte("\n"+databaseMarker+b))
	secondEvents := bytes.Index(data, []byte("\n"+eventsMarker+b))
	if second < 0 || secondEvents < 0 {
		t.Fatal("the dump has no markers for the second database")
	}
	// Cut between the databases, it is a complete dump of one database:
	// the manifest's count of databases tells it from the whole.
	if n, err := checkDump(data[:second+1], 4096); err != nil || n != 1 {
		t.Errorf("the first database alone: %d databases, %v", n, err)
	}
	for name, cut := range map[string][]byte{
		"second database cut in its data":    data[:(second+secondEvents)/2],
		"second database without its events": data[:secondEvents+1],
		"events of the second cut short":     data[:len(data)-30],
		"first database without its events":  append(append([]byte{}, data[:bytes.Index(data, []byte("\n"+eventsMarker+a))+1]...), data[second+1:]...),
	} {
		_, err := checkDump(cut, 4096)
		if engine.ReasonOf(err) != engine.ReasonDumpIncomplete {
			t.Errorf("%s: %v, want %s", name, err, engine.ReasonDumpIncomplete)
		}
	}
}
