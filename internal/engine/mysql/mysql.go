// Package mysql is the MySQL/MariaDB engine: mariadb-dump (or mysqldump) SQL
// of one or more databases, restored through a staging schema and swapped in
// with one RENAME TABLE statement.
//
// # Dump
//
// For each database, in order:
//
//	-- backstop-database: <name>
//	(when several databases: CREATE DATABASE IF NOT EXISTS / USE lines)
//	mariadb-dump --single-transaction --routines --triggers --skip-events --hex-blob <name>
//	-- backstop-events: <name>
//	mariadb-dump --no-create-info --no-data --skip-triggers --skip-routines --events <name>
//
// Everything is plain SQL (the markers are comments), so the stock client
// restores it: `mariadb <db> < dump.sql`. The dump of one database names no
// database: it carries no CREATE DATABASE or USE, and mariadb-dump writes view
// definitions without the schema qualifier of their own database, so it can be
// loaded into any schema. Events are dumped separately so that the restore can
// keep them out of the staging schema, where the event scheduler would run
// them against half-loaded tables.
//
// # Restore
//
// MySQL DDL is not transactional, so "atomic" means: nothing in the target
// changes until the dump has loaded completely elsewhere, the table data is
// swapped by a single RENAME TABLE statement (atomic in MySQL and MariaDB),
// and any failure after that swaps back. For each database:
//
//  1. Load: a fresh schema backstop_stage_<random> gets the dump (the mariadb
//     client stops at the first error). The load must end with mariadb-dump's
//     "-- Dump completed" trailer and hold as many tables and sequences as the
//     dump creates; otherwise the staging schema is dropped and the target was
//     never touched.
//  2. Program objects: triggers and routines, and views, are read back from
//     the staging schema with mariadb-dump (relocatable SQL, as in the dump),
//     then the staging triggers and views are dropped: RENAME TABLE cannot move
//     a table with triggers, nor a view, to another schema. The target's own
//     triggers, routines, views and events are saved the same way, for rollback.
//  3. Swap: the target's triggers and views are dropped, then ONE statement
//     RENAME TABLE db.t TO backstop_old_<random>.t, ..., stage.t TO db.t, ...
//     exchanges all tables at once; tables that exist only in the target end up
//     in the old schema, so they are gone after the restore.
//  4. Rebuild: the target's old routines and events are dropped; the new
//     triggers, routines, views and events are created in the target. If any
//     of this fails, the tables are renamed back and the saved program objects
//     recreated: the target is as it was.
//  5. The old and staging schemas are dropped.
//
// With several databases, steps 3 and 4 run for one database after another,
// and every old schema is kept until the last database is in: when one
// fails, the databases swapped before it are swapped back too, so a restore
// changes all of its databases or none.
//
// Between steps 3 and 4 (milliseconds) a reader can see the new tables without
// their triggers or views. Foreign keys move with their tables.
//
// Permissions: besides full rights on the target database, the restoring user
// needs to create and drop the schemas backstop_stage_* and backstop_old_*
// (GRANT ALL ON `backstop\_%`.* TO ...). Views, triggers and routines keep the
// DEFINER of the dump; creating them for another definer needs SET USER (or
// SUPER) on the restoring user.
package mysql

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/backstop-io/backstop/internal/engine"
)

// Name is the engine's registered name.
const Name = "mysql"

const (
	databaseMarker = "-- backstop-database: "
	eventsMarker   = "-- backstop-events: "
	stagePrefix    = "backstop_stage_"
	oldPrefix      = "backstop_old_"
	// maxObjectSQL bounds the program-object SQL (triggers, routines, views,
	// events) held in memory during a restore.
	maxObjectSQL = 64 << 20
)

func init() {
	engine.Register(Name, func(o engine.Options) (engine.Engine, error) { return New(o) })
	engine.RegisterDumpCheck(Name, func() engine.DumpCheck { return &DumpCheck{} })
	engine.RegisterContentFilter(Name, NewContentFilter)
	engine.RegisterInventory(Name, func() engine.Inventory { return NewInventory() })
}

// NewContentFilter passes a dump to w without mariadb-dump's completion
// lines, those that start with "-- Dump completed" and carry the dump's
// date unless --skip-dump-date is given. The agent's dumps are made with
// --skip-dump-date, so this changes their content digest only in leaving
// out a fixed line; a dump made with dates has the same digest.
func NewContentFilter(w io.Writer) engine.ContentFilter {
	return &engine.LineFilter{W: w, First: '-', MaxLine: 256, Drop: func(line []byte) bool {
		return bytes.HasPrefix(line, []byte("-- Dump completed"))
	}}
}

// Engine dumps and restores MySQL or MariaDB databases.
type Engine struct {
	opts engine.Options
	// dumped is the number of databases the last Dump wrote.
	dumped int64
	// Dumper and Client are the client binaries; empty means mariadb-dump
	// (or mysqldump) and mariadb (or mysql) from PATH.
	Dumper, Client string
}

// New checks the options and returns the engine.
func New(o engine.Options) (*Engine, error) {
	if o.Host == "" {
		return nil, errors.New("mysql: host is required")
	}
	switch o.TLSMode {
	case "", "disable", "prefer", "require", "verify-ca", "verify-full":
	default:
		return nil, fmt.Errorf("mysql: unknown TLS mode %q", o.TLSMode)
	}
	for _, d := range o.Databases {
		if d == "" || strings.ContainsAny(d, "\n\r\x00") {
			return nil, fmt.Errorf("mysql: invalid database name %q", d)
		}
	}
	return &Engine{opts: o}, nil
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

func lookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return names[0]
}

