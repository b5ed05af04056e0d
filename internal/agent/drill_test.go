package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

// drillFixture backs up real databases into a filesystem store, encrypted
// to a key made for the test, and drills them through the agent.
type drillFixture struct {
	root, idFile, recipient string
}

func newDrillFixture(t *testing.T) *drillFixture {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &drillFixture{root: filepath.Join(dir, "store"), idFile: filepath.Join(dir, "key.txt"), recipient: id.Recipient().String()}
	os.Mkdir(f.root, 0o755)
	os.WriteFile(f.idFile, []byte(id.String()+"\n"), 0o600)
	return f
}

func (f *drillFixture) common(artifact string) []string {
	return []string{"--store-type", "filesystem", "--fs-root", f.root, "--artifact-path", artifact,
		"--progress-interval", "0", "--termination-log", ""}
}

func (f *drillFixture) backup(t *testing.T, env map[string]string, artifact string, engineArgs ...string) {
	t.Helper()
	args := append([]string{"backup", "--encryption", "x25519", "--recipient", f.recipient, "--scratch-dir", t.TempDir()}, f.common(artifact)...)
	if rr := runAgent(t, env, append(args, engineArgs...)...); rr.code != 0 {
		t.Fatalf("backup %s: %d %s %s", artifact, rr.code, rr.stdout, rr.stderr)
	}
}

