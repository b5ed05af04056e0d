// Package postgres is the PostgreSQL engine: a plain-SQL pg_dump of one
// database, restored with psql as one transaction.
//
// # Dump
//
// pg_dump --format=plain --no-owner --no-privileges --no-tablespaces
// --no-subscriptions writes the database as SQL a stock psql can replay into
// any database, on any server of the same or a newer major version:
//
//   - --no-owner and --no-privileges: ownership and GRANTs name roles that
//     often do not exist where the dump is restored (another cluster, another
//     tenant). Restored objects belong to the restoring user; the restore keeps
//     the target's own owner and privileges on the public schema. This is what
//     CloudNativePG's import does too.
//   - --no-tablespaces: tablespaces are a property of the server, not the data.
//   - --no-subscriptions: CREATE SUBSCRIPTION cannot run inside a transaction
//     block, and restoring one would start replication from the restored copy.
//
// # Restore
//
// psql runs, in ONE explicit transaction on one connection:
//
//  1. a prelude that wipes the target database: event triggers, publications,
//     extensions (except plpgsql), foreign servers and wrappers, large objects
//     and every user schema are dropped; the public schema is dropped and
//     recreated with its previous owner, privileges and comment (pg_dump does
//     not create "public": it expects it to exist);
//  2. the dump, unchanged (it empties search_path with set_config after the
//     prelude ran, and the prelude qualifies every name it uses, so neither
//     disturbs the other);
//  3. COMMIT — appended only when the dump ended with pg_dump's completion
//     trailer, followed by a SELECT whose output proves the COMMIT ran.
//
// psql stops at the first error (ON_ERROR_STOP), and a transaction that never
// reaches COMMIT is rolled back when psql disconnects, so a failing, truncated
// or corrupt dump leaves the database exactly as it was. The transaction is
// explicit rather than psql --single-transaction because psql commits at the
// end of its input, and a dump cut off inside a COPY block would otherwise be
// committed with the rows that happened to arrive. The DROPs hold ACCESS
// EXCLUSIVE locks until the transaction ends, so concurrent readers and
// writers of the old tables wait for the restore to finish, then see the
// restored data (or, after a failure, the old): never a mix.
//
// The restoring user must own the target database (or be a superuser): it
// drops and recreates the public schema.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/backstop-io/backstop/internal/engine"
)

// Name is the engine's registered name.
const Name = "postgres"

func init() {
	engine.Register(Name, func(o engine.Options) (engine.Engine, error) { return New(o) })
	engine.RegisterDumpCheck(Name, func() engine.DumpCheck { return &DumpCheck{} })
	engine.RegisterContentFilter(Name, NewContentFilter)
	engine.RegisterInventory(Name, func() engine.Inventory { return NewInventory() })
}

// NewContentFilter passes a dump to w without the two lines that pg_dump
// (since 17.6, 16.10, 15.14, 14.19 and 13.22) makes different in every
// dump: the first line "\restrict KEY" and the line "\unrestrict KEY" with
// the same KEY, a random string of letters and digits that keeps psql
// from running meta-commands hidden in the data. The key stays in the
// artifact; it is only left out of the content digest, which is then the
// same for the same data.
func NewContentFilter(w io.Writer) engine.ContentFilter {
	var key []byte
	return &engine.LineFilter{W: w, First: '\\', MaxLine: 512, Drop: func(line []byte) bool {
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if key == nil {
			k, ok := bytes.CutPrefix(line, []byte(`\restrict `))
			if ok && isKey(k) {
				key = append([]byte{}, k...)
			}
			return ok && key != nil
		}
		k, ok := bytes.CutPrefix(line, []byte(`\unrestrict `))
		return ok && bytes.Equal(k, key)
	}}
}