func (e *Engine) dumper() string {
	if e.Dumper != "" {
		return e.Dumper
	}
	return lookPath("mariadb-dump", "mysqldump")
}

func (e *Engine) client() string {
	if e.Client != "" {
		return e.Client
	}
	return lookPath("mariadb", "mysql")
}

// connArgs are the connection arguments; the password is not among them.
func (e *Engine) connArgs() []string {
	args := []string{"--no-defaults", "--protocol=tcp", "--host=" + e.opts.Host, "--default-character-set=utf8mb4"}
	if e.opts.Port != 0 {
		args = append(args, "--port="+strconv.Itoa(e.opts.Port))
	}
	if e.opts.User != "" {
		args = append(args, "--user="+e.opts.User)
	}
	switch e.opts.TLSMode {
	case "require":
		args = append(args, "--ssl")
	case "verify-ca", "verify-full":
		// The MariaDB client has no check of the certificate without its
		// host name: verify-ca verifies both, failing closed rather than
		// trusting a certificate it did not check.
		args = append(args, "--ssl", "--ssl-verify-server-cert")
		if e.opts.CAFile != "" {
			args = append(args, "--ssl-ca="+e.opts.CAFile)
		}
	case "disable":
		args = append(args, "--skip-ssl")
	}
	return args
}

// command runs a client tool; the password reaches it through MYSQL_PWD.
func (e *Engine) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	all := e.connArgs()
	if bin == e.client() {
		all = append(all, "--connect-timeout=15")
	}
	cmd := exec.CommandContext(ctx, bin, append(all, args...)...)
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MYSQL_") || strings.HasPrefix(kv, "MARIADB_") {
			continue
		}
		env = append(env, kv)
	}
	if e.opts.Password != "" {
		env = append(env, "MYSQL_PWD="+e.opts.Password)
	}
	cmd.Env = env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if e.opts.ScratchDir != "" {
		cmd.Dir = e.opts.ScratchDir
	}
	return cmd
}

// exec runs SQL (any number of statements) in database db ("" for none) and
// returns the raw tab-separated output rows.
func (e *Engine) exec(ctx context.Context, db, sql, fallback string) (string, error) {
	args := []string{"--batch", "--skip-column-names", "--raw"}
	if db != "" {
		args = append(args, "--database="+db)
	}
	cmd := e.command(ctx, e.client(), args...)
	cmd.Stdin = strings.NewReader(sql)
	var out bytes.Buffer
	stderr := newTail(4096)
	cmd.Stdout = &out
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return "", e.classify(ctx, "mariadb", err, stderr.String(), fallback)
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

// Query runs SQL in database db ("" for none) and returns its output: one
// line per row, columns separated by tabs. A restore drill checks the
// restored data with it.
func (e *Engine) Query(ctx context.Context, db, sql string) (string, error) {
	return e.exec(ctx, db, sql, engine.ReasonRestoreFailed)
}

// Check implements engine.Engine.
func (e *Engine) Check(ctx context.Context) error {
	_, err := e.exec(ctx, "", "SELECT 1", engine.ReasonTargetUnreachable)
	return err
}

// Version implements engine.Engine.
func (e *Engine) Version(ctx context.Context) (string, error) {
	server, err := e.exec(ctx, "", "SELECT CONCAT(VERSION(), ' ', @@version_comment)", engine.ReasonTargetUnreachable)
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, e.dumper(), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("mysql: %s --version: %w", e.dumper(), err)
	}
	return fmt.Sprintf("%s; %s", strings.TrimSpace(server), strings.TrimSpace(string(out))), nil
}

var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true}

// databases is the configured list, or every user database.
func (e *Engine) databases(ctx context.Context, fallback string) ([]string, error) {
	if len(e.opts.Databases) > 0 {
		return e.opts.Databases, nil
	}
	out, err := e.exec(ctx, "", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME", fallback)
	if err != nil {
		return nil, err
	}
	var dbs []string
	for _, d := range strings.Split(out, "\n") {
		if d == "" || systemSchemas[d] || strings.HasPrefix(d, stagePrefix) || strings.HasPrefix(d, oldPrefix) {
			continue
		}
		dbs = append(dbs, d)
	}
	if len(dbs) == 0 {
		return nil, engine.Errorf(engine.ReasonDumpFailed, "mysql: the server has no user database to dump")
	}
	return dbs, nil
}

// DumpArgs are mariadb-dump's arguments for the main part of one database.
// --comments (the default, made explicit) keeps the completion line
// "-- Dump completed" that ends every dump; --skip-dump-date keeps the date
// out of it, so that dumps of unchanged data are equal.
var DumpArgs = []string{"--single-transaction", "--routines", "--triggers", "--skip-events", "--hex-blob", "--quick", "--comments", "--skip-dump-date"}

// EventArgs are mariadb-dump's arguments for the events of one database.
var EventArgs = []string{"--no-create-info", "--no-data", "--skip-triggers", "--skip-routines", "--events", "--comments", "--skip-dump-date"}

// Dump implements engine.Engine.
func (e *Engine) Dump(ctx context.Context, w io.Writer) error {
	dbs, err := e.databases(ctx, engine.ReasonDumpFailed)
	if err != nil {
		return err
	}
	if err := e.databasesExist(ctx, dbs); err != nil {
		return err
	}
	e.dumped = 0
	for _, db := range dbs {
		e.dumped++
		header := databaseMarker + db + "\n"
		if len(dbs) > 1 {
			header += "CREATE DATABASE IF NOT EXISTS " + quoteIdent(db) + ";\nUSE " + quoteIdent(db) + ";\n"
		}
		if _, err := io.WriteString(w, header); err != nil {
			return engine.WithReason(engine.ReasonDumpFailed, fmt.Errorf("writing the dump: %w", err))
		}
		if err := e.runDump(ctx, w, append(append([]string{}, DumpArgs...), "--", db)); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n"+eventsMarker+db+"\n"); err != nil {
			return engine.WithReason(engine.ReasonDumpFailed, fmt.Errorf("writing the dump: %w", err))
		}
		if err := e.runDump(ctx, w, append(append([]string{}, EventArgs...), "--", db)); err != nil {
			return err
		}
	}
	return nil
}

