package docs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
	"github.com/backstop-io/backstop/internal/testutil/minio"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

// The tests below make a real backup with the agent (the backstop binary),
// then restore it on "a laptop" with nothing but the shell commands of
// docs/disaster-recovery.md: the fenced code blocks marked with
// <!-- test: NAME --> are run with bash, in the order a user would run them,
// with the variables the page tells the user to set.

const recoveryDoc = "docs/disaster-recovery.md"

// docBlocks returns the marked code blocks of the page by name.
func docBlocks(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), recoveryDoc))
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	name := ""
	inBlock := false
	var body strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case inBlock && strings.HasPrefix(line, "```"):
			blocks[name] = body.String()
			inBlock, name = false, ""
		case inBlock:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "<!-- test: ") && strings.HasSuffix(line, " -->"):
			name = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- test: "), " -->")
			if _, dup := blocks[name]; dup {
				t.Fatalf("%s: two blocks are marked %q", recoveryDoc, name)
			}
		case name != "" && strings.HasPrefix(line, "```"):
			inBlock = true
			body.Reset()
		case name != "" && strings.TrimSpace(line) != "":
			t.Fatalf("%s: the block marked %q must follow its marker", recoveryDoc, name)
		}
	}
	if inBlock {
		t.Fatalf("%s: unterminated code block %q", recoveryDoc, name)
	}
	return blocks
}

// tools are the programs the page uses that the test provides: the backstop
// binary and the stock age CLI.
type tools struct {
	dir string // holds backstop, age and age-keygen
}

var (
	toolsOnce sync.Once
	toolsDir  string
	toolsErr  error
)

func getTools(t *testing.T) tools {
	t.Helper()
	ageBin, keygen := minio.AgeBinaries(t)
	toolsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "backstop-docs-tools-")
		if err != nil {
			toolsErr = err
			return
		}
		toolsDir = dir
		for _, p := range []string{ageBin, keygen} {
			if err := os.Symlink(p, filepath.Join(dir, filepath.Base(p))); err != nil {
				toolsErr = err
				return
			}
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "backstop"), ".")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			toolsErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	for _, p := range []string{"zstd", "sha256sum", "tar"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s not found: install it (Debian package %s; make test does)", p, map[string]string{"zstd": "zstd", "sha256sum": "coreutils", "tar": "tar"}[p])
		}
	}
	return tools{dir: toolsDir}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if toolsDir != "" {
		_ = os.RemoveAll(toolsDir)
	}
	os.Exit(code)
}