func isKey(k []byte) bool {
	for _, c := range k {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return len(k) > 0
}

// CheckMethod is how a dump is found complete, as the manifest records it.
const CheckMethod = "pg_dump completion trailer"

// DumpCheck checks that a dump ends with pg_dump's completion trailer:
// the line "-- PostgreSQL database dump complete", followed only by
// comments, blank lines and the \unrestrict line. pg_dump writes it last,
// after every table's data, so a dump without it was cut short.
type DumpCheck struct{ trailerCheck }

// Complete implements engine.DumpCheck.
func (c *DumpCheck) Complete() (engine.Completeness, error) {
	if !c.complete() {
		return engine.Completeness{}, errIncompleteDump()
	}
	return engine.Completeness{Method: CheckMethod}, nil
}

func errIncompleteDump() error {
	return engine.Errorf(engine.ReasonDumpIncomplete, "the dump ends without pg_dump's completion trailer (%q): it was cut short", "-- PostgreSQL database dump complete")
}

// Engine dumps and restores one PostgreSQL database.
type Engine struct {
	opts     engine.Options
	database string
	// PgDump and Psql are the client binaries; empty means look them up in PATH.
	PgDump, Psql string
}

// New checks the options and returns the engine.
func New(o engine.Options) (*Engine, error) {
	if o.Host == "" {
		return nil, errors.New("postgres: host is required")
	}
	if len(o.Databases) != 1 || o.Databases[0] == "" {
		return nil, fmt.Errorf("postgres: exactly one database is required, got %d", len(o.Databases))
	}
	switch o.TLSMode {
	case "", "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		return nil, fmt.Errorf("postgres: unknown TLS mode %q", o.TLSMode)
	}
	return &Engine{opts: o, database: o.Databases[0]}, nil
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

func (e *Engine) pgDump() string {
	if e.PgDump != "" {
		return e.PgDump
	}
	return "pg_dump"
}

func (e *Engine) psql() string {
	if e.Psql != "" {
		return e.Psql
	}
	return "psql"
}

// env is the libpq environment: the password goes here, never into argv.
func (e *Engine) env() []string {
	env := make([]string, 0, len(os.Environ())+10)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue // no stray libpq settings from the agent's environment
		}
		env = append(env, kv)
	}
	env = append(env,
		"PGHOST="+e.opts.Host,
		"PGDATABASE="+e.database,
		"PGAPPNAME=backstop",
		"PGCONNECT_TIMEOUT=15",
		"PGPASSFILE="+os.DevNull,
	)
	if e.opts.Port != 0 {
		env = append(env, "PGPORT="+strconv.Itoa(e.opts.Port))
	}
	if e.opts.User != "" {
		env = append(env, "PGUSER="+e.opts.User)
	}
	if e.opts.Password != "" {
		env = append(env, "PGPASSWORD="+e.opts.Password)
	}
	mode := e.opts.TLSMode
	if mode == "" {
		mode = "prefer"
	}
	env = append(env, "PGSSLMODE="+mode)
	if e.opts.CAFile != "" {
		env = append(env, "PGSSLROOTCERT="+e.opts.CAFile)
	}
	return env
}

func (e *Engine) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.env()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if e.opts.ScratchDir != "" {
		cmd.Dir = e.opts.ScratchDir
	}
	return cmd
}

// query runs one SQL statement with psql and returns its unaligned output.
func (e *Engine) query(ctx context.Context, sql string, fallback string) (string, error) {
	cmd := e.command(ctx, e.psql(), "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
	var out bytes.Buffer
	stderr := newTail(4096)
	cmd.Stdout = &out
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return "", classify(ctx, "psql", err, stderr.String(), fallback)
	}
	return strings.TrimSpace(out.String()), nil
}

// Query runs one SQL statement in the engine's database and returns its
// output: one line per row, columns separated by "|". A restore drill
// checks the restored data with it.
func (e *Engine) Query(ctx context.Context, sql string) (string, error) {
	return e.query(ctx, sql, engine.ReasonRestoreFailed)
}

