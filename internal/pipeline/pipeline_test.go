package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/store"
	fsstore "github.com/backstop-io/backstop/internal/store/fs"
	s3store "github.com/backstop-io/backstop/internal/store/s3"
	"github.com/backstop-io/backstop/internal/testutil/minio"
)

const artifactPath = "ns1/db/backup-1"

func newFS(t *testing.T) (*fsstore.Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := fsstore.New(fsstore.Config{Root: root, Prefix: "backups"})
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

type s3Config = s3store.Config

func newS3(t *testing.T, srv *minio.Server, mut func(*s3store.Config)) *s3store.Store {
	t.Helper()
	c := s3store.Config{
		Endpoint:        srv.Endpoint,
		Bucket:          srv.Bucket,
		Insecure:        true,
		ForcePathStyle:  true,
		Prefix:          "backups",
		AccessKeyID:     srv.AccessKey,
		SecretAccessKey: srv.SecretKey,
		PartSize:        5 << 20,
		MaxRetries:      1,
	}
	if mut != nil {
		mut(&c)
	}
	s, err := s3store.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type keypair struct {
	recipient string
	identity  *age.X25519Identity
}

func newKey(t *testing.T) keypair {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return keypair{recipient: id.Recipient().String(), identity: id}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func listKeys(t *testing.T, s store.Store) []string {
	t.Helper()
	objs, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

func TestBackupRestore_RoundTripFilesystem(t *testing.T) {
	key := newKey(t)
	data := testData(1 << 20)
	for _, alg := range []compress.Algorithm{compress.Zstd, compress.Gzip, compress.None} {
		for _, mode := range []crypto.Mode{crypto.ModeX25519, crypto.ModeScrypt, crypto.ModeNone} {
			t.Run(fmt.Sprintf("%s-%s", alg, mode), func(t *testing.T) {
				ctx := context.Background()
				st, root := newFS(t)
				enc := crypto.EncryptOptions{Mode: mode}
				dec := crypto.DecryptOptions{}
				switch mode {
				case crypto.ModeX25519:
					enc.Recipients = []string{key.recipient}
					dec.Identities = []age.Identity{key.identity}
				case crypto.ModeScrypt:
					enc.Passphrase = "correct horse battery staple"
					dec.Passphrase = enc.Passphrase
				}
				m, err := Backup(ctx, BackupOptions{
					Engine: newFake("fake", data), Store: st, ArtifactPath: artifactPath,
					Compression: alg, Encryption: enc, Version: "test",
				})
				if err != nil {
					t.Fatal(err)
				}
				wantName := "data.sql" + alg.Ext() + mode.Ext()
				if m.DataObject != wantName {
					t.Errorf("data object %q, want %q", m.DataObject, wantName)
				}
				if m.PlaintextSHA256 != sha(data) || m.PlaintextSize != int64(len(data)) {
					t.Errorf("manifest plaintext %d %s, want %d %s", m.PlaintextSize, m.PlaintextSHA256, len(data), sha(data))
				}
				stored, err := os.ReadFile(filepath.Join(root, "backups", artifactPath, wantName))
				if err != nil {
					t.Fatal(err)
				}
				if m.SHA256 != sha(stored) || m.StoredSize != int64(len(stored)) {
					t.Errorf("manifest sha256 does not match the stored object")
				}
				if mode == crypto.ModeX25519 && (len(m.Encryption.RecipientFingerprints) != 1 || m.Encryption.RecipientFingerprints[0] != crypto.Fingerprint(key.recipient)) {
					t.Errorf("fingerprints %v", m.Encryption.RecipientFingerprints)
				}
				mb, _ := os.ReadFile(filepath.Join(root, "backups", artifactPath, "manifest.json"))
				if bytes.Contains(mb, []byte(key.recipient)) || bytes.Contains(mb, []byte("horse")) {
					t.Errorf("manifest holds key material:\n%s", mb)
				}
				if mode != crypto.ModeNone && bytes.Contains(stored, data[:64]) {
					t.Errorf("stored object holds plaintext")
				}

				// The digest the caller expects, in either case of hex.
				eng := newFake("fake", nil)
				got, err := Restore(ctx, ReadOptions{Store: st, ArtifactPath: artifactPath, Decrypt: dec, ScratchDir: t.TempDir(), ExpectSHA256: strings.ToUpper(m.SHA256)}, eng)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(eng.restored, data) {
					t.Fatalf("restored %d bytes, want %d identical", len(eng.restored), len(data))
				}
				if got.SHA256 != m.SHA256 {
					t.Errorf("restore reported another manifest")
				}
			})
		}
	}
}

func TestBackupRestore_MinIOAndStockAge(t *testing.T) {
	srv := minio.Start(t)
	st := newS3(t, srv, nil)
	ctx := context.Background()
	key := newKey(t)
	data := testData(13 << 20) // three 5 MiB parts
	var progress bytes.Buffer
	m, err := Backup(ctx, BackupOptions{
		Engine: newFake("fake", data), Store: st, ArtifactPath: artifactPath,
		Compression: compress.Zstd, CompressionLevel: 3,
		Encryption: crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}},
		Progress:   &progress, ProgressInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "backup: ") {
		t.Errorf("no progress lines: %q", progress.String())
	}
	keys := srv.Keys(t, "")
	want := []string{"backups/" + artifactPath + "/data.sql.zst.age", "backups/" + artifactPath + "/manifest.json"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("keys %v, want %v", keys, want)
	}

	// No lock-in: the stock age CLI and a plain zstd decoder read the object.
	ageBin, _ := minio.AgeBinaries(t)
	dir := t.TempDir()
	idFile := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(idFile, []byte(key.identity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	obj, err := st.Get(ctx, artifactPath+"/data.sql.zst.age")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	cmd := exec.Command(ageBin, "--decrypt", "-i", idFile)
	cmd.Stdin = obj
	var zst, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &zst, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("age --decrypt: %v: %s", err, stderr.String())
	}
	zstBytes := bytes.Clone(zst.Bytes())
	zr, err := zstd.NewReader(&zst)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sha(plain) != m.PlaintextSHA256 || !bytes.Equal(plain, data) {
		t.Fatal("stock age + zstd did not give back the dump")
	}
	// The stock CLI reads the same stream (make test installs zstd).
	cmd = exec.Command("zstd", "-d", "-c")
	cmd.Stdin = bytes.NewReader(zstBytes)
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("zstd CLI: %v", err)
	}

	eng := newFake("fake", nil)
	if _, err := Restore(ctx, ReadOptions{Store: st, ArtifactPath: artifactPath, Decrypt: crypto.DecryptOptions{Identities: []age.Identity{key.identity}}, ScratchDir: t.TempDir()}, eng); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(eng.restored, data) {
		t.Fatal("restore through MinIO changed the data")
	}
	// A second backup to the same path is refused; the first stays intact.
	_, err = Backup(ctx, BackupOptions{
		Engine: newFake("fake", []byte("other")), Store: st, ArtifactPath: artifactPath,
		Compression: compress.Zstd, Encryption: crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}},
	})
	if r := reasonOf(t, err); r != ReasonAlreadyExists {
		t.Fatalf("reason %s", r)
	}
}

// A dump that dies halfway fails the run and leaves nothing in the store.
func TestBackup_DumpDiesHalfway(t *testing.T) {
	key := newKey(t)
	srv := minio.Start(t)
	stores := map[string]func(t *testing.T) store.Store{
		"filesystem": func(t *testing.T) store.Store { s, _ := newFS(t); return s },
		"minio":      func(t *testing.T) store.Store { return newS3(t, srv, nil) },
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			st := mk(t)
			eng := newFake("fake", testData(16<<20))
			eng.failAfter = 12 << 20 // after two 5 MiB parts are uploaded
			_, err := Backup(context.Background(), BackupOptions{
				Engine: eng, Store: st, ArtifactPath: artifactPath,
				Compression: compress.None,
				Encryption:  crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}},
			})
			if r := reasonOf(t, err); r != ReasonDumpFailed {
				t.Fatalf("reason %s (%v), want DumpFailed", r, err)
			}
			if !strings.Contains(err.Error(), "connection lost") {
				t.Errorf("error %q lacks the engine's message", err)
			}
			if keys := listKeys(t, st); len(keys) != 0 {
				t.Fatalf("store holds %v after a failed dump", keys)
			}
			if s3, ok := st.(*s3store.Store); ok {
				if n, err := s3.IncompleteUploads(context.Background(), ""); err != nil || n != 0 {
					t.Fatalf("incomplete uploads: %d, %v", n, err)
				}
			}
		})
	}
}

