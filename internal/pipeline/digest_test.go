package pipeline

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/engine/files"
	"github.com/backstop-io/backstop/internal/engine/mysql"
	"github.com/backstop-io/backstop/internal/engine/postgres"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

// digestOf backs up with a fresh engine of name into a fresh store.
func digestOf(t *testing.T, name string, opts engine.Options) *manifest.Manifest {
	t.Helper()
	eng, err := engine.New(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := newFS(t)
	m, err := backupWith(t, st, eng)
	if err != nil {
		t.Fatal(err)
	}
	if !hexDigest(m.ContentSHA256) {
		t.Fatalf("contentSha256 %q", m.ContentSHA256)
	}
	return m
}

func hexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// sameThenDifferent takes two backups of unchanged data, then one after
// change(), and checks the content digests: equal, then different.
func sameThenDifferent(t *testing.T, name string, opts engine.Options, change func()) (first, second *manifest.Manifest) {
	t.Helper()
	a, b := digestOf(t, name, opts), digestOf(t, name, opts)
	if a.ContentSHA256 != b.ContentSHA256 {
		t.Fatalf("two backups of unchanged data: content digests %s and %s", a.ContentSHA256, b.ContentSHA256)
	}
	change()
	c := digestOf(t, name, opts)
	if c.ContentSHA256 == a.ContentSHA256 {
		t.Fatalf("a changed row or file left the content digest at %s", a.ContentSHA256)
	}
	return a, b
}

func TestContentDigest_Postgres(t *testing.T) {
	srv := pgserver.Start(t)
	srv.CreateDatabase(t, "dig", "")
	srv.MustQuery(t, "dig", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 1000) i")
	opts := engine.Options{Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password, Databases: []string{"dig"}, TLSMode: "disable"}
	eng, _ := postgres.New(opts)
	restrict := bytes.Contains(dumpOf(t, eng), []byte("\n\\restrict "))
	a, b := sameThenDifferent(t, postgres.Name, opts, func() {
		srv.MustQuery(t, "dig", "UPDATE t SET v = 'changed' WHERE id = 500")
	})
	// pg_dump's random key makes the dumps themselves differ.
	if restrict && a.PlaintextSHA256 == b.PlaintextSHA256 {
		t.Fatal("two dumps with random \\restrict keys have the same SHA-256")
	}
	if !restrict {
		t.Log("this pg_dump writes no \\restrict key")
	}
}

func TestContentDigest_MySQL(t *testing.T) {
	srv := mariadbserver.Start(t)
	srv.CreateDatabase(t, "dig")
	srv.MustQuery(t, "dig", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64)); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_1000;")
	opts := engine.Options{Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password, Databases: []string{"dig"}, TLSMode: "disable"}
	sameThenDifferent(t, mysql.Name, opts, func() {
		srv.MustQuery(t, "dig", "UPDATE t SET v = 'changed' WHERE id = 500")
	})
}

func TestContentDigest_Files(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(f, []byte("version one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "other"), []byte("unchanged"), 0o644)
	st, _ := os.Stat(f)
	a, _ := sameThenDifferent(t, files.Name, engine.Options{Path: dir}, func() {
		// Same size and mtime: only the content changes.
		os.WriteFile(f, []byte("version two\n"), 0o644)
		os.Chtimes(f, st.ModTime(), st.ModTime())
	})
	if a.ContentSHA256 != a.PlaintextSHA256 {
		t.Fatal("a files backup's content digest is not the SHA-256 of its archive")
	}
}