// Check implements engine.Engine: connect and SELECT 1.
func (e *Engine) Check(ctx context.Context) error {
	_, err := e.query(ctx, "SELECT 1", engine.ReasonTargetUnreachable)
	return err
}

// Version implements engine.Engine: the server version and pg_dump's version.
func (e *Engine) Version(ctx context.Context) (string, error) {
	server, err := e.query(ctx, "SHOW server_version", engine.ReasonTargetUnreachable)
	if err != nil {
		return "", err
	}
	out, err := e.command(ctx, e.pgDump(), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("pg_dump --version: %w", err)
	}
	return fmt.Sprintf("PostgreSQL %s; %s", server, strings.TrimSpace(string(out))), nil
}

// DumpArgs are pg_dump's arguments (the connection comes from the environment).
var DumpArgs = []string{
	"--format=plain", "--no-owner", "--no-privileges", "--no-tablespaces",
	"--no-subscriptions", "--quote-all-identifiers", "--encoding=UTF8", "--no-password",
}

// Dump implements engine.Engine: pg_dump's plain SQL streamed to w.
func (e *Engine) Dump(ctx context.Context, w io.Writer) error {
	cmd := e.command(ctx, e.pgDump(), DumpArgs...)
	stderr := newTail(8192)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return engine.WithReason(engine.ReasonDumpFailed, err)
	}
	if err := cmd.Start(); err != nil {
		return engine.Errorf(engine.ReasonDumpFailed, "starting pg_dump: %w", err)
	}
	trailer := &trailerCheck{}
	_, copyErr := engine.CopyDump(io.MultiWriter(w, trailer), stdout)
	if copyErr != nil {
		// The consumer failed: stop pg_dump and report the consumer's error.
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	if copyErr != nil {
		return engine.WithReason(engine.ReasonDumpFailed, fmt.Errorf("writing the dump: %w", copyErr))
	}
	if waitErr != nil {
		return classify(ctx, "pg_dump", waitErr, stderr.String(), engine.ReasonDumpFailed)
	}
	if !trailer.complete() {
		return errIncompleteDump()
	}
	return nil
}

// prelude opens the restore transaction and wipes the target database,
// waiting at most lockTimeout for each lock on the old objects (the dump
// then sets its own lock_timeout).
func prelude(lockTimeout time.Duration) string {
	return "BEGIN;\nSET LOCAL lock_timeout = '" + strconv.FormatInt(lockTimeout.Milliseconds(), 10) + "ms';\n" + wipe
}

// wipe empties the target database, inside the restore's transaction.
const wipe = `SET LOCAL client_min_messages = warning;
SET LOCAL search_path = pg_catalog;
DO $backstop$
DECLARE
	r record;
	pub_owner text;
	pub_acl pg_catalog.aclitem[];
	pub_comment text;
BEGIN
	FOR r IN SELECT evtname FROM pg_catalog.pg_event_trigger LOOP
		EXECUTE pg_catalog.format('DROP EVENT TRIGGER IF EXISTS %I CASCADE', r.evtname);
	END LOOP;
	FOR r IN SELECT pubname FROM pg_catalog.pg_publication LOOP
		EXECUTE pg_catalog.format('DROP PUBLICATION IF EXISTS %I CASCADE', r.pubname);
	END LOOP;
	FOR r IN SELECT extname FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql' LOOP
		EXECUTE pg_catalog.format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
	END LOOP;
	FOR r IN SELECT srvname FROM pg_catalog.pg_foreign_server LOOP
		EXECUTE pg_catalog.format('DROP SERVER IF EXISTS %I CASCADE', r.srvname);
	END LOOP;
	FOR r IN SELECT fdwname FROM pg_catalog.pg_foreign_data_wrapper LOOP
		EXECUTE pg_catalog.format('DROP FOREIGN DATA WRAPPER IF EXISTS %I CASCADE', r.fdwname);
	END LOOP;
	PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata;
	FOR r IN SELECT nspname FROM pg_catalog.pg_namespace
		WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\_%'
	LOOP
		EXECUTE pg_catalog.format('DROP SCHEMA IF EXISTS %I CASCADE', r.nspname);
	END LOOP;
	SELECT n.nspowner::pg_catalog.regrole::text, n.nspacl, pg_catalog.obj_description(n.oid, 'pg_namespace')
		INTO pub_owner, pub_acl, pub_comment
		FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public';
	DROP SCHEMA IF EXISTS public CASCADE;
	CREATE SCHEMA public;
	IF pub_owner IS NOT NULL AND pub_owner <> pg_catalog.quote_ident(current_user) THEN
		EXECUTE pg_catalog.format('ALTER SCHEMA public OWNER TO %s', pub_owner);
	END IF;
	IF pub_acl IS NOT NULL THEN
		FOR r IN SELECT a.grantee, a.privilege_type, a.is_grantable FROM pg_catalog.aclexplode(pub_acl) a LOOP
			EXECUTE pg_catalog.format('GRANT %s ON SCHEMA public TO %s%s', r.privilege_type,
				CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::pg_catalog.regrole::text END,
				CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
		END LOOP;
	END IF;
	IF pub_comment IS NOT NULL THEN
		EXECUTE pg_catalog.format('COMMENT ON SCHEMA public IS %L', pub_comment);
	END IF;
END
$backstop$;
`