// S3 takes at most 10,000 parts in one upload, so the part size bounds an
// artifact. Past it the backup fails with a message that says which limit
// and how to raise it, and leaves nothing in the bucket. The store's part
// limit is lowered to reach it with 16 MiB of data.
func TestBackup_S3PartLimit(t *testing.T) {
	key := newKey(t)
	srv := minio.Start(t)
	st := newS3(t, srv, func(c *s3store.Config) { c.MaxParts = 2 }) // 2 parts of 5 MiB
	_, err := Backup(context.Background(), BackupOptions{
		Engine: newFake("fake", testData(16<<20)), Store: st, ArtifactPath: artifactPath,
		Compression: compress.None,
		Encryption:  crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}},
	})
	if r := reasonOf(t, err); r != ReasonStoreError {
		t.Fatalf("reason %s (%v), want StoreError", r, err)
	}
	for _, want := range []string{"larger than 2 parts of 5 MiB (10 MiB)", "spec.s3.partSizeMiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Logf("error: %v", err)
	if keys := listKeys(t, st); len(keys) != 0 {
		t.Fatalf("store holds %v after a backup over the part limit", keys)
	}
	if n := srv.IncompleteUploads(t, ""); n != 0 {
		t.Fatalf("incomplete uploads: %d", n)
	}

	// Data that fits in the parts (two of 5 MiB) goes through.
	fits := newS3(t, srv, func(c *s3store.Config) { c.MaxParts = 2 })
	eng := newFake("fake", testData(9<<20))
	if _, err := Backup(context.Background(), BackupOptions{
		Engine: eng, Store: fits, ArtifactPath: artifactPath, Compression: compress.None,
		Encryption: crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}},
	}); err != nil {
		t.Fatalf("a backup within the part limit: %v", err)
	}
}

