package pipeline

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/engine/files"
	"github.com/backstop-io/backstop/internal/engine/mysql"
	"github.com/backstop-io/backstop/internal/engine/postgres"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

// cutShortTool writes a dump tool that runs the real one with the same
// arguments but passes on only the first n bytes of its output, and exits
// 0 whatever happened: the dump tool a backup must not believe.
func cutShortTool(t *testing.T, name string, n int) string {
	t.Helper()
	real, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	script := fmt.Sprintf("#!/bin/sh\n'%s' \"$@\" | head -c %d\nexit 0\n", real, n)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func dumpOf(t *testing.T, e engine.Engine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := e.Dump(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func backupWith(t *testing.T, st store.Store, e engine.Engine) (*manifest.Manifest, error) {
	t.Helper()
	return Backup(context.Background(), BackupOptions{
		Engine: e, Store: st, ArtifactPath: artifactPath,
		Compression: compress.Zstd, Encryption: crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{newKey(t).recipient}},
	})
}

// wantIncomplete asserts that a backup failed with DumpIncomplete and left
// nothing in the store.
func wantIncomplete(t *testing.T, st store.Store, err error) {
	t.Helper()
	if r := reasonOf(t, err); r != ReasonDumpIncomplete {
		t.Fatalf("reason %s (%v), want %s", r, err, ReasonDumpIncomplete)
	}
	if keys := listKeys(t, st); len(keys) != 0 {
		t.Fatalf("a failed backup left %v in the store", keys)
	}
}

// oldArtifact stores dump as an artifact of engine name without checking
// it, as versions before the check did, and returns how to read it.
func oldArtifact(t *testing.T, name string, dump []byte) ReadOptions {
	t.Helper()
	st, root := newFS(t)
	key := newKey(t)
	m, err := Backup(context.Background(), BackupOptions{
		Engine: newFake("fake", dump), Store: st, ArtifactPath: artifactPath,
		Compression: compress.Zstd, Encryption: crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Engine = name
	// The versions that did not check completeness recorded no content
	// digest either (the fake engine's would be the plaintext's).
	m.ContentSHA256 = ""
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "backups", artifactPath, manifest.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return ReadOptions{Store: st, ArtifactPath: artifactPath, Decrypt: crypto.DecryptOptions{Identities: []age.Identity{key.identity}}, ScratchDir: t.TempDir()}
}

func wantVerifyIncomplete(t *testing.T, o ReadOptions) {
	t.Helper()
	_, err := Verify(context.Background(), o)
	if r := reasonOf(t, err); r != ReasonDumpIncomplete {
		t.Fatalf("verify: reason %s (%v), want %s", r, err, ReasonDumpIncomplete)
	}
}

func TestBackup_PostgresDumpCutShort(t *testing.T) {
	srv := pgserver.Start(t)
	srv.CreateDatabase(t, "cut", "")
	srv.MustQuery(t, "cut", "CREATE TABLE t AS SELECT i, md5(i::text) AS h FROM generate_series(1, 20000) i")
	opts := engine.Options{Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password, Databases: []string{"cut"}, TLSMode: "disable"}
	eng, err := postgres.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	full := dumpOf(t, eng)

	// A complete dump passes, and the manifest says it was checked.
	st, _ := newFS(t)
	m, err := backupWith(t, st, eng)
	if err != nil {
		t.Fatal(err)
	}
	if m.DumpCheck == nil || m.DumpCheck.Method != postgres.CheckMethod {
		t.Fatalf("manifest dumpCheck %+v", m.DumpCheck)
	}

	for _, n := range []int{len(full) / 2, len(full) - 200} {
		t.Run(fmt.Sprintf("cut at %d of %d", n, len(full)), func(t *testing.T) {
			cut, _ := postgres.New(opts)
			cut.PgDump = cutShortTool(t, "pg_dump", n)
			st, _ := newFS(t)
			_, err := backupWith(t, st, cut)
			wantIncomplete(t, st, err)
			// An artifact of such a dump, stored by an earlier version, fails
			// the verify, and a restore refuses it before touching the target.
			o := oldArtifact(t, postgres.Name, full[:n])
			wantVerifyIncomplete(t, o)
			target, _ := postgres.New(opts)
			if _, err := Restore(context.Background(), o, target); reasonOf(t, err) != ReasonDumpIncomplete {
				t.Fatalf("restore: %v", err)
			}
			if got := srv.MustQuery(t, "cut", "SELECT count(*) FROM t"); got != "20000" {
				t.Fatalf("the target has %s rows after a refused restore", got)
			}
		})
	}

	// A database that does not exist has its own reason.
	missing := opts
	missing.Databases = []string{"no_such_db"}
	wantDatabaseNotFound(t, postgres.Name, missing)
}

func wantDatabaseNotFound(t *testing.T, name string, opts engine.Options) {
	t.Helper()
	eng, err := engine.New(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := newFS(t)
	_, err = backupWith(t, st, eng)
	if r := reasonOf(t, err); r != ReasonDatabaseNotFound || !strings.Contains(err.Error(), "no_such_db") {
		t.Fatalf("backup of a missing database: reason %s (%v), want %s naming it", r, err, ReasonDatabaseNotFound)
	}
	if keys := listKeys(t, st); len(keys) != 0 {
		t.Fatalf("a failed backup left %v in the store", keys)
	}
}

func TestBackup_MySQLDumpCutShort(t *testing.T) {
	srv := mariadbserver.Start(t)
	srv.CreateDatabase(t, "cut")
	srv.MustQuery(t, "cut", "CREATE TABLE t (i INT PRIMARY KEY, h CHAR(32)); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_20000;")
	opts := engine.Options{Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password, Databases: []string{"cut"}, TLSMode: "disable"}
	eng, err := mysql.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	full := dumpOf(t, eng)

	st, _ := newFS(t)
	m, err := backupWith(t, st, eng)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.DumpCheck; c == nil || c.Method != mysql.CheckMethod || c.Entries == nil || *c.Entries != 1 {
		t.Fatalf("manifest dumpCheck %+v, want the mysql method and 1 database", c)
	}

	// Each mariadb-dump run (the database, then its events) is cut short.
	cut, _ := mysql.New(opts)
	cut.Dumper = cutShortTool(t, "mariadb-dump", len(full)/2)
	st, _ = newFS(t)
	_, err = backupWith(t, st, cut)
	wantIncomplete(t, st, err)

	// Stored by an earlier version: cut inside the data, and cut after the
	// database's dump but before its events, both fail the verify.
	events := bytes.Index(full, []byte("\n-- backstop-events: "))
	if events < 0 {
		t.Fatal("the dump has no events part")
	}
	for _, n := range []int{len(full) / 2, events + 1, len(full) - 40} {
		wantVerifyIncomplete(t, oldArtifact(t, mysql.Name, full[:n]))
	}
	if _, err := Verify(context.Background(), oldArtifact(t, mysql.Name, full)); err != nil {
		t.Fatalf("verify of the whole dump: %v", err)
	}

	missing := opts
	missing.Databases = []string{"cut", "no_such_db"}
	wantDatabaseNotFound(t, mysql.Name, missing)
}

// cutFiles is the files engine with its archive cut short, or rewritten.
type cutFiles struct {
	*files.Engine
	rewrite func([]byte) []byte
}

func (c *cutFiles) Dump(ctx context.Context, w io.Writer) error {
	var b bytes.Buffer
	if err := c.Engine.Dump(ctx, &b); err != nil {
		return err
	}
	_, err := w.Write(c.rewrite(b.Bytes()))
	return err
}

// firstEntries returns a well-formed archive with the first k entries of a.
func firstEntries(t *testing.T, a []byte, k int) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(a)), tar.NewWriter(&out)
	for range k {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestBackup_FilesDumpCutShort(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		os.MkdirAll(filepath.Join(dir, fmt.Sprintf("d%d", i)), 0o755)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("d%d", i), "f"), bytes.Repeat([]byte{byte('a' + i)}, 3000+i*10000), 0o644)
	}
	os.Symlink("d0/f", filepath.Join(dir, "link"))
	eng, err := files.New(engine.Options{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	full := dumpOf(t, eng)

	st, _ := newFS(t)
	m, err := backupWith(t, st, eng)
	if err != nil {
		t.Fatal(err)
	}
	c := m.DumpCheck
	// The root, 5 directories, 5 files and a symlink; the files' bytes.
	if c == nil || c.Method != files.CheckMethod || c.Entries == nil || *c.Entries != 12 || c.FileBytes == nil || *c.FileBytes != 5*3000+10000*10 {
		t.Fatalf("manifest dumpCheck %+v", c)
	}

	// An archive that holds fewer entries than its manifest records fails
	// the verify, complete as it is in itself.
	o := oldArtifact(t, files.Name, firstEntries(t, full, 6))
	wrong := *c
	o.Store.Put(context.Background(), ManifestKey(artifactPath), bytes.NewReader(func() []byte {
		rc, err := o.Store.Get(context.Background(), ManifestKey(artifactPath))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		old, err := manifest.Read(rc)
		if err != nil {
			t.Fatal(err)
		}
		old.DumpCheck = &wrong
		b, _ := old.Marshal()
		return b
	}()))
	wantVerifyIncomplete(t, o)

	for name, rewrite := range map[string]func([]byte) []byte{
		"cut inside a file":            func(a []byte) []byte { return a[:len(a)/2] },
		"cut before the end blocks":    func(a []byte) []byte { return a[:len(a)-1024] },
		"cut inside the end blocks":    func(a []byte) []byte { return a[:len(a)-512] },
		"well-formed, entries missing": func(a []byte) []byte { return firstEntries(t, a, 6) },
	} {
		t.Run(name, func(t *testing.T) {
			eng, _ := files.New(engine.Options{Path: dir})
			st, _ := newFS(t)
			_, err := backupWith(t, st, &cutFiles{Engine: eng, rewrite: rewrite})
			wantIncomplete(t, st, err)
			if !strings.Contains(name, "well-formed") {
				wantVerifyIncomplete(t, oldArtifact(t, files.Name, rewrite(full)))
			}
		})
	}
}