// DumpCounts implements engine.DumpCounter: the databases the last Dump
// wrote (the DumpCheck counts their markers).
func (e *Engine) DumpCounts() (databases, bytes int64) { return e.dumped, 0 }

// databasesExist fails with ReasonDatabaseNotFound, naming them, when
// databases to dump do not exist on the server.
func (e *Engine) databasesExist(ctx context.Context, dbs []string) error {
	quoted := make([]string, len(dbs))
	for i, d := range dbs {
		quoted[i] = quoteString(d)
	}
	out, err := e.exec(ctx, "", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ("+strings.Join(quoted, ", ")+")", engine.ReasonDumpFailed)
	if err != nil {
		return err
	}
	found := map[string]bool{}
	for _, d := range strings.Split(out, "\n") {
		found[d] = true
	}
	var missing []string
	for _, d := range dbs {
		if !found[d] {
			missing = append(missing, strconv.Quote(d))
		}
	}
	if len(missing) > 0 {
		return engine.Errorf(engine.ReasonDatabaseNotFound, "mysql: the server has no database %s", strings.Join(missing, ", "))
	}
	return nil
}

func (e *Engine) runDump(ctx context.Context, w io.Writer, args []string) error {
	cmd := e.command(ctx, e.dumper(), args...)
	stderr := newTail(8192)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return engine.WithReason(engine.ReasonDumpFailed, err)
	}
	if err := cmd.Start(); err != nil {
		return engine.Errorf(engine.ReasonDumpFailed, "mysql: starting %s: %v", e.dumper(), err)
	}
	tr := &trailer{}
	_, copyErr := engine.CopyDump(io.MultiWriter(w, tr), stdout)
	if copyErr != nil {
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	if copyErr != nil {
		return engine.WithReason(engine.ReasonDumpFailed, fmt.Errorf("writing the dump: %w", copyErr))
	}
	if waitErr != nil {
		return e.classify(ctx, "mariadb-dump", waitErr, stderr.String(), engine.ReasonDumpFailed)
	}
	if !tr.complete() {
		return engine.Errorf(engine.ReasonDumpIncomplete, "mysql: mariadb-dump exited 0 but its output ends without its completion line (%q): it was cut short", "-- Dump completed")
	}
	return nil
}

// CheckMethod is how a dump is found complete, as the manifest records it.
const CheckMethod = "mariadb-dump completion lines"

// DumpCheck checks that every mariadb-dump run in a dump completed: the
// dump of each database, and of its events, ends with mariadb-dump's
// completion line ("-- Dump completed", with or without a date), and each
// database's part has its events part. A stock dump without Backstop's
// markers must end with the completion line. mariadb-dump writes that line
// last, and escapes line breaks inside values, so every line of the dump
// is a statement or a comment and the line is found by its start.
type DumpCheck struct {
	line      []byte // the start of the line being read
	lineLen   int
	last      []byte // the start of the last non-blank line
	databases int
	inEvents  bool
	err       error
}

// checkPrefix is how much of each line the check looks at.
const checkPrefix = 64

// Write implements engine.DumpCheck.
func (c *DumpCheck) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if room := checkPrefix - len(c.line); room > 0 {
			c.line = append(c.line, part[:min(room, len(part))]...)
		}
		c.lineLen += len(part)
		if i < 0 {
			break
		}
		c.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (c *DumpCheck) endLine() {
	line := bytes.TrimRight(c.line, "\r")
	blank := len(bytes.TrimSpace(line)) == 0 && c.lineLen <= checkPrefix
	switch {
	case bytes.HasPrefix(line, []byte(databaseMarker)):
		if c.databases > 0 {
			c.sectionEnd()
		} else if c.last != nil && c.err == nil {
			c.err = fmt.Errorf("the dump has data before its first database marker")
		}
		c.databases++
		c.inEvents = false
		c.last = nil
	case bytes.HasPrefix(line, []byte(eventsMarker)) && c.databases > 0 && !c.inEvents:
		if !isTrailer(c.last) && c.err == nil {
			c.err = fmt.Errorf("the dump of database %d ends without mariadb-dump's completion line", c.databases)
		}
		c.inEvents = true
		c.last = nil
	case !blank:
		c.last = append(c.last[:0], line...)
	}
	c.line, c.lineLen = c.line[:0], 0
}

func (c *DumpCheck) sectionEnd() {
	if c.err != nil {
		return
	}
	switch {
	case !c.inEvents:
		c.err = fmt.Errorf("the dump of database %d has no events part", c.databases)
	case !isTrailer(c.last):
		c.err = fmt.Errorf("the events dump of database %d ends without mariadb-dump's completion line", c.databases)
	}
}

// Complete implements engine.DumpCheck.
func (c *DumpCheck) Complete() (engine.Completeness, error) {
	if c.lineLen > 0 {
		c.endLine()
	}
	if c.databases > 0 {
		c.sectionEnd()
	} else if !isTrailer(c.last) && c.err == nil {
		c.err = fmt.Errorf("the dump ends without mariadb-dump's completion line")
	}
	if c.err != nil {
		return engine.Completeness{}, engine.Errorf(engine.ReasonDumpIncomplete, "mysql: %v (%q): it was cut short", c.err, "-- Dump completed")
	}
	if c.databases == 0 {
		return engine.Completeness{Method: CheckMethod}, nil
	}
	// The number of databases: a dump cut between two of them is complete
	// in itself, so the manifest records how many there are.
	n := int64(c.databases)
	return engine.Completeness{Method: CheckMethod, Entries: &n}, nil
}

// trailer keeps the end of a stream and tells whether it ends with
// mariadb-dump's "-- Dump completed" line.
type trailer struct{ tail []byte }

func (t *trailer) Write(p []byte) (int, error) {
	const keep = 512
	t.tail = append(t.tail, p...)
	if len(t.tail) > keep {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-keep:]...)
	}
	return len(p), nil
}