// env is the environment of one scenario: PATH with the tools first, and the
// page's variables.
func (tl tools) env(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, set := vars[k]; set || k == "PATH" || strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "MYSQL") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+tl.dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// runBlocks runs the named blocks of the page as one bash script (as a user
// pastes them into one shell, with `set -o pipefail` as the page says).
func runBlocks(t *testing.T, blocks map[string]string, env []string, dir string, names ...string) (string, error) {
	t.Helper()
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, n := range names {
		b, ok := blocks[n]
		if !ok {
			t.Fatalf("%s has no block marked <!-- test: %s -->", recoveryDoc, n)
		}
		fmt.Fprintf(&script, "# --- %s\n%s", n, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Env = env
	cmd.Dir = dir
	killGroupOnTimeout(cmd)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// killGroupOnTimeout makes a command's timeout end its children too (a
// pipeline's psql or zstd), and stops waiting for output they hold open.
func killGroupOnTimeout(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
}

func mustRunBlocks(t *testing.T, blocks map[string]string, env []string, dir string, names ...string) string {
	t.Helper()
	out, err := runBlocks(t, blocks, env, dir, names...)
	if err != nil {
		t.Fatalf("the commands of %s %v failed: %v\n%s", recoveryDoc, names, err, out)
	}
	t.Logf("%v:\n%s", names, out)
	return out
}

// artifact is a backup made by the agent into a filesystem store.
type artifact struct {
	storeDir     string // the store's root (a volume's subPath)
	artifactPath string // <namespace>/<target>/<backup>
	key          string // the age identity file
}

// newKey makes an age identity with the stock age-keygen and returns its
// file and its recipient.
func newKey(t *testing.T, tl tools, dir string) (file, recipient string) {
	t.Helper()
	file = filepath.Join(dir, "identity.txt")
	if out, err := exec.Command(filepath.Join(tl.dir, "age-keygen"), "-o", file).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(tl.dir, "age-keygen"), "-y", file).Output()
	if err != nil {
		t.Fatalf("age-keygen -y: %v", err)
	}
	return file, strings.TrimSpace(string(out))
}

// backup runs `backstop agent backup` with the engine flags and env given,
// into a fresh filesystem store, encrypted to a fresh x25519 key.
func backup(t *testing.T, tl tools, engineArgs, env []string, target string) artifact {
	t.Helper()
	work := t.TempDir()
	key, recipient := newKey(t, tl, work)
	a := artifact{storeDir: filepath.Join(work, "store"), artifactPath: "shop/" + target + "/" + target + "-20260102030405", key: key}
	if err := os.Mkdir(a.storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"agent", "backup"}, engineArgs...)
	args = append(args, "--store-type", "filesystem", "--fs-root", a.storeDir, "--artifact-path", a.artifactPath,
		"--encryption", "x25519", "--recipient", recipient,
		"--progress-interval", "0", "--termination-log", filepath.Join(work, "termination-log"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tl.dir, "backstop"), args...)
	cmd.Env = append(os.Environ(), env...)
	killGroupOnTimeout(cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("backstop agent backup: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	f, err := os.Open(filepath.Join(a.storeDir, a.artifactPath, manifest.FileName))
	if err != nil {
		t.Fatalf("no manifest after the backup: %v", err)
	}
	defer f.Close()
	m, err := manifest.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.Encryption.Mode != "x25519" || m.Compression.Algorithm != "zstd" {
		t.Fatalf("manifest: %+v", m)
	}
	t.Logf("backup %s: %s, %d bytes stored, %d plaintext", a.artifactPath, m.DataObject, m.StoredSize, m.PlaintextSize)
	return a
}

// laptopVars are the page's variables for restoring artifact a: BACKUP is a
// fresh directory on the "laptop".
func (a artifact) laptopVars(t *testing.T) map[string]string {
	return map[string]string{
		"KEY":           a.key,
		"BACKUP":        filepath.Join(t.TempDir(), "restore", filepath.Base(a.artifactPath)),
		"STORE_DIR":     a.storeDir,
		"ARTIFACT_PATH": a.artifactPath,
		"HOME":          t.TempDir(),
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestRecoveryPostgres(t *testing.T) {
	t.Parallel()
	blocks := docBlocks(t)
	tl := getTools(t)
	pg := pgserver.Start(t)
	pg.CreateDatabase(t, "app", "")
	pg.MustQuery(t, "app", pgSeed)
	want := pgChecksums(t, pg, "app")

	a := backup(t, tl, []string{"--engine", "postgres", "--host", pg.Host, "--port", strconv.Itoa(pg.Port),
		"--database", "app", "--user", pg.User, "--tls-mode", "disable"},
		[]string{"BACKSTOP_DB_PASSWORD=" + pg.Password}, "app-db")

	pgVars := func(db string) map[string]string {
		return map[string]string{"PGHOST": pg.Host, "PGPORT": strconv.Itoa(pg.Port), "PGUSER": pg.User,
			"PGPASSWORD": pg.Password, "PGSSLMODE": "disable", "PGDATABASE": db}
	}
	lv := a.laptopVars(t)
	work := t.TempDir()

	// The stock tools: fetch, check, check the plaintext, restore.
	out := mustRunBlocks(t, blocks, tl.env(merge(lv, pgVars("app_restored"))), work, "fetch", "check", "fingerprint", "check-plaintext", "postgres")
	for _, ok := range []string{"data.sql.zst.age: OK", "opens this backup", "-: OK"} {
		if !strings.Contains(out, ok) {
			t.Errorf("the checks did not print %q", ok)
		}
	}
	if got := pgChecksums(t, pg, "app_restored"); got != want {
		t.Errorf("restored with age | zstd | psql, the database differs:\nsource:   %s\nrestored: %s", want, got)
	}

	// backstop decrypt.
	mustRunBlocks(t, blocks, tl.env(merge(lv, pgVars("app_decrypted"))), work, "postgres-decrypt")
	if got := pgChecksums(t, pg, "app_decrypted"); got != want {
		t.Errorf("restored with backstop decrypt | psql, the database differs:\nsource:   %s\nrestored: %s", want, got)
	}
}

const pgSeed = `
CREATE TABLE customers (
  id serial PRIMARY KEY,
  name text NOT NULL,
  email text UNIQUE,
  note text,
  created timestamptz NOT NULL
);
INSERT INTO customers (name, email, note, created)
SELECT 'customer ' || g, 'c' || g || '@example.com',
       CASE WHEN g % 7 = 0 THEN NULL
            WHEN g % 5 = 0 THEN E'tab\there\nnewline ünïcødé ''quoted'' back\\slash'
            ELSE repeat('x', g % 50) END,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute 1.5 seconds'
FROM generate_series(1, 5000) g;
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers(id),
  total numeric(12,2),
  items jsonb,
  tags text[],
  digest bytea
);
INSERT INTO orders (customer_id, total, items, tags, digest)
SELECT 1 + g % 5000, g * 1.25, jsonb_build_object('n', g, 'sku', 'S' || g), ARRAY['a' || g % 3, 'b'], decode(md5(g::text), 'hex')
FROM generate_series(1, 20000) g;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 20000;
CREATE SCHEMA reporting;
CREATE TABLE reporting.daily (day date PRIMARY KEY, amount numeric);
INSERT INTO reporting.daily SELECT date '2026-01-01' + g, g * 10 FROM generate_series(0, 99) g;
CREATE FUNCTION reporting.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.amount := coalesce(NEW.amount, 0); RETURN NEW; END $$;
CREATE TRIGGER daily_touch BEFORE INSERT ON reporting.daily FOR EACH ROW EXECUTE FUNCTION reporting.touch();
`

// pgChecksums describes the data of the seeded database: per table the row
// count and an MD5 over the rows in order, the sequences, the view's rows and
// the trigger.
func pgChecksums(t *testing.T, pg *pgserver.Server, db string) string {
	t.Helper()
	return pg.MustQuery(t, db, `
SELECT string_agg(x, ' ' ORDER BY x) FROM (
  SELECT 'customers=' || count(*) || ':' || md5(string_agg(t::text, E'\n' ORDER BY t.id)) AS x FROM customers t
  UNION ALL SELECT 'orders=' || count(*) || ':' || md5(string_agg(t::text, E'\n' ORDER BY t.id)) FROM orders t
  UNION ALL SELECT 'daily=' || count(*) || ':' || md5(string_agg(t::text, E'\n' ORDER BY t.day)) FROM reporting.daily t
  UNION ALL SELECT 'big_orders=' || count(*) FROM big_orders
  UNION ALL SELECT 'customers_seq=' || last_value FROM customers_id_seq
  UNION ALL SELECT 'orders_seq=' || last_value FROM orders_id_seq
  UNION ALL SELECT 'triggers=' || count(*) FROM pg_trigger WHERE NOT tgisinternal
) s`)
}

func TestRecoveryMariaDB(t *testing.T) {
	t.Parallel()
	blocks := docBlocks(t)
	tl := getTools(t)
	my := mariadbserver.Start(t)
	my.CreateDatabase(t, "app")
	my.MustQuery(t, "app", mariaSeed)
	want := mariaChecksums(t, my, "app")

	a := backup(t, tl, []string{"--engine", "mysql", "--host", my.Host, "--port", strconv.Itoa(my.Port),
		"--database", "app", "--user", my.User, "--tls-mode", "disable"},
		[]string{"BACKSTOP_DB_PASSWORD=" + my.Password}, "shop-db")

	vars := merge(a.laptopVars(t), map[string]string{"MYSQL_HOST": my.Host, "MYSQL_TCP_PORT": strconv.Itoa(my.Port),
		"MYSQL_USER": my.User, "MYSQL_PWD": my.Password, "MYSQL_DATABASE": "app_restored"})
	mustRunBlocks(t, blocks, tl.env(vars), t.TempDir(), "fetch", "check", "check-plaintext", "mariadb")
	if got := mariaChecksums(t, my, "app_restored"); got != want {
		t.Errorf("restored with age | zstd | mariadb, the database differs:\nsource:   %s\nrestored: %s", want, got)
	}
}

const mariaSeed = `
SET SESSION max_recursive_iterations = 100000;
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  note TEXT,
  created DATETIME(6) NOT NULL,
  digest VARBINARY(16)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO customers (name, note, created, digest)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 5000)
SELECT CONCAT('customer ', n),
       IF(n % 7 = 0, NULL, IF(n % 5 = 0, 'tab\there\nnewline ünïcødé ''quoted'' back\\slash', REPEAT('x', n % 50))),
       TIMESTAMPADD(MICROSECOND, n * 1500, '2026-01-01 00:00:00'),
       UNHEX(MD5(n))
FROM seq;
CREATE TABLE orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  total DECIMAL(12,2),
  touched INT NOT NULL DEFAULT 0,
  KEY (customer_id),
  FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
INSERT INTO orders (customer_id, total)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 20000)
SELECT 1 + n % 5000, n * 1.25 FROM seq;
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 20000;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW SET NEW.touched = OLD.touched + 1;
`

func mariaChecksums(t *testing.T, my *mariadbserver.Server, db string) string {
	t.Helper()
	var parts []string
	for _, table := range []string{"customers", "orders"} {
		out := my.MustQuery(t, db, "CHECKSUM TABLE "+table+" EXTENDED")
		f := strings.Fields(out)
		parts = append(parts, table+"="+my.MustQuery(t, db, "SELECT COUNT(*) FROM "+table)+":"+f[len(f)-1])
	}
	parts = append(parts,
		"big_orders="+my.MustQuery(t, db, "SELECT COUNT(*) FROM big_orders"),
		"triggers="+my.MustQuery(t, "", "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '"+db+"'"),
		"next_id="+my.MustQuery(t, "", "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = '"+db+"' AND TABLE_NAME = 'orders'"))
	return strings.Join(parts, " ")
}

func TestRecoveryFiles(t *testing.T) {
	t.Parallel()
	blocks := docBlocks(t)
	tl := getTools(t)
	src := filepath.Join(t.TempDir(), "data")
	makeTree(t, src)
	want := describeTree(t, src)
	t.Logf("source tree:\n%s", want)

	a := backup(t, tl, []string{"--engine", "files", "--path", src}, nil, "uploads")
	vars := a.laptopVars(t)
	vars["RESTORE_DIR"] = filepath.Join(t.TempDir(), "restored")
	mustRunBlocks(t, blocks, tl.env(vars), t.TempDir(), "fetch", "check", "check-plaintext", "files")
	if got := describeTree(t, vars["RESTORE_DIR"]); got != want {
		t.Errorf("restored with age | zstd | tar, the tree differs:\nsource:\n%s\nrestored:\n%s", want, got)
	}

	// The checks of the page catch a damaged download and a wrong key.
	t.Run("damaged download", func(t *testing.T) {
		vars := a.laptopVars(t)
		mustRunBlocks(t, blocks, tl.env(vars), t.TempDir(), "fetch")
		data := filepath.Join(vars["BACKUP"], "data.tar.zst.age")
		b, err := os.ReadFile(data)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(data, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runBlocks(t, blocks, tl.env(vars), t.TempDir(), "check")
		if err == nil || !strings.Contains(out, "FAILED") {
			t.Fatalf("the check passed a damaged data object: %v\n%s", err, out)
		}
	})
	t.Run("wrong identity", func(t *testing.T) {
		vars := a.laptopVars(t)
		vars["KEY"], _ = newKey(t, tl, t.TempDir())
		out, err := runBlocks(t, blocks, tl.env(vars), t.TempDir(), "fetch", "check", "fingerprint", "check-plaintext")
		if err == nil {
			t.Fatalf("the plaintext check passed with the wrong identity:\n%s", out)
		}
		if strings.Contains(out, "opens this backup") {
			t.Errorf("the fingerprint check matched the wrong identity:\n%s", out)
		}
		if !strings.Contains(out, "data.tar.zst.age: OK") || !strings.Contains(out, "no identity matched") {
			t.Errorf("want the stored checksum to pass and age to refuse the identity:\n%s", out)
		}
	})
}

// makeTree writes a directory tree with what the files engine keeps: modes,
// owners (when root), nanosecond mtimes, symlinks, hard links, empty
// directories, odd names and binary data.
func makeTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	random := make([]byte, 300<<10)
	_, _ = rand.Read(random)
	must(os.MkdirAll(filepath.Join(root, "dir with space", "ünïcødé"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "empty"), 0o700))
	must(os.MkdirAll(filepath.Join(root, "shared"), 0o755))
	must(os.WriteFile(filepath.Join(root, "README.txt"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "dir with space", "ünïcødé", "random.bin"), random, 0o600))
	must(os.WriteFile(filepath.Join(root, "dir with space", "script.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "empty-file"), nil, 0o640))
	must(os.Link(filepath.Join(root, "README.txt"), filepath.Join(root, "shared", "hardlink.txt")))
	must(os.Symlink("../README.txt", filepath.Join(root, "shared", "link")))
	must(os.Chmod(filepath.Join(root, "shared"), os.ModeSetgid|0o775))
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(root, "dir with space", "script.sh"), 1234, 2345))
		must(os.Lchown(filepath.Join(root, "shared", "link"), 1234, 2345))
	}
	// mtimes last, deepest first, so that creating entries does not change them.
	var paths []string
	must(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		ts := time.Date(2025, 6, 1, 12, 0, i, 123456789, time.UTC)
		tv := []unix.Timespec{unix.NsecToTimespec(ts.UnixNano()), unix.NsecToTimespec(ts.UnixNano())}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], tv, unix.AT_SYMLINK_NOFOLLOW))
	}
	must(os.Chmod(root, 0o750))
}

// describeTree lists every entry of the tree: type, mode, owner (when root),
// mtime, size and SHA-256, symlink target, and which entries are hard links
// of each other.
func describeTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		if os.Geteuid() == 0 {
			line += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
		}
		line += " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += fmt.Sprintf(" %d %s", len(b), hex.EncodeToString(sum[:8]))
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					line += " link of " + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
