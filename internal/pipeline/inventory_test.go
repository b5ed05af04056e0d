package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
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
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

// inventoryArtifact backs eng up into a fresh store; it returns the
// manifest, how to read the artifact, and how to rewrite its manifest.
func inventoryArtifact(t *testing.T, eng engine.Engine) (*manifest.Manifest, ReadOptions, func(*manifest.Manifest)) {
	t.Helper()
	st, root := newFS(t)
	key := newKey(t)
	m, err := Backup(context.Background(), BackupOptions{
		Engine: eng, Store: st, ArtifactPath: artifactPath,
		Compression: compress.Zstd, Encryption: crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}},
	})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	mf := filepath.Join(root, "backups", artifactPath, manifest.FileName)
	f, err := os.Open(mf)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := manifest.Read(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if stored.Inventory == nil || !reflect.DeepEqual(stored.Inventory, m.Inventory) {
		t.Fatalf("the stored manifest's inventory is %+v, the backup's %+v", stored.Inventory, m.Inventory)
	}
	o := ReadOptions{Store: st, ArtifactPath: artifactPath, Decrypt: crypto.DecryptOptions{Identities: []age.Identity{key.identity}}, ScratchDir: t.TempDir()}
	rewrite := func(m *manifest.Manifest) {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mf, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return m, o, rewrite
}

// wantInventoryChecked verifies the artifact, then verifies it with each
// altered inventory (IntegrityMismatch naming the inventory), then without
// one, as earlier versions wrote it (verified).
func wantInventoryChecked(t *testing.T, m *manifest.Manifest, o ReadOptions, rewrite func(*manifest.Manifest), alters map[string]func(*manifest.Inventory)) {
	t.Helper()
	if _, err := Verify(context.Background(), o); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for name, alter := range alters {
		altered := *m
		inv := cloneInventory(m.Inventory)
		alter(inv)
		altered.Inventory = inv
		rewrite(&altered)
		_, err := Verify(context.Background(), o)
		if r := reasonOf(t, err); r != ReasonIntegrityMismatch || !strings.Contains(err.Error(), "inventory") {
			t.Errorf("%s: verify: reason %s (%v), want %s about the inventory", name, r, err, ReasonIntegrityMismatch)
		}
	}
	old := *m
	old.Inventory = nil
	rewrite(&old)
	if _, err := Verify(context.Background(), o); err != nil {
		t.Errorf("Verify of a manifest without an inventory: %v", err)
	}
	rewrite(m)
}

func cloneInventory(in *manifest.Inventory) *manifest.Inventory {
	out := &manifest.Inventory{Tables: append([]manifest.TableRows{}, in.Tables...)}
	if in.Files != nil {
		f := *in.Files
		out.Files = &f
	}
	return out
}

func tableAlters() map[string]func(*manifest.Inventory) {
	return map[string]func(*manifest.Inventory){
		"a row more":    func(i *manifest.Inventory) { i.Tables[0].Rows++ },
		"a table fewer": func(i *manifest.Inventory) { i.Tables = i.Tables[1:] },
		"a table more":  func(i *manifest.Inventory) { i.Tables = append(i.Tables, manifest.TableRows{Name: "extra"}) },
		"renamed":       func(i *manifest.Inventory) { i.Tables[1].Name += "x" },
	}
}

func TestInventory_PostgresBackupRecordsVerifyRecounts(t *testing.T) {
	srv := pgserver.Start(t)
	srv.CreateDatabase(t, "inv", "")
	srv.MustQuery(t, "inv", "CREATE TABLE t (id int, v text); INSERT INTO t SELECT i, E'a\\nb' FROM generate_series(1, 1234) i; CREATE TABLE e (a int)")
	eng, err := postgres.New(engine.Options{Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password, Databases: []string{"inv"}, TLSMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	m, o, rewrite := inventoryArtifact(t, eng)
	want := []manifest.TableRows{{Schema: "public", Name: "e"}, {Schema: "public", Name: "t", Rows: 1234}}
	if !reflect.DeepEqual(m.Inventory.Tables, want) {
		t.Fatalf("inventory %+v, want %+v", m.Inventory.Tables, want)
	}
	wantInventoryChecked(t, m, o, rewrite, tableAlters())
}

func TestInventory_MySQLBackupRecordsVerifyRecounts(t *testing.T) {
	srv := mariadbserver.Start(t)
	srv.CreateDatabase(t, "inv")
	srv.MustQuery(t, "inv", "CREATE TABLE e (a INT); CREATE TABLE t (id INT, v TEXT); INSERT INTO t SELECT seq, 'a),(b' FROM seq_1_to_1234;")
	eng, err := mysql.New(engine.Options{Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password, Databases: []string{"inv"}, TLSMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	m, o, rewrite := inventoryArtifact(t, eng)
	want := []manifest.TableRows{{Database: "inv", Name: "e"}, {Database: "inv", Name: "t", Rows: 1234}}
	if !reflect.DeepEqual(m.Inventory.Tables, want) {
		t.Fatalf("inventory %+v, want %+v", m.Inventory.Tables, want)
	}
	wantInventoryChecked(t, m, o, rewrite, tableAlters())
}

// A files backup records the tree's digest; the tree a restore of it
// extracts has the same digest, as a drill checks it.
func TestInventory_FilesBackupRecordsVerifyRecountsRestoreMatches(t *testing.T) {
	dir := t.TempDir()
	for p, data := range map[string]string{"a.txt": "a\n", "sub/b.bin": "\x00\x01", "sub/deeper/empty": ""} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../a.txt", filepath.Join(dir, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	eng, err := files.New(engine.Options{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	m, o, rewrite := inventoryArtifact(t, eng)
	want, err := files.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Inventory.Files == nil || *m.Inventory.Files != want || want.Entries != 7 || want.Bytes != 4 {
		t.Fatalf("inventory %+v, TreeDigest %+v (want 7 entries, 4 bytes)", m.Inventory.Files, want)
	}
	wantInventoryChecked(t, m, o, rewrite, map[string]func(*manifest.Inventory){
		"tree digest": func(i *manifest.Inventory) { i.Files.TreeSHA256 = strings.Repeat("0", 64) },
		"entries":     func(i *manifest.Inventory) { i.Files.Entries-- },
		"bytes":       func(i *manifest.Inventory) { i.Files.Bytes++ },
		"tables":      func(i *manifest.Inventory) { i.Files = nil; i.Tables = []manifest.TableRows{{Name: "t"}} },
	})

	restored := t.TempDir()
	dst, err := files.New(engine.Options{Path: restored})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(context.Background(), o, dst); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, err := files.TreeDigest(restored); err != nil || got != *m.Inventory.Files {
		t.Fatalf("TreeDigest of the restore %+v, %v; the manifest says %+v", got, err, *m.Inventory.Files)
	}
}