func (t *trailer) complete() bool {
	s := strings.TrimRight(string(t.tail), "\n\r ")
	i := strings.LastIndex(s, "\n")
	return strings.HasPrefix(s[i+1:], "-- Dump completed")
}

// ---------------------------------------------------------------------------
// Restore

// section is one database of a dump, loaded into its staging schema.
type section struct {
	source  string // the name in the dump ("" for a stock dump without markers)
	target  string
	stage   string
	events  bytes.Buffer
	tables  int // CREATE TABLE statements seen
	seqs    int // CREATE SEQUENCE statements seen
	trailer bool
}

// Restore implements engine.Engine.
func (e *Engine) Restore(ctx context.Context, r io.Reader) (err error) {
	if err := e.Check(ctx); err != nil {
		return err
	}
	var sections []*section
	defer func() {
		// Staging schemas never outlive the restore.
		for _, s := range sections {
			if s.stage != "" {
				_, _ = e.exec(context.WithoutCancel(ctx), "", "DROP DATABASE IF EXISTS "+quoteIdent(s.stage), "")
			}
		}
	}()
	sections, err = e.load(ctx, r)
	if err != nil {
		return err
	}
	if err := e.mapTargets(sections); err != nil {
		return err
	}
	for _, s := range sections {
		if err := e.verifyStage(ctx, s); err != nil {
			return err
		}
	}
	// A restore changes all its databases or none: when one swap fails, the
	// databases swapped before it are put back too. Their old schemas are
	// kept until every swap has succeeded.
	var done []*swapped
	defer func() {
		for _, d := range done {
			d.dropOld()
		}
	}()
	for _, s := range sections {
		d, err := e.swap(ctx, s)
		if err != nil {
			var undone []string
			for i := len(done) - 1; i >= 0; i-- {
				if uerr := done[i].undo(context.WithoutCancel(ctx)); uerr != nil {
					return engine.Errorf(engine.ReasonRestoreFailed, "%v; ROLLBACK FAILED for database %q, restored before it, which needs attention: %v", err, done[i].target, uerr)
				}
				undone = append(undone, strconv.Quote(done[i].target))
			}
			if len(undone) > 0 {
				return engine.Errorf(engine.ReasonRestoreFailed, "%v; the databases restored before it (%s) were put back as well", err, strings.Join(undone, ", "))
			}
			return err
		}
		done = append(done, d)
	}
	return nil
}

// swapped is a database whose tables have been swapped in. undo puts the
// database back as it was; dropOld removes the previous tables for good.
type swapped struct {
	target  string
	undo    func(context.Context) error
	dropOld func()
}

func (e *Engine) mapTargets(sections []*section) error {
	if len(sections) == 0 {
		return engine.Errorf(engine.ReasonRestoreFailed, "mysql: the dump holds no database; nothing was changed")
	}
	if len(sections) == 1 && len(e.opts.Databases) == 1 {
		sections[0].target = e.opts.Databases[0]
		return nil
	}
	want := map[string]bool{}
	for _, d := range e.opts.Databases {
		want[d] = true
	}
	for _, s := range sections {
		if s.source == "" {
			return engine.Errorf(engine.ReasonRestoreFailed, "mysql: a dump without database markers restores into exactly one database; nothing was changed")
		}
		if len(want) > 0 && !want[s.source] {
			return engine.Errorf(engine.ReasonRestoreFailed, "mysql: the dump holds database %q, which is not among the target's databases; nothing was changed", s.source)
		}
		s.target = s.source
	}
	return nil
}