// backupTo makes an artifact and returns the manifest.
func backupTo(t *testing.T, st store.Store, eng *fakeEngine, enc crypto.EncryptOptions) *manifest.Manifest {
	t.Helper()
	m, err := Backup(context.Background(), BackupOptions{
		Engine: eng, Store: st, ArtifactPath: artifactPath, Compression: compress.Zstd, Encryption: enc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rewriteManifest changes the stored manifest with f.
func rewriteManifest(t *testing.T, root string, f func(*manifest.Manifest)) {
	t.Helper()
	p := filepath.Join(root, "backups", artifactPath, manifest.FileName)
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Read(fh)
	fh.Close()
	if err != nil {
		t.Fatal(err)
	}
	f(m)
	b, _ := m.Marshal()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRestore_FailuresLeaveTargetUntouched(t *testing.T) {
	key, other := newKey(t), newKey(t)
	data := testData(2 << 20)
	x25519 := crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}}
	rightID := crypto.DecryptOptions{Identities: []age.Identity{key.identity}}

	mutateObject := func(f func([]byte) []byte) func(t *testing.T, root string, m *manifest.Manifest) {
		return func(t *testing.T, root string, m *manifest.Manifest) {
			p := filepath.Join(root, "backups", artifactPath, m.DataObject)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f(b), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	flip := func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b }

	cases := []struct {
		name       string
		enc        crypto.EncryptOptions
		dec        crypto.DecryptOptions
		engineName string
		mutate     func(t *testing.T, root string, m *manifest.Manifest)
		expect     string // ReadOptions.ExpectSHA256
		want       string
	}{
		{name: "wrong identity", enc: x25519, dec: crypto.DecryptOptions{Identities: []age.Identity{other.identity}}, want: ReasonDecryptionFailed},
		{name: "wrong passphrase", enc: crypto.EncryptOptions{Mode: crypto.ModeScrypt, Passphrase: "right"}, dec: crypto.DecryptOptions{Passphrase: "wrong"}, want: ReasonDecryptionFailed},
		{name: "flipped bit", enc: x25519, dec: rightID, mutate: mutateObject(flip), want: ReasonIntegrityMismatch},
		{name: "truncated object", enc: x25519, dec: rightID, mutate: mutateObject(func(b []byte) []byte { return b[:len(b)-1000] }), want: ReasonIntegrityMismatch},
		{name: "flipped bit with a forged manifest (age authentication)", enc: x25519, dec: rightID, want: ReasonIntegrityMismatch,
			mutate: func(t *testing.T, root string, m *manifest.Manifest) {
				mutateObject(flip)(t, root, m)
				b, _ := os.ReadFile(filepath.Join(root, "backups", artifactPath, m.DataObject))
				rewriteManifest(t, root, func(m *manifest.Manifest) { m.SHA256 = sha(b) })
			}},
		{name: "plaintext checksum mismatch", enc: x25519, dec: rightID, want: ReasonIntegrityMismatch,
			mutate: func(t *testing.T, root string, m *manifest.Manifest) {
				rewriteManifest(t, root, func(m *manifest.Manifest) { m.PlaintextSHA256 = strings.Repeat("0", 64) })
			}},
		{name: "missing manifest", enc: x25519, dec: rightID, want: ReasonManifestNotFound,
			mutate: func(t *testing.T, root string, m *manifest.Manifest) {
				os.Remove(filepath.Join(root, "backups", artifactPath, manifest.FileName))
			}},
		{name: "missing data object", enc: x25519, dec: rightID, want: ReasonIntegrityMismatch,
			mutate: func(t *testing.T, root string, m *manifest.Manifest) {
				os.Remove(filepath.Join(root, "backups", artifactPath, m.DataObject))
			}},
		{name: "artifact of another engine", enc: x25519, dec: rightID, engineName: "mysql", want: ReasonEngineMismatch},
		{name: "no identity given", enc: x25519, want: ReasonInvalidInput},
		// Another artifact written at the path since it was chosen.
		{name: "not the artifact expected", enc: x25519, dec: rightID, expect: strings.Repeat("ab", 32), want: ReasonIntegrityMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, root := newFS(t)
			m := backupTo(t, st, newFake("fake", data), tc.enc)
			if tc.mutate != nil {
				tc.mutate(t, root, m)
			}
			name := tc.engineName
			if name == "" {
				name = "fake"
			}
			eng := newFake(name, nil)
			scratch := t.TempDir()
			_, err := Restore(context.Background(), ReadOptions{Store: st, ArtifactPath: artifactPath, Decrypt: tc.dec, ScratchDir: scratch, ExpectSHA256: tc.expect}, eng)
			if r := reasonOf(t, err); r != tc.want {
				t.Fatalf("reason %s (%v), want %s", r, err, tc.want)
			}
			if eng.touched() {
				t.Fatal("the target was touched before the artifact was verified")
			}
			if left, _ := os.ReadDir(scratch); len(left) != 0 {
				t.Fatalf("scratch files left behind: %v", left)
			}
		})
	}
}

func TestStoreFailures_MinIO(t *testing.T) {
	srv := minio.Start(t)
	key := newKey(t)
	enc := crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}}
	dec := crypto.DecryptOptions{Identities: []age.Identity{key.identity}}
	backupTo(t, newS3(t, srv, nil), newFake("fake", testData(1<<20)), enc)

	closed := func() string {
		l, err := netListen()
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}()
	cases := []struct {
		name string
		mut  func(*s3store.Config)
		want string
	}{
		{"closed port", func(c *s3store.Config) { c.Endpoint = closed }, ReasonStoreUnreachable},
		{"wrong secret key", func(c *s3store.Config) { c.SecretAccessKey = "not-the-secret-key-at-all" }, ReasonAuthenticationFailed},
		{"unknown access key", func(c *s3store.Config) { c.AccessKeyID = "nobody" }, ReasonAuthenticationFailed},
		{"missing bucket", func(c *s3store.Config) { c.Bucket = "no-such-bucket" }, ReasonBucketNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newS3(t, srv, tc.mut)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			eng := newFake("fake", testData(1<<20))
			_, err := Backup(ctx, BackupOptions{Engine: eng, Store: st, ArtifactPath: "ns1/db/backup-2", Compression: compress.Zstd, Encryption: enc})
			if r := reasonOf(t, err); r != tc.want {
				t.Fatalf("backup: reason %s (%v), want %s", r, err, tc.want)
			}
			if eng.dumpCalled {
				t.Error("the dump ran although the store was unusable")
			}
			if strings.Contains(err.Error(), srv.SecretKey) {
				t.Error("error holds the secret key")
			}

			eng = newFake("fake", nil)
			_, err = Restore(ctx, ReadOptions{Store: st, ArtifactPath: artifactPath, Decrypt: dec, ScratchDir: t.TempDir()}, eng)
			if r := reasonOf(t, err); r != tc.want {
				t.Fatalf("restore: reason %s (%v), want %s", r, err, tc.want)
			}
			if eng.touched() {
				t.Fatal("target touched")
			}
			if err := st.Probe(ctx); store.ReasonOf(err) != tc.want {
				t.Fatalf("probe: %v", err)
			}
		})
	}
	if err := newS3(t, srv, nil).Probe(context.Background()); err != nil {
		t.Fatalf("probe: %v", err)
	}
}