// commitMarker is printed by the SELECT after COMMIT; the query text differs
// from its output, so an echo of the input cannot fake it.
const commitMarker = "backstop-restore-committed"

const epilogue = "\nCOMMIT;\nSELECT 'backstop-restore-' || 'committed';\n"

// Restore implements engine.Engine: wipe and load in one transaction.
func (e *Engine) Restore(ctx context.Context, r io.Reader) error {
	cmd := e.command(ctx, e.psql(), "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-")
	stderr := newTail(8192)
	stdout := newTail(4096)
	cmd.Stderr = stderr
	cmd.Stdout = stdout
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return engine.WithReason(engine.ReasonRestoreFailed, err)
	}
	if err := cmd.Start(); err != nil {
		return engine.Errorf(engine.ReasonRestoreFailed, "starting psql: %w", err)
	}
	wait := engine.LockTimeoutOf(e.opts)
	trailer := &trailerCheck{}
	feedErr := make(chan error, 1)
	go func() {
		err := func() error {
			if _, err := io.WriteString(stdin, prelude(wait)); err != nil {
				return err
			}
			if _, err := io.Copy(io.MultiWriter(stdin, trailer), r); err != nil {
				return err
			}
			if !trailer.complete() {
				return errIncomplete
			}
			_, err := io.WriteString(stdin, epilogue)
			return err
		}()
		// Closing stdin without COMMIT ends psql; the server rolls back.
		_ = stdin.Close()
		feedErr <- err
	}()
	waitErr := cmd.Wait()
	ferr := <-feedErr
	if waitErr != nil {
		err := classify(ctx, "psql", waitErr, stderr.String(), engine.ReasonRestoreFailed)
		if engine.ReasonOf(err) == engine.ReasonTargetBusy {
			return engine.Errorf(engine.ReasonTargetBusy, "%v; other sessions held the target's tables for more than %s (see pg_stat_activity), nothing was changed", err, wait)
		}
		return err
	}
	if errors.Is(ferr, errIncomplete) {
		return engine.Errorf(engine.ReasonRestoreFailed, "the dump is incomplete (no pg_dump completion trailer); nothing was changed")
	}
	if ferr != nil {
		return engine.WithReason(engine.ReasonRestoreFailed, fmt.Errorf("feeding the dump to psql: %w; nothing was changed", ferr))
	}
	if !strings.Contains(stdout.String(), commitMarker) {
		return engine.Errorf(engine.ReasonRestoreFailed, "psql ended without committing the restore; nothing was changed: %s", lastLines(stderr.String()))
	}
	return nil
}