// load streams the dump into one staging schema per database.
func (e *Engine) load(ctx context.Context, r io.Reader) ([]*section, error) {
	var sections []*section
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		cur      *section
		loader   *exec.Cmd
		stdin    io.WriteCloser
		stderr   *tail
		inEvents bool
		skipUse  int // lines of our own CREATE DATABASE / USE header still to drop
		lastLine []byte
	)
	finish := func() error {
		if loader == nil {
			return nil
		}
		_ = stdin.Close()
		err := loader.Wait()
		loader = nil
		if err != nil {
			return e.classify(ctx, "mariadb", err, stderr.String(), engine.ReasonRestoreFailed)
		}
		return nil
	}
	abort := func(err error) ([]*section, error) {
		if loader != nil {
			_ = stdin.Close()
			_ = loader.Process.Kill()
			_ = loader.Wait()
		}
		return sections, err
	}
	start := func(source string) error {
		stage := stagePrefix + randomHex(6)
		s := &section{source: source, stage: stage}
		sections = append(sections, s)
		if _, err := e.exec(ctx, "", "CREATE DATABASE "+quoteIdent(stage)+" CHARACTER SET utf8mb4", engine.ReasonRestoreFailed); err != nil {
			s.stage = ""
			return err
		}
		cur, inEvents = s, false
		loader = e.command(ctx, e.client(), "--batch", "--database="+stage)
		stderr = newTail(8192)
		loader.Stderr = stderr
		loader.Stdout = io.Discard
		var err error
		if stdin, err = loader.StdinPipe(); err != nil {
			return err
		}
		if err := loader.Start(); err != nil {
			return engine.Errorf(engine.ReasonRestoreFailed, "mysql: starting the client: %v", err)
		}
		return nil
	}
	write := func(p []byte) error {
		if inEvents {
			if cur.events.Len()+len(p) > maxObjectSQL {
				return engine.Errorf(engine.ReasonRestoreFailed, "mysql: the events of %q exceed %d bytes", cur.source, maxObjectSQL)
			}
			cur.events.Write(p)
			return nil
		}
		if _, err := stdin.Write(p); err != nil {
			// The client stopped reading: it failed; its error is reported by finish.
			if ferr := finish(); ferr != nil {
				return ferr
			}
			return engine.Errorf(engine.ReasonRestoreFailed, "mysql: loading the dump: %v", err)
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return abort(engine.WithReason(engine.ReasonRestoreFailed, err))
		}
		line, err := br.ReadSlice('\n')
		long := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !long && err != io.EOF {
			return abort(engine.Errorf(engine.ReasonRestoreFailed, "mysql: reading the dump: %v; nothing was changed", err))
		}
		if len(line) > 0 {
			if long {
				// A long line (data) is passed through in pieces, never inspected.
				if cur == nil {
					if serr := start(""); serr != nil {
						return abort(serr)
					}
				}
				if werr := write(line); werr != nil {
					return abort(werr)
				}
				for long {
					line, err = br.ReadSlice('\n')
					long = errors.Is(err, bufio.ErrBufferFull)
					if err != nil && !long && err != io.EOF {
						return abort(engine.Errorf(engine.ReasonRestoreFailed, "mysql: reading the dump: %v; nothing was changed", err))
					}
					if werr := write(line); werr != nil {
						return abort(werr)
					}
				}
				lastLine = append(lastLine[:0], "<data>"...)
				if err == io.EOF {
					break
				}
				continue
			}
			text := string(bytes.TrimRight(line, "\r\n"))
			switch {
			case strings.HasPrefix(text, databaseMarker):
				if ferr := e.endSection(cur, lastLine, finish); ferr != nil {
					return abort(ferr)
				}
				if serr := start(strings.TrimPrefix(text, databaseMarker)); serr != nil {
					return abort(serr)
				}
				skipUse = 2
				lastLine = lastLine[:0]
				continue
			case strings.HasPrefix(text, eventsMarker) && cur != nil && !inEvents:
				if !isTrailer(lastLine) {
					return abort(engine.Errorf(engine.ReasonRestoreFailed, "mysql: the dump of %q is incomplete (no completion trailer); nothing was changed", cur.source))
				}
				cur.trailer = true
				if ferr := finish(); ferr != nil {
					return abort(ferr)
				}
				inEvents = true
				lastLine = lastLine[:0]
				continue
			}
			if skipUse > 0 {
				skipUse--
				if strings.HasPrefix(text, "CREATE DATABASE IF NOT EXISTS `") || strings.HasPrefix(text, "USE `") {
					continue
				}
				skipUse = 0
			}
			if cur == nil {
				if serr := start(""); serr != nil {
					return abort(serr)
				}
			}
			if !inEvents {
				if strings.HasPrefix(text, "CREATE TABLE `") {
					cur.tables++
				} else if strings.HasPrefix(text, "CREATE SEQUENCE `") {
					cur.seqs++
				}
			}
			if strings.TrimSpace(text) != "" {
				lastLine = append(lastLine[:0], text...)
			}
			if werr := write(line); werr != nil {
				return abort(werr)
			}
		}
		if err == io.EOF {
			break
		}
	}
	if err := e.endSection(cur, lastLine, finish); err != nil {
		return abort(err)
	}
	return sections, nil
}

// endSection closes the current section, checking that its dump completed.
func (e *Engine) endSection(cur *section, lastLine []byte, finish func() error) error {
	if cur == nil {
		return nil
	}
	if !isTrailer(lastLine) {
		return engine.Errorf(engine.ReasonRestoreFailed, "mysql: the dump%s is incomplete (no completion trailer); nothing was changed", forDB(cur.source))
	}
	if err := finish(); err != nil {
		return err
	}
	if cur.source == "" {
		cur.trailer = true
	}
	if !cur.trailer {
		return engine.Errorf(engine.ReasonRestoreFailed, "mysql: the dump%s is incomplete; nothing was changed", forDB(cur.source))
	}
	return nil
}