// An upload that fails midway (the server goes away) fails the run.
func TestBackup_UploadFails(t *testing.T) {
	st, root := newFS(t)
	key := newKey(t)
	// Make the artifact directory unwritable after the preflight: a file
	// where the directory should be.
	if err := os.MkdirAll(filepath.Join(root, "backups", "ns1", "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "backups", artifactPath), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Backup(context.Background(), BackupOptions{
		Engine: newFake("fake", testData(1<<20)), Store: st, ArtifactPath: artifactPath,
		Compression: compress.Zstd, Encryption: crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}},
	})
	if err == nil {
		t.Fatal("backup succeeded into a file")
	}
	if r := reasonOf(t, err); r == ReasonDumpFailed {
		t.Fatalf("a store failure reported as %s: %v", r, err)
	}
}

func TestVerifyLocalFile(t *testing.T) {
	st, root := newFS(t)
	key := newKey(t)
	data := testData(1 << 20)
	m := backupTo(t, st, newFake("fake", data), crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}})
	file := filepath.Join(root, "backups", artifactPath, m.DataObject)
	dec := crypto.DecryptOptions{Identities: []age.Identity{key.identity}}

	for _, withManifest := range []bool{false, true} {
		o := ReadOptions{File: file, Decrypt: dec}
		if withManifest {
			o.ManifestFile = filepath.Join(root, "backups", artifactPath, manifest.FileName)
		}
		a, err := Fetch(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if a.Manifest.PlaintextSHA256 != sha(data) {
			t.Fatalf("plaintext sha %s", a.Manifest.PlaintextSHA256)
		}
		r, _ := a.Open()
		got, _ := io.ReadAll(r)
		r.Close()
		a.Close()
		if !bytes.Equal(got, data) {
			t.Fatal("plaintext differs")
		}
		if _, err := os.Stat(file); err != nil {
			t.Fatal("a local file was removed by Close")
		}
	}
	b, _ := os.ReadFile(file)
	b[len(b)-100] ^= 0x80
	bad := filepath.Join(t.TempDir(), "bad.age")
	os.WriteFile(bad, b, 0o600)
	_, err := Fetch(context.Background(), ReadOptions{File: bad, Decrypt: dec})
	if r := reasonOf(t, err); r != ReasonIntegrityMismatch {
		t.Fatalf("reason %s (%v)", r, err)
	}
	// Against its manifest, the mismatch names the file that was given.
	_, err = Fetch(context.Background(), ReadOptions{File: bad, ManifestFile: filepath.Join(root, "backups", artifactPath, manifest.FileName), Decrypt: dec})
	if r := reasonOf(t, err); r != ReasonIntegrityMismatch || !strings.Contains(err.Error(), bad+" has SHA-256") {
		t.Fatalf("reason %s (%v), want %s naming %s", r, err, ReasonIntegrityMismatch, bad)
	}
}

