package postgres

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

// What a reader of the target sees while a restore runs: the prelude's
// DROPs lock the old tables, so a query on one waits until the restore's
// transaction ends, then sees the restored rows; it never sees the old
// and the new mixed, nor an empty table.
func TestPostgres_ReadersWaitForTheRestore(t *testing.T) {
	s := server(t)
	data, dst := ordersToRestore(t, s)

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

// A session that holds one of the target's tables (an application's open
// transaction) makes the restore wait at most its lock timeout, then give
// up with TargetBusy, the target unchanged: waiting for ever would also
// queue every new query on that table behind the restore.
func TestPostgres_RestoreGivesUpOnABusyTarget(t *testing.T) {
	s := server(t)
	data, dst := ordersToRestore(t, s)

	release := s.LockTable(t, dst, "orders")
	e := newEngine(t, s, dst)
	e.opts.LockTimeout = time.Second
	start := time.Now()
	err := e.Restore(context.Background(), bytes.NewReader(data))
	if engine.ReasonOf(err) != engine.ReasonTargetBusy || !strings.Contains(err.Error(), "more than 1s") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("restore of a busy target: reason %q, %v; want %s", engine.ReasonOf(err), err, engine.ReasonTargetBusy)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the restore gave up after %s", took)
	}
	release()
	if got := s.MustQuery(t, dst, "SELECT count(*) FROM orders"); got != "100" {
		t.Fatalf("after the refused restore the target has %s rows, want its 100", got)
	}

	if err := e.Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("restore once the session is gone: %v", err)
	}
	if got := s.MustQuery(t, dst, "SELECT count(*) FROM orders"); got != "50" {
		t.Errorf("restored %s rows, want 50", got)
	}
}

// The restore's wipe waits at most the lock timeout, a minute unless set:
// README promises a minute.
func TestPrelude_LockTimeout(t *testing.T) {
	e, err := New(engine.Options{Host: "db", Databases: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := prelude(engine.LockTimeoutOf(e.opts)); !strings.HasPrefix(p, "BEGIN;\nSET LOCAL lock_timeout = '60000ms';\n") {
		t.Errorf("prelude starts %.60q", p)
	}
}

// ordersToRestore returns the dump of a table of 50 orders and a database
// whose table of orders holds 100, to restore it into.
func ordersToRestore(t *testing.T, s *pgserver.Server) (data []byte, dst string) {
	t.Helper()
	src := newDB(t, s)
	s.MustQuery(t, src, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 50)")
	data = dump(t, newEngine(t, s, src))
	dst = newDB(t, s)
	s.MustQuery(t, dst, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)")
	return data, dst
}