// drill runs a drill; scratch is its emptyDir: world-writable, as the
// kubelet makes one, where the server's own user can reach it (the test
// runs as root, the throwaway server as its own user).
func (f *drillFixture) drill(t *testing.T, checks string, artifact string, extra ...string) runResult {
	t.Helper()
	scratch, err := os.MkdirTemp("", "drill-scratch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratch) })
	os.Chmod(scratch, 0o777)
	args := append([]string{"drill", "--identity-file", f.idFile, "--scratch-dir", scratch}, f.common(artifact)...)
	return runAgent(t, map[string]string{EnvDrillChecks: checks}, append(args, extra...)...)
}

func checkNamed(r Result, name string) *CheckResult {
	if r.Drill == nil {
		return nil
	}
	for i := range r.Drill.Checks {
		if r.Drill.Checks[i].Name == name {
			return &r.Drill.Checks[i]
		}
	}
	return nil
}

func TestAgent_DrillPostgres(t *testing.T) {
	pg := pgserver.Start(t)
	pg.CreateDatabase(t, "shop", pg.User)
	pg.MustQuery(t, "shop", `CREATE TABLE orders (id int PRIMARY KEY, placed date, note text);
		INSERT INTO orders SELECT g, current_date - (g % 5), 'line ' || g || E'\nwith a newline, a \\ and a '' quote' FROM generate_series(1, 1500) g;
		CREATE SCHEMA audit; CREATE TABLE audit."Log" (at timestamptz, what text);
		INSERT INTO audit."Log" VALUES (now(), 'x'), (now(), NULL);
		CREATE TABLE empty_one (x int);`)
	env := map[string]string{EnvDBUser: pg.User, EnvDBPassword: pg.Password}
	target := []string{"--engine", "postgres", "--host", pg.Host, "--port", strconv.Itoa(pg.Port), "--database", "shop"}
	f := newDrillFixture(t)
	f.backup(t, env, "ns/shop/full", target...)
	pg.MustQuery(t, "shop", "DELETE FROM orders")
	f.backup(t, env, "ns/shop/emptied", target...)

	recent := `[{"name":"recent-orders","sql":"SELECT count(*) > 0 FROM orders WHERE placed > current_date - 2","expect":"t"}]`

	t.Run("Passes", func(t *testing.T) {
		rr := f.drill(t, recent, "ns/shop/full", "--engine", "postgres")
		if rr.code != 0 || rr.result.Phase != PhaseSucceeded {
			t.Fatalf("drill %d: %s %s", rr.code, rr.stdout, rr.stderr)
		}
		d := rr.result.Drill
		if d == nil || d.RestoreSeconds <= 0 || !strings.HasPrefix(d.Server, "PostgreSQL ") {
			t.Fatalf("report %+v", d)
		}
		var names []string
		for _, c := range d.Checks {
			names = append(names, c.Name)
			if !c.Passed {
				t.Errorf("check %s failed: %s", c.Name, c.Message)
			}
		}
		if got := strings.Join(names, ","); got != "integrity,tables,recent-orders" {
			t.Errorf("checks %s, want integrity,tables,recent-orders", got)
		}
		if d.Tables != 3 || d.Rows != 1502 {
			t.Errorf("restored %d tables, %d rows; want 3 and 1502", d.Tables, d.Rows)
		}
		// The source is untouched: the drill never had its address.
		if n := pg.MustQuery(t, "shop", "SELECT count(*) FROM orders"); n != "0" {
			t.Errorf("the source's orders: %s rows", n)
		}
	})

	t.Run("EmptiedDatabaseFailsItsUserCheck", func(t *testing.T) {
		rr := f.drill(t, recent, "ns/shop/emptied")
		if rr.code != 1 || rr.result.Reason != ReasonCheckFailed || !strings.Contains(rr.result.Message, "recent-orders") {
			t.Fatalf("drill %d: %s", rr.code, rr.stdout)
		}
		c := checkNamed(rr.result, "recent-orders")
		if c == nil || c.Passed || c.Message != `returned "f", want "t"` {
			t.Fatalf("recent-orders: %+v", c)
		}
		if c := checkNamed(rr.result, "tables"); c == nil || !c.Passed {
			t.Errorf("tables: %+v (the emptied backup is consistent with itself)", c)
		}
	})

	t.Run("QueryThatDoesNotParse", func(t *testing.T) {
		rr := f.drill(t, `[{"name":"typo","sql":"SELEC count(*) FROM orders","expect":"1"}]`, "ns/shop/full")
		c := checkNamed(rr.result, "typo")
		if rr.code != 1 || rr.result.Reason != ReasonCheckFailed || c == nil || c.Passed || !strings.Contains(c.Message, "syntax error") {
			t.Fatalf("drill %d: %s", rr.code, rr.stdout)
		}
	})

	t.Run("CorruptArtifactFailsIntegrity", func(t *testing.T) {
		src := filepath.Join(f.root, "ns/shop/full")
		dst := filepath.Join(f.root, "ns/shop/corrupt")
		os.MkdirAll(dst, 0o755)
		for _, n := range []string{"manifest.json", "data.sql.zst.age"} {
			b, _ := os.ReadFile(filepath.Join(src, n))
			if n != "manifest.json" {
				b[len(b)/2] ^= 0xff
			}
			os.WriteFile(filepath.Join(dst, n), b, 0o644)
		}
		rr := f.drill(t, recent, "ns/shop/corrupt")
		c := checkNamed(rr.result, "integrity")
		if rr.code != 1 || rr.result.Reason != ReasonIntegrityMismatch || c == nil || c.Passed || len(rr.result.Drill.Checks) != 1 {
			t.Fatalf("drill %d: %s", rr.code, rr.stdout)
		}
	})

	t.Run("ScratchTooSmall", func(t *testing.T) {
		rr := f.drill(t, "", "ns/shop/full", "--scratch-size-limit", "4096")
		if rr.code != 1 || rr.result.Reason != ReasonScratchTooSmall || !strings.Contains(rr.result.Message, "needs about") {
			t.Fatalf("drill %d: %s", rr.code, rr.stdout)
		}
	})

	t.Run("IntoScratchTarget", func(t *testing.T) {
		pg.CreateDatabase(t, "scratch", pg.User)
		rr := runAgent(t, map[string]string{EnvDBUser: pg.User, EnvDBPassword: pg.Password, EnvDrillChecks: recent},
			append([]string{"drill", "--identity-file", f.idFile, "--scratch-dir", t.TempDir(), "--into-target",
				"--engine", "postgres", "--host", pg.Host, "--port", strconv.Itoa(pg.Port), "--database", "scratch"}, f.common("ns/shop/full")...)...)
		if rr.code != 0 || rr.result.Drill == nil || !strings.HasPrefix(rr.result.Drill.Server, "scratch target") {
			t.Fatalf("drill %d: %s %s", rr.code, rr.stdout, rr.stderr)
		}
		if n := pg.MustQuery(t, "scratch", "SELECT count(*) FROM orders"); n != "1500" {
			t.Errorf("scratch target holds %s orders", n)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		for name, tc := range map[string]struct {
			checks string
			args   []string
			want   string
		}{
			"source address without --into-target": {"", []string{"--host", pg.Host}, "name a scratch target with --into-target"},
			"checks that are not JSON":             {"[{", nil, EnvDrillChecks},
			"a check without sql":                  {`[{"name":"x"}]`, nil, `user check "x" has no sql`},
			"a missing backup":                     {"", []string{"--artifact-path", "ns/shop/none"}, "no manifest"},
		} {
			rr := f.drill(t, tc.checks, "ns/shop/full", tc.args...)
			if rr.code != 1 || !strings.Contains(rr.result.Message, tc.want) {
				t.Errorf("%s: %d %s", name, rr.code, rr.stdout)
			}
		}
	})
}

func TestAgent_DrillMariaDB(t *testing.T) {
	db := mariadbserver.Start(t)
	db.CreateDatabase(t, "shop")
	db.MustQuery(t, "shop", `CREATE TABLE orders (id int PRIMARY KEY, note text);
		INSERT INTO orders VALUES (1, 'a, (b)'), (2, 'it''s'), (3, NULL), (4, 'back\\slash');
		CREATE TABLE empty_one (x int);
		CREATE VIEW v AS SELECT id FROM orders;`)
	env := map[string]string{EnvDBUser: db.User, EnvDBPassword: db.Password}
	f := newDrillFixture(t)
	f.backup(t, env, "ns/shop/b1", "--engine", "mysql", "--host", db.Host, "--port", strconv.Itoa(db.Port), "--database", "shop")

	checks, _ := json.Marshal([]map[string]string{
		{"name": "four-orders", "sql": "SELECT COUNT(*) = 4 FROM orders", "expect": "1"},
		{"name": "view", "sql": "SELECT COUNT(*) FROM v", "expect": "4"},
	})
	rr := f.drill(t, string(checks), "ns/shop/b1")
	if rr.code != 0 {
		t.Fatalf("drill %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}
	d := rr.result.Drill
	if len(d.Checks) != 4 || d.Tables != 2 || d.Rows != 4 || !strings.Contains(d.Server, "throwaway") {
		t.Fatalf("report %+v", d)
	}
}

func TestAgent_DrillFiles(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "volume")
	os.MkdirAll(filepath.Join(data, "sub", "deeper"), 0o755)
	os.WriteFile(filepath.Join(data, "a.txt"), []byte("alpha\n"), 0o644)
	os.WriteFile(filepath.Join(data, "sub", "b.bin"), randomData(200<<10), 0o600)
	os.Symlink("../a.txt", filepath.Join(data, "sub", "link"))
	f := newDrillFixture(t)
	f.backup(t, nil, "ns/vol/b1", "--engine", "files", "--path", data)

	rr := f.drill(t, "", "ns/vol/b1")
	if rr.code != 0 {
		t.Fatalf("drill %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}
	d := rr.result.Drill
	if c := checkNamed(rr.result, "files"); c == nil || !c.Passed || d.Files != 6 || d.Bytes != 6+200<<10 {
		t.Fatalf("report %+v", d)
	}
	if rr = f.drill(t, `[{"name":"q","sql":"SELECT 1","expect":"1"}]`, "ns/vol/b1"); rr.code != 1 || !strings.Contains(rr.result.Message, "a files backup has no database") {
		t.Fatalf("a files drill with SQL checks: %d %s", rr.code, rr.stdout)
	}
}