// A content digest changed in the manifest is found by verify; a restore,
// which does not use the digest, restores the data the plaintext's SHA-256
// vouches for.
func TestContentDigest_VerifyRecountsItRestoreDoesNot(t *testing.T) {
	key := newKey(t)
	data := testData(2 << 20)
	st, root := newFS(t)
	backupTo(t, st, newFake("fake", data), crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}})
	rewriteManifest(t, root, func(m *manifest.Manifest) { m.ContentSHA256 = strings.Repeat("0", 64) })
	o := ReadOptions{Store: st, ArtifactPath: artifactPath, Decrypt: crypto.DecryptOptions{Identities: []age.Identity{key.identity}}, ScratchDir: t.TempDir()}

	_, err := Verify(context.Background(), o)
	if r := reasonOf(t, err); r != ReasonIntegrityMismatch || !strings.Contains(err.Error(), "content digest") {
		t.Fatalf("verify: %s (%v), want %s about the content digest", r, err, ReasonIntegrityMismatch)
	}
	eng := newFake("fake", nil)
	if _, err := Restore(context.Background(), o, eng); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !bytes.Equal(eng.restored, data) {
		t.Fatalf("restored %d bytes, want the %d backed up", len(eng.restored), len(data))
	}
}

// stallingStore serves manifests, and data objects that never arrive: each
// read waits until the restore gives up on it.
type stallingStore struct{ store.Store }