func forDB(db string) string {
	if db == "" {
		return ""
	}
	return fmt.Sprintf(" of %q", db)
}

func isTrailer(line []byte) bool { return bytes.HasPrefix(line, []byte("-- Dump completed")) }

// objects lists a schema's tables, views, triggers, routines and events.
type objects struct {
	tables, views, triggers, seqs []string
	routines                      [][2]string // type, name
	events                        []string
}

func (e *Engine) listObjects(ctx context.Context, db string) (*objects, error) {
	q := fmt.Sprintf(`SELECT 'T', TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %[1]s;
SELECT 'G', '', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %[1]s;
SELECT 'R', ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %[1]s;
SELECT 'E', '', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %[1]s;`, quoteString(db))
	out, err := e.exec(ctx, "", q, engine.ReasonRestoreFailed)
	if err != nil {
		return nil, err
	}
	o := &objects{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			continue
		}
		switch f[0] {
		case "T":
			switch f[1] {
			case "VIEW":
				o.views = append(o.views, f[2])
			case "SEQUENCE":
				o.seqs = append(o.seqs, f[2])
				o.tables = append(o.tables, f[2])
			case "TEMPORARY":
			default:
				o.tables = append(o.tables, f[2])
			}
		case "G":
			o.triggers = append(o.triggers, f[2])
		case "R":
			o.routines = append(o.routines, [2]string{f[1], f[2]})
		case "E":
			o.events = append(o.events, f[2])
		}
	}
	return o, nil
}

// verifyStage checks that the staging schema holds what the dump created.
func (e *Engine) verifyStage(ctx context.Context, s *section) error {
	o, err := e.listObjects(ctx, s.stage)
	if err != nil {
		return err
	}
	if got := len(o.tables) - len(o.seqs); got != s.tables {
		return engine.Errorf(engine.ReasonRestoreFailed, "mysql: the dump%s creates %d tables but %d were loaded; nothing was changed", forDB(s.source), s.tables, got)
	}
	if len(o.seqs) != s.seqs {
		return engine.Errorf(engine.ReasonRestoreFailed, "mysql: the dump%s creates %d sequences but %d were loaded; nothing was changed", forDB(s.source), s.seqs, len(o.seqs))
	}
	return nil
}

// programSQL dumps the triggers and routines, and the views, of db as SQL
// that recreates them in whatever database it runs in.
func (e *Engine) programSQL(ctx context.Context, db string, o *objects, withEvents bool) (string, error) {
	var all bytes.Buffer
	args := []string{"--no-data", "--no-create-info", "--triggers", "--routines", "--skip-dump-date", "--skip-events"}
	if withEvents {
		args[len(args)-1] = "--events"
	}
	if err := e.captureDump(ctx, &all, append(args, "--", db)); err != nil {
		return "", err
	}
	if len(o.views) > 0 {
		args := append([]string{"--no-data", "--skip-triggers", "--skip-routines", "--skip-events", "--skip-dump-date", "--", db}, o.views...)
		if err := e.captureDump(ctx, &all, args); err != nil {
			return "", err
		}
	}
	return all.String(), nil
}

func (e *Engine) captureDump(ctx context.Context, buf *bytes.Buffer, args []string) error {
	cmd := e.command(ctx, e.dumper(), args...)
	stderr := newTail(4096)
	cmd.Stderr = stderr
	lw := &limitWriter{w: buf, n: maxObjectSQL}
	cmd.Stdout = lw
	if err := cmd.Run(); err != nil {
		if lw.over {
			return engine.Errorf(engine.ReasonRestoreFailed, "mysql: program objects exceed %d bytes", maxObjectSQL)
		}
		return e.classify(ctx, "mariadb-dump", err, stderr.String(), engine.ReasonRestoreFailed)
	}
	buf.WriteString("\n")
	return nil
}

type limitWriter struct {
	w    io.Writer
	n    int
	over bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		l.over = true
		return 0, errors.New("limit exceeded")
	}
	l.n -= len(p)
	return l.w.Write(p)
}

func dropStatements(db string, o *objects, triggers, views, routines, events bool) string {
	var b strings.Builder
	q := quoteIdent(db)
	if triggers {
		for _, t := range o.triggers {
			fmt.Fprintf(&b, "DROP TRIGGER IF EXISTS %s.%s;\n", q, quoteIdent(t))
		}
	}
	if views {
		for _, v := range o.views {
			fmt.Fprintf(&b, "DROP VIEW IF EXISTS %s.%s;\n", q, quoteIdent(v))
		}
	}
	if routines {
		for _, r := range o.routines {
			fmt.Fprintf(&b, "DROP %s IF EXISTS %s.%s;\n", r[0], q, quoteIdent(r[1]))
		}
	}
	if events {
		for _, ev := range o.events {
			fmt.Fprintf(&b, "DROP EVENT IF EXISTS %s.%s;\n", q, quoteIdent(ev))
		}
	}
	return b.String()
}

