package postgres

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// What a reader of the target sees while a restore runs: the prelude's
// DROPs lock the old tables, so a query on one waits until the restore's
// transaction ends, then sees the restored rows; it never sees the old
// and the new mixed, nor an empty table.
func TestPostgres_ReadersWaitForTheRestore(t *testing.T) {
	s := server(t)
	src := newDB(t, s)
	s.MustQuery(t, src, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 50)")
	data := dump(t, newEngine(t, s, src))
	dst := newDB(t, s)
	s.MustQuery(t, dst, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)")

	// The restore gets the dump up to its data, then waits for the rest.
	cut := bytes.Index(data, []byte("COPY "))
	if cut < 0 {
		t.Fatal("the dump has no COPY")
	}
	pr, pw := io.Pipe()
	restored := make(chan error, 1)
	go func() { restored <- newEngine(t, s, dst).Restore(context.Background(), pr) }()
	go func() { _, _ = pw.Write(data[:cut]) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The restore's session holds the old table's lock, idle in its
		// transaction while it waits for the rest of the dump.
		held := s.MustQuery(t, dst, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE a.application_name = 'backstop' AND l.mode = 'AccessExclusiveLock' AND a.state = 'idle in transaction'`)
		if held != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restore never held the old tables' locks")
		}
		time.Sleep(50 * time.Millisecond)
	}

	_, err := s.Query(dst, "SET statement_timeout = '1s'; SELECT count(*) FROM orders")
	if err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Fatalf("a reader during the restore: %v; want it to wait (statement timeout)", err)
	}

	// A reader that waits gets the restored rows once the restore commits.
	read := make(chan string, 1)
	go func() {
		out, err := s.Query(dst, "SELECT count(*), max(id) FROM orders")
		if err != nil {
			out = err.Error()
		}
		read <- out
	}()
	for s.MustQuery(t, dst, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%max(id)%'`) == "0" {
		if time.Now().After(deadline) {
			t.Fatal("the reader never waited for the restore")
		}
		time.Sleep(50 * time.Millisecond)
	}
	go func() { _, _ = pw.Write(data[cut:]); _ = pw.Close() }()
	if err := <-restored; err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := <-read; got != "50|50" {
		t.Errorf("the waiting reader got %q, want the restored 50|50", got)
	}
}