func (s stallingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasSuffix(key, "manifest.json") {
		return s.Store.Get(ctx, key)
	}
	return io.NopCloser(readerFunc(func([]byte) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// The target is checked while the artifact downloads: a target that fails
// its check ends the restore at once, with TargetUnreachable, instead of
// after a download it could not use. A reachable one is written to only
// after the artifact is verified.
func TestRestore_TargetCheckedWhileTheArtifactDownloads(t *testing.T) {
	key := newKey(t)
	st, _ := newFS(t)
	backupTo(t, st, newFake("fake", testData(1<<20)), crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}})
	ro := ReadOptions{Store: stallingStore{st}, ArtifactPath: artifactPath, ScratchDir: t.TempDir(),
		Decrypt: crypto.DecryptOptions{Identities: []age.Identity{key.identity}}}

	eng := newFake("fake", nil)
	eng.checkErr = engine.Errorf(engine.ReasonTargetUnreachable, "dial tcp 127.0.0.1:5432: connect: connection refused")
	done := make(chan error, 1)
	go func() { _, err := Restore(context.Background(), ro, eng); done <- err }()
	select {
	case err := <-done:
		if reasonOf(t, err) != ReasonTargetUnreachable || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("restore into an unreachable target: %v, want %s", err, ReasonTargetUnreachable)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the restore went on downloading for a target that failed its check")
	}
	if eng.touched() {
		t.Fatal("the target was written to")
	}
	if left, _ := os.ReadDir(ro.ScratchDir); len(left) != 0 {
		t.Fatalf("the stopped download left %v", left)
	}

	// A download that fails on its own is reported at once, even while the
	// target's check still hangs.
	eng = newFake("fake", nil)
	eng.checkHangs = true
	missing := ro
	missing.Store, missing.ArtifactPath = st, "ns1/db/no-such-backup"
	go func() { _, err := Restore(context.Background(), missing, eng); done <- err }()
	select {
	case err := <-done:
		if reasonOf(t, err) != ReasonManifestNotFound {
			t.Fatalf("restore of a missing backup: %v, want %s", err, ReasonManifestNotFound)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the failed download waited for the target's check")
	}

	// A drill verifies the whole artifact whatever its target's check says,
	// and learns that it did.
	eng = newFake("fake", nil)
	eng.checkErr = engine.Errorf(engine.ReasonTargetUnreachable, "the throwaway server did not start")
	whole := ro
	whole.Store, whole.VerifyWhateverTheTarget = st, true
	verified := false
	whole.Verified = func() { verified = true }
	if _, err := Restore(context.Background(), whole, eng); reasonOf(t, err) != ReasonTargetUnreachable || !verified || eng.touched() {
		t.Fatalf("restore verifying whatever the target: %v, verified %v, target written to %v", err, verified, eng.touched())
	}
}

// A load that fails names the releases when the server restored into is
// older than the backup's (or its psql is older than the backup's pg_dump),
// and says nothing more when the releases do not explain it.
func TestRestore_FailedLoadNamesAnOlderRelease(t *testing.T) {
	key := newKey(t)
	st, _ := newFS(t)
	dump := []byte("--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n--\n-- PostgreSQL database dump complete\n--\n\n")
	src := newFake("postgres", dump)
	src.version = "PostgreSQL 15.20 (Debian 15.20-0+deb12u1); pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
	backupTo(t, st, src, crypto.EncryptOptions{Mode: crypto.ModeX25519, Recipients: []string{key.recipient}})
	ro := ReadOptions{Store: st, ArtifactPath: artifactPath, ScratchDir: t.TempDir(),
		Decrypt: crypto.DecryptOptions{Identities: []age.Identity{key.identity}}}
	refused := engine.Errorf(engine.ReasonRestoreFailed, `psql: ERROR:  unrecognized parameter "no_such_option"`)

	for _, c := range []struct {
		name, target string
		err          error
		want         string
	}{
		{"older server", "PostgreSQL 15.18; pg_dump (PostgreSQL) 15.20", refused,
			"the backup was made with PostgreSQL 15.20 and the server restored into is an older 15.18, which may not load all a newer release dumps: restore into PostgreSQL 15.20 or newer"},
		{"older psql", "PostgreSQL 15.20; pg_dump (PostgreSQL) 15.13", refused,
			"the backup was made with PostgreSQL 15.20 and the restore's psql is an older 15.13"},
		{"same release", "PostgreSQL 15.20; pg_dump (PostgreSQL) 15.20", refused, ""},
		{"newer release", "PostgreSQL 16.4; pg_dump (PostgreSQL) 16.4", refused, ""},
		// A busy target is not explained by its release.
		{"busy", "PostgreSQL 15.18; pg_dump (PostgreSQL) 15.18", engine.Errorf(engine.ReasonTargetBusy, "lock timeout"), ""},
	} {
		eng := newFake("postgres", nil)
		eng.version, eng.restoreErr = c.target, c.err
		_, err := Restore(context.Background(), ro, eng)
		if err == nil || !strings.Contains(err.Error(), c.err.Error()) {
			t.Fatalf("%s: restore = %v, want the engine's error %q", c.name, err, c.err)
		}
		if engine.ReasonOf(err) != engine.ReasonOf(c.err) {
			t.Errorf("%s: reason %q, want the engine's %q", c.name, engine.ReasonOf(err), engine.ReasonOf(c.err))
		}
		if c.want == "" && strings.Contains(err.Error(), "the backup was made with") {
			t.Errorf("%s: %v names releases that do not explain it", c.name, err)
		}
		if c.want != "" && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant it to say %q", c.name, err, c.want)
		}
	}
}