// swap replaces the target database of s with its staging schema. On
// failure it puts the target back itself; on success the caller either
// keeps the result (dropOld) or reverts it (undo).
func (e *Engine) swap(ctx context.Context, s *section) (_ *swapped, err error) {
	target := s.target
	// A target that did not exist is created here, and dropped again by
	// every rollback, so that a failed restore leaves no empty database.
	created, err := e.createIfMissing(ctx, target)
	if err != nil {
		return nil, err
	}
	bg := context.WithoutCancel(ctx)
	defer func() {
		if err != nil && created {
			if derr := e.dropDatabase(bg, target); derr != nil {
				err = engine.Errorf(engine.ReasonRestoreFailed, "%v; the database %q it created could not be dropped: %v", err, target, derr)
			}
		}
	}()
	newObj, err := e.listObjects(ctx, s.stage)
	if err != nil {
		return nil, err
	}
	oldObj, err := e.listObjects(ctx, target)
	if err != nil {
		return nil, err
	}
	newSQL, err := e.programSQL(ctx, s.stage, newObj, false)
	if err != nil {
		return nil, err
	}
	oldSQL, err := e.programSQL(ctx, target, oldObj, true)
	if err != nil {
		return nil, err
	}
	// Staging: remove what cannot move with RENAME TABLE.
	if drop := dropStatements(s.stage, newObj, true, true, false, false); drop != "" {
		if _, err := e.exec(ctx, "", drop, engine.ReasonRestoreFailed); err != nil {
			return nil, err
		}
	}
	// The schema the old tables move to is made before the lock probe, so
	// that the swap's first statement follows the probe closely.
	old := oldPrefix + randomHex(6)
	if _, err := e.exec(ctx, "", "CREATE DATABASE "+quoteIdent(old), engine.ReasonRestoreFailed); err != nil {
		return nil, err
	}
	dropOld := func() { _ = e.dropDatabase(bg, old) }
	defer func() {
		if err != nil {
			dropOld()
		}
	}()
	if err := e.probeLocks(ctx, target, oldObj.tables); err != nil {
		return nil, err
	}
	if afterLockProbe != nil {
		afterLockProbe()
	}
	// A transaction begun since the probe makes the swap's first statements
	// wait for it: at most the lock timeout too, then the swap is rolled back.
	bounded := fmt.Sprintf("SET SESSION lock_wait_timeout = %d;\n", e.lockWaitSeconds())

	// From here on the target changes; every failure rolls back.
	renamed := false
	defer func() {
		if err == nil {
			return
		}
		if rerr := e.rollback(bg, s, old, oldObj, newObj, oldSQL, renamed); rerr != nil {
			err = engine.Errorf(engine.ReasonRestoreFailed, "%v; ROLLBACK FAILED, the target %q needs attention: %v", err, target, rerr)
		} else if engine.ReasonOf(err) == engine.ReasonTargetBusy {
			err = engine.Errorf(engine.ReasonTargetBusy, "%v; another session took the target's tables after they were found free and held them for more than %ds (see SHOW PROCESSLIST); the target was restored to its previous state",
				err, e.lockWaitSeconds())
		} else {
			err = engine.Errorf(engine.ReasonRestoreFailed, "%v; the target was restored to its previous state", err)
		}
	}()
	if drop := dropStatements(target, oldObj, true, true, false, false); drop != "" {
		if _, err := e.exec(ctx, "", bounded+drop, engine.ReasonRestoreFailed); err != nil {
			return nil, err
		}
	}
	if rename := renameStatement(target, old, oldObj.tables, s.stage, target, newObj.tables); rename != "" {
		if _, err := e.exec(ctx, "", bounded+rename, engine.ReasonRestoreFailed); err != nil {
			return nil, err
		}
	}
	renamed = true
	rebuild := dropStatements(target, oldObj, false, false, true, true)
	if _, err := e.exec(ctx, "", rebuild+"SELECT 1", engine.ReasonRestoreFailed); err != nil {
		return nil, err
	}
	if _, err := e.exec(ctx, target, newSQL+"\n"+s.events.String(), engine.ReasonRestoreFailed); err != nil {
		return nil, err
	}
	undo := func(ctx context.Context) error {
		if err := e.rollback(ctx, s, old, oldObj, newObj, oldSQL, true); err != nil {
			return err
		}
		if created {
			return e.dropDatabase(ctx, target)
		}
		return nil
	}
	return &swapped{target: target, undo: undo, dropOld: dropOld}, nil
}

// probeLocks takes and at once gives back a write lock on every live table
// of db, waiting at most the lock timeout, before the swap changes
// anything: an application's open transaction on one of them fails the
// restore with TargetBusy while the target is untouched. The swap's own
// statements then find the tables free, but for a transaction begun in
// the milliseconds between: for that one they wait the lock timeout too,
// then roll back. (Waiting without a bound would queue every new query on
// the table behind the restore; the rollback itself waits as long as it
// must, since it puts the old objects back.)
func (e *Engine) probeLocks(ctx context.Context, db string, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	secs := e.lockWaitSeconds()
	locks := make([]string, len(tables))
	for i, t := range tables {
		locks[i] = quoteIdent(db) + "." + quoteIdent(t) + " WRITE"
	}
	_, err := e.exec(ctx, "", fmt.Sprintf("SET SESSION lock_wait_timeout = %d;\nLOCK TABLES %s;\nUNLOCK TABLES;", secs, strings.Join(locks, ", ")), engine.ReasonRestoreFailed)
	if engine.ReasonOf(err) == engine.ReasonTargetBusy {
		return engine.Errorf(engine.ReasonTargetBusy, "%v; other sessions held the target's tables for more than %ds (see SHOW PROCESSLIST), nothing was changed", err, secs)
	}
	return err
}

// lockWaitSeconds is the lock timeout in MariaDB's lock_wait_timeout unit.
func (e *Engine) lockWaitSeconds() int64 {
	return max(1, int64(math.Ceil(engine.LockTimeoutOf(e.opts).Seconds())))
}