var errIncomplete = errors.New("dump incomplete")

// trailerCheck remembers the end of the dump and tells whether it is
// pg_dump's completion trailer ("-- PostgreSQL database dump complete",
// followed only by comments, blank lines and psql's \unrestrict).
type trailerCheck struct{ tail []byte }

func (t *trailerCheck) Write(p []byte) (int, error) {
	const keep = 1024
	if len(p) >= keep {
		t.tail = append(t.tail[:0], p[len(p)-keep:]...)
	} else {
		t.tail = append(t.tail, p...)
		if len(t.tail) > keep {
			t.tail = append(t.tail[:0], t.tail[len(t.tail)-keep:]...)
		}
	}
	return len(p), nil
}

func (t *trailerCheck) complete() bool {
	s := string(t.tail)
	i := strings.LastIndex(s, "\n-- PostgreSQL database dump complete\n")
	if i < 0 {
		return false
	}
	if !strings.HasSuffix(s, "\n") {
		return false
	}
	for _, line := range strings.Split(s[i+1:], "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "--") || strings.HasPrefix(line, `\unrestrict `) {
			continue
		}
		return false
	}
	return true
}

// classify turns a client failure into an engine error with a reason a user
// can act on. stderr comes from libpq clients, which never print passwords.
func classify(ctx context.Context, tool string, err error, stderr, fallback string) error {
	msg := lastLines(stderr)
	if msg == "" {
		msg = err.Error()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			msg = fmt.Sprintf("%s was killed by signal %v: %s", tool, st.Signal(), msg)
		} else {
			msg = fmt.Sprintf("%s exited with %v: %s", tool, ee.ExitCode(), msg)
		}
	} else {
		msg = fmt.Sprintf("%s: %v: %s", tool, err, msg)
	}
	if ctx.Err() != nil {
		msg += " (" + ctx.Err().Error() + ")"
	}
	low := strings.ToLower(stderr)
	reason := fallback
	switch {
	case strings.Contains(low, "fatal:  database \"") && strings.Contains(low, "\" does not exist"):
		reason = engine.ReasonDatabaseNotFound
	case strings.Contains(low, "canceling statement due to lock timeout"):
		reason = engine.ReasonTargetBusy
	case strings.Contains(low, "password authentication failed"),
		strings.Contains(low, "no pg_hba.conf entry"),
		strings.Contains(low, "pg_hba.conf rejects connection"), // e.g. without TLS: "..., no encryption"
		strings.Contains(low, "requires a valid client certificate"),
		strings.Contains(low, "no password supplied"),
		strings.Contains(low, "authentication failed"),
		strings.Contains(low, "fatal:  role \""):
		reason = engine.ReasonTargetAuthenticationFailed
	case strings.Contains(low, "connection refused"),
		strings.Contains(low, "could not translate host name"),
		strings.Contains(low, "name or service not known"),
		strings.Contains(low, "temporary failure in name resolution"),
		strings.Contains(low, "no route to host"),
		strings.Contains(low, "network is unreachable"),
		strings.Contains(low, "timeout expired"),
		strings.Contains(low, "could not connect to server"),
		strings.Contains(low, "ssl") && strings.Contains(low, "connection to server"),
		strings.Contains(low, "server does not support ssl"),
		// The server's certificate is not trusted, or not for its name.
		strings.Contains(low, "certificate"):
		reason = engine.ReasonTargetUnreachable
	}
	return engine.Errorf(reason, "%s", msg)
}

// lastLines returns the last few non-empty lines of s, joined by "; ".
func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < 6; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			keep = append([]string{l}, keep...)
		}
	}
	return strings.Join(keep, "; ")
}

// tail is an io.Writer that keeps the last n bytes written to it.
type tail struct {
	n   int
	buf []byte
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.n {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-t.n:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.buf) }