// afterLockProbe, when set by a test, runs between the lock probe and the
// swap's first statement.
var afterLockProbe func()

// createIfMissing creates database db unless it exists, and says whether it
// did. CREATE DATABASE without IF NOT EXISTS fails, rather than claiming a
// database somebody else created in between.
func (e *Engine) createIfMissing(ctx context.Context, db string) (bool, error) {
	n, err := e.exec(ctx, "", "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+quoteString(db), engine.ReasonRestoreFailed)
	if err != nil {
		return false, err
	}
	if n != "0" {
		return false, nil
	}
	if _, err := e.exec(ctx, "", "CREATE DATABASE "+quoteIdent(db), engine.ReasonRestoreFailed); err != nil {
		return false, err
	}
	return true, nil
}

// dropDatabase drops db and whatever it holds.
func (e *Engine) dropDatabase(ctx context.Context, db string) error {
	_, err := e.exec(ctx, "", "SET SESSION foreign_key_checks = 0; DROP DATABASE IF EXISTS "+quoteIdent(db), "")
	return err
}

// renameStatement moves fromTables of a to b and toTables of c to d, in one statement.
func renameStatement(a, b string, fromTables []string, c, d string, toTables []string) string {
	var parts []string
	for _, t := range fromTables {
		parts = append(parts, fmt.Sprintf("%s.%s TO %s.%s", quoteIdent(a), quoteIdent(t), quoteIdent(b), quoteIdent(t)))
	}
	for _, t := range toTables {
		parts = append(parts, fmt.Sprintf("%s.%s TO %s.%s", quoteIdent(c), quoteIdent(t), quoteIdent(d), quoteIdent(t)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "RENAME TABLE " + strings.Join(parts, ", ") + ";"
}

// rollback puts the target back as it was before swap touched it.
func (e *Engine) rollback(ctx context.Context, s *section, old string, oldObj, newObj *objects, oldSQL string, swapped bool) error {
	target := s.target
	cur, err := e.listObjects(ctx, target)
	if err != nil {
		return err
	}
	// Before the rename, the swap has only dropped triggers and views. When
	// none is missing (their first DROP waited too long for a table another
	// session took), the target is as it was: recreating them would wait
	// for that session, as long as it holds the table.
	if !swapped && containsAll(cur.triggers, oldObj.triggers) && containsAll(cur.views, oldObj.views) {
		return nil
	}
	drop := dropStatements(target, cur, true, true, true, true)
	if drop != "" {
		if _, err := e.exec(ctx, "", drop, ""); err != nil {
			return err
		}
	}
	if swapped {
		if rename := renameStatement(target, s.stage, newObj.tables, old, target, oldObj.tables); rename != "" {
			if _, err := e.exec(ctx, "", rename, ""); err != nil {
				return err
			}
		}
	}
	_, err = e.exec(ctx, target, oldSQL, "")
	return err
}

// containsAll tells whether have holds every name of want.
func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// classify is the package's classify, with what the engine's options
// tell about the failure.
func (e *Engine) classify(ctx context.Context, tool string, err error, stderr, fallback string) error {
	cerr := classify(ctx, tool, err, stderr, fallback)
	if e.opts.TLSMode == "disable" && engine.ReasonOf(cerr) == engine.ReasonTargetAuthenticationFailed {
		// MariaDB refuses a login without TLS to a server that requires it
		// with the same "Access denied" as a wrong password.
		return engine.Errorf(engine.ReasonTargetAuthenticationFailed, "%v (tlsMode is disable; a server with require_secure_transport answers a login without TLS with this same error)", cerr)
	}
	return cerr
}

// classify turns a client failure into an engine error with a reason. The
// clients never print the password (it is not in argv, and they do not echo it).
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
			msg = fmt.Sprintf("%s exited with %d: %s", tool, ee.ExitCode(), msg)
		}
	} else {
		msg = fmt.Sprintf("%s: %v: %s", tool, err, msg)
	}
	if ctx.Err() != nil {
		msg += " (" + ctx.Err().Error() + ")"
	}
	reason := fallback
	switch {
	case containsAny(stderr, "ERROR 1049 ", "error: 1049:", "Unknown database '"):
		reason = engine.ReasonDatabaseNotFound
	case containsAny(stderr, "ERROR 1205 ", "Lock wait timeout exceeded"):
		reason = engine.ReasonTargetBusy
	case containsAny(stderr, "ERROR 1045 ", "ERROR 1044 ", "ERROR 1698 ", "error: 1045:", "error: 1044:", "error: 1698:",
		"Access denied for user"):
		reason = engine.ReasonTargetAuthenticationFailed
	case containsAny(stderr, "ERROR 2002 ", "ERROR 2003 ", "ERROR 2005 ", "ERROR 2006 ", "ERROR 2013 ", "ERROR 2026 ",
		"error: 2002:", "error: 2003:", "error: 2005:", "error: 2006:", "error: 2013:", "error: 2026:",
		"Can't connect to", "Unknown server host", "Lost connection to server", "server has gone away"):
		reason = engine.ReasonTargetUnreachable
	}
	if reason == "" {
		return errors.New(msg)
	}
	return engine.Errorf(reason, "%s", msg)
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

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

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", "''", "\x00", `\0`).Replace(s) + "'"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tail keeps the last n bytes written to it.
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
