package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/pipeline"
	"github.com/backstop-io/backstop/internal/testutil/minio"
)

// testEngine is the engine the agent builds in these tests; current is the
// instance the next engine.New returns.
type testEngine struct {
	name      string
	data      []byte
	failAfter int
	checkErr  error
	block     bool
	opts      engine.Options

	mu            sync.Mutex
	restoreCalled bool
	restored      []byte
}

var (
	currentMu sync.Mutex
	current   = map[string]*testEngine{}
)

func init() {
	for _, name := range []string{"testdb", "otherdb"} {
		engine.Register(name, func(o engine.Options) (engine.Engine, error) {
			currentMu.Lock()
			defer currentMu.Unlock()
			e := current[name]
			if e == nil {
				return nil, fmt.Errorf("no test engine %s set", name)
			}
			e.opts = o
			return e, nil
		})
	}
	crypto.ScryptWorkFactor = 10
}

func useEngine(t *testing.T, name string, data []byte) *testEngine {
	e := &testEngine{name: name, data: data, failAfter: -1}
	currentMu.Lock()
	current[name] = e
	currentMu.Unlock()
	t.Cleanup(func() {
		currentMu.Lock()
		delete(current, name)
		currentMu.Unlock()
	})
	return e
}

func (e *testEngine) Name() string { return e.name }
func (e *testEngine) Check(ctx context.Context) error {
	return e.checkErr
}
func (e *testEngine) Version(ctx context.Context) (string, error) { return "test 1", nil }
func (e *testEngine) Dump(ctx context.Context, w io.Writer) error {
	if e.checkErr != nil {
		return e.checkErr
	}
	if e.block {
		w.Write(e.data[:len(e.data)/2])
		<-ctx.Done()
		return ctx.Err()
	}
	d := e.data
	if e.failAfter >= 0 {
		d = d[:e.failAfter]
	}
	if _, err := w.Write(d); err != nil {
		return err
	}
	if e.failAfter >= 0 {
		return engine.Errorf(engine.ReasonDumpFailed, "dump tool exited with status 1")
	}
	return nil
}
func (e *testEngine) Restore(ctx context.Context, r io.Reader) error {
	e.mu.Lock()
	e.restoreCalled = true
	e.mu.Unlock()
	b, err := io.ReadAll(r)
	e.mu.Lock()
	e.restored = b
	e.mu.Unlock()
	return err
}
func (e *testEngine) touched() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.restoreCalled
}

func randomData(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		if i%3 == 0 {
			b[i] = byte(rng.Uint32())
		} else {
			b[i] = 'a' + byte(i%26)
		}
	}
	return b
}

type runResult struct {
	code           int
	stdout, stderr string
	result         Result
}

func runAgent(t *testing.T, env map[string]string, args ...string) runResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), "backstop agent", args, &out, &errb, func(k string) string { return env[k] })
	rr := runResult{code: code, stdout: out.String(), stderr: errb.String()}
	line := strings.TrimSpace(rr.stdout)
	if line != "" && code != 2 {
		if strings.Count(line, "\n") != 0 {
			t.Fatalf("stdout is not one line: %q", line)
		}
		if err := json.Unmarshal([]byte(line), &rr.result); err != nil {
			t.Fatalf("stdout is not a JSON result: %q: %v", line, err)
		}
	}
	return rr
}

func runUserCmd(t *testing.T, env map[string]string, args ...string) runResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := runUser(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return runResult{code: code, stdout: out.String(), stderr: errb.String()}
}

type fixture struct {
	srv       *minio.Server
	env       map[string]string
	dir       string
	idFile    string
	identity  *age.X25519Identity
	recipient string
	termLog   string
	secrets   []string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{srv: minio.Start(t), dir: t.TempDir()}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f.identity, f.recipient = id, id.Recipient().String()
	f.idFile = filepath.Join(f.dir, "identity.txt")
	os.WriteFile(f.idFile, []byte("# created: test\n"+id.String()+"\n"), 0o600)
	f.env = map[string]string{
		EnvAccessKeyID:     f.srv.AccessKey,
		EnvSecretAccessKey: f.srv.SecretKey,
		EnvDBUser:          "backup_user",
		EnvDBPassword:      "db-Pa55word-xyz",
	}
	f.termLog = filepath.Join(f.dir, "termination-log")
	f.secrets = []string{f.srv.SecretKey, id.String(), "db-Pa55word-xyz"}
	return f
}

func (f *fixture) storeArgs(artifact string) []string {
	return []string{"--store-type", "s3", "--s3-endpoint", "http://" + f.srv.Endpoint, "--s3-bucket", f.srv.Bucket,
		"--s3-force-path-style", "--s3-region", "us-east-1", "--prefix", "cluster-a", "--artifact-path", artifact}
}

func (f *fixture) assertNoSecrets(t *testing.T, rr runResult) {
	t.Helper()
	logb, _ := os.ReadFile(f.termLog)
	for _, s := range f.secrets {
		for where, text := range map[string]string{"stdout": rr.stdout, "stderr": rr.stderr, "termination log": string(logb)} {
			if strings.Contains(text, s) {
				t.Errorf("%s holds a secret", where)
			}
		}
	}
}

func TestAgent_BackupVerifyRestoreDecrypt(t *testing.T) {
	f := newFixture(t)
	data := randomData(3 << 20)
	eng := useEngine(t, "testdb", data)
	const artifact = "team-a/orders/orders-20260101-0000"

	rr := runAgent(t, f.env, append([]string{"backup", "--engine", "testdb", "--host", "db.team-a.svc", "--port", "5432",
		"--database", "orders", "--database", "users", "--tls-mode", "require",
		"--encryption", "x25519", "--recipient", f.recipient, "--compression", "zstd", "--compression-level", "5",
		"--progress-interval", "1ms", "--termination-log", f.termLog}, f.storeArgs(artifact)...)...)
	if rr.code != 0 {
		t.Fatalf("backup exit %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}
	res := rr.result
	if res.Phase != PhaseSucceeded || res.Engine != "testdb" || res.ArtifactPath != artifact || res.DataObject != "data.dump.zst.age" ||
		res.PlaintextBytes != int64(len(data)) || res.StoredBytes == 0 || len(res.SHA256) != 64 || len(res.PlaintextSha256()) != 64 ||
		res.StartTime == "" || res.CompletionTime == "" {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(rr.stderr, "backup: ") {
		t.Errorf("no progress on stderr: %q", rr.stderr)
	}
	logb, err := os.ReadFile(f.termLog)
	if err != nil || strings.TrimSpace(string(logb)) != strings.TrimSpace(rr.stdout) {
		t.Errorf("termination log %q, stdout %q (%v)", logb, rr.stdout, err)
	}
	if o := eng.opts; o.Host != "db.team-a.svc" || o.Port != 5432 || strings.Join(o.Databases, ",") != "orders,users" ||
		o.User != "backup_user" || o.Password != "db-Pa55word-xyz" || o.TLSMode != "require" {
		t.Errorf("engine options %+v", o)
	}
	f.assertNoSecrets(t, rr)
	keys := f.srv.Keys(t, "cluster-a/")
	if strings.Join(keys, " ") != "cluster-a/"+artifact+"/data.dump.zst.age cluster-a/"+artifact+"/manifest.json" {
		t.Fatalf("keys %v", keys)
	}

	// verify needs no engine.
	rr = runAgent(t, f.env, append([]string{"verify", "--identity-file", f.idFile, "--progress-interval", "0", "--termination-log", f.termLog}, f.storeArgs(artifact)...)...)
	if rr.code != 0 || rr.result.Phase != PhaseSucceeded || rr.result.SHA256 != res.SHA256 || rr.result.Engine != "testdb" {
		t.Fatalf("verify exit %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}

	target := useEngine(t, "testdb", nil)
	scratch := t.TempDir()
	rr = runAgent(t, f.env, append([]string{"restore", "--engine", "testdb", "--identity-file", f.idFile, "--scratch-dir", scratch, "--termination-log", f.termLog}, f.storeArgs(artifact)...)...)
	if rr.code != 0 || rr.result.Phase != PhaseSucceeded {
		t.Fatalf("restore exit %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}
	if !bytes.Equal(target.restored, data) {
		t.Fatal("restored data differs")
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Fatalf("scratch left: %v", left)
	}
	f.assertNoSecrets(t, rr)

	// The user commands, through an env-provided identity.
	userEnv := map[string]string{EnvAccessKeyID: f.srv.AccessKey, EnvSecretAccessKey: f.srv.SecretKey, EnvAgeIdentity: f.identity.String()}
	ur := runUserCmd(t, userEnv, append([]string{"verify", "--progress-interval", "0"}, f.storeArgs(artifact)...)...)
	if ur.code != 0 || !strings.Contains(ur.stdout, "OK ") || !strings.Contains(ur.stdout, res.PlaintextSha256()) {
		t.Fatalf("user verify %d: %s %s", ur.code, ur.stdout, ur.stderr)
	}
	out := filepath.Join(t.TempDir(), "dump.sql")
	ur = runUserCmd(t, userEnv, append([]string{"decrypt", "--output", out, "--progress-interval", "0"}, f.storeArgs(artifact)...)...)
	if ur.code != 0 {
		t.Fatalf("decrypt %d: %s", ur.code, ur.stderr)
	}
	got, _ := os.ReadFile(out)
	fi, _ := os.Stat(out)
	if !bytes.Equal(got, data) || fi.Mode().Perm() != 0o600 {
		t.Fatalf("decrypt --output: %d bytes, mode %v", len(got), fi.Mode())
	}
	ur = runUserCmd(t, userEnv, append([]string{"decrypt", "--output", out, "--progress-interval", "0"}, f.storeArgs(artifact)...)...)
	if ur.code == 0 {
		t.Fatal("decrypt overwrote an existing file")
	}
	ur = runUserCmd(t, userEnv, append([]string{"decrypt", "--progress-interval", "0"}, f.storeArgs(artifact)...)...)
	if ur.code != 0 || ur.stdout != string(data) {
		t.Fatalf("decrypt to stdout: %d, %d bytes", ur.code, len(ur.stdout))
	}

	// manifest needs the store, not the identity.
	ur = runUserCmd(t, map[string]string{EnvAccessKeyID: f.srv.AccessKey, EnvSecretAccessKey: f.srv.SecretKey}, append([]string{"manifest"}, f.storeArgs(artifact)...)...)
	var m struct {
		Engine     string `json:"engine"`
		SHA256     string `json:"sha256"`
		StoredSize int64  `json:"storedSize"`
	}
	if ur.code != 0 || json.Unmarshal([]byte(ur.stdout), &m) != nil || m.Engine != "testdb" || m.SHA256 != res.SHA256 || m.StoredSize != res.StoredBytes {
		t.Fatalf("manifest %d: %s %s", ur.code, ur.stdout, ur.stderr)
	}
	ur = runUserCmd(t, map[string]string{EnvAccessKeyID: f.srv.AccessKey, EnvSecretAccessKey: f.srv.SecretKey}, append([]string{"manifest"}, f.storeArgs("team-a/orders/none")...)...)
	if ur.code != 1 || !strings.HasPrefix(ur.stderr, "backstop manifest: ") {
		t.Fatalf("manifest of no artifact %d: %s %s", ur.code, ur.stdout, ur.stderr)
	}
}

// PlaintextSha256 keeps the test lines short.
func (r Result) PlaintextSha256() string { return r.PlaintextSHA256 }

func TestAgent_Failures(t *testing.T) {
	f := newFixture(t)
	data := randomData(1 << 20)
	useEngine(t, "testdb", data)
	const artifact = "team-a/orders/good"
	rr := runAgent(t, f.env, append([]string{"backup", "--engine", "testdb", "--encryption", "x25519", "--recipient", f.recipient, "--progress-interval", "0", "--termination-log", ""}, f.storeArgs(artifact)...)...)
	if rr.code != 0 {
		t.Fatalf("backup: %s", rr.stderr)
	}
	other, _ := age.GenerateX25519Identity()
	wrongID := filepath.Join(f.dir, "wrong.txt")
	os.WriteFile(wrongID, []byte(other.String()+"\n"), 0o600)
	f.secrets = append(f.secrets, other.String(), "wrong-secret-key-000")

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := l.Addr().String()
	l.Close()

	withStore := func(artifact string, repl map[string]string) []string {
		args := f.storeArgs(artifact)
		for i := 0; i < len(args); i++ {
			if v, ok := repl[args[i]]; ok {
				args[i+1] = v
			}
		}
		return args
	}
	badCreds := map[string]string{}
	for k, v := range f.env {
		badCreds[k] = v
	}
	badCreds[EnvSecretAccessKey] = "wrong-secret-key-000"

	cases := []struct {
		name   string
		env    map[string]string
		args   []string
		engine func(t *testing.T) *testEngine
		want   string
	}{
		{name: "restore: wrong identity", args: append([]string{"restore", "--engine", "testdb", "--identity-file", wrongID}, f.storeArgs(artifact)...), want: ReasonDecryptionFailed},
		{name: "restore: missing manifest", args: append([]string{"restore", "--engine", "testdb", "--identity-file", f.idFile}, f.storeArgs("team-a/orders/none")...), want: ReasonManifestNotFound},
		{name: "restore: another engine's artifact", args: append([]string{"restore", "--engine", "otherdb", "--identity-file", f.idFile}, f.storeArgs(artifact)...),
			engine: func(t *testing.T) *testEngine { return useEngine(t, "otherdb", nil) }, want: ReasonEngineMismatch},
		{name: "restore: store unreachable", args: append([]string{"restore", "--engine", "testdb", "--identity-file", f.idFile}, withStore(artifact, map[string]string{"--s3-endpoint": "http://" + closedAddr})...), want: ReasonStoreUnreachable},
		{name: "restore: wrong credentials", env: badCreds, args: append([]string{"restore", "--engine", "testdb", "--identity-file", f.idFile}, f.storeArgs(artifact)...), want: ReasonAuthenticationFailed},
		{name: "restore: missing bucket", args: append([]string{"restore", "--engine", "testdb", "--identity-file", f.idFile}, withStore(artifact, map[string]string{"--s3-bucket": "nope"})...), want: ReasonBucketNotFound},
		{name: "restore: lock timeout under a second", args: append([]string{"restore", "--engine", "testdb", "--identity-file", f.idFile, "--lock-timeout", "0s"}, f.storeArgs(artifact)...), want: ReasonInvalidInput},
		{name: "backup: wrong credentials", env: badCreds, args: append([]string{"backup", "--engine", "testdb", "--encryption", "none"}, f.storeArgs("team-a/orders/b2")...), want: ReasonAuthenticationFailed},
		{name: "backup: store unreachable", args: append([]string{"backup", "--engine", "testdb", "--encryption", "none"}, withStore("team-a/orders/b2", map[string]string{"--s3-endpoint": closedAddr, "--s3-bucket": f.srv.Bucket})...), want: ReasonStoreUnreachable},
		{name: "backup: no encryption mode", args: append([]string{"backup", "--engine", "testdb"}, f.storeArgs("team-a/orders/b2")...), want: ReasonInvalidInput},
		{name: "backup: completed backup exists", args: append([]string{"backup", "--engine", "testdb", "--encryption", "none"}, f.storeArgs(artifact)...), want: ReasonAlreadyExists},
		{name: "backup: dump dies halfway", args: append([]string{"backup", "--engine", "testdb", "--encryption", "x25519", "--recipient", f.recipient}, f.storeArgs("team-a/orders/b3")...),
			engine: func(t *testing.T) *testEngine {
				e := useEngine(t, "testdb", randomData(12<<20))
				e.failAfter = 9 << 20
				return e
			}, want: ReasonDumpFailed},
		{name: "backup: target refuses the password (message holds it)", args: append([]string{"backup", "--engine", "testdb", "--encryption", "none"}, f.storeArgs("team-a/orders/b4")...),
			engine: func(t *testing.T) *testEngine {
				e := useEngine(t, "testdb", data)
				e.checkErr = engine.Errorf(engine.ReasonTargetAuthenticationFailed, "password authentication failed (password db-Pa55word-xyz)")
				return e
			}, want: ReasonTargetAuthenticationFailed},
		{name: "backup: deadline", args: append([]string{"backup", "--engine", "testdb", "--encryption", "none", "--timeout", "300ms"}, f.storeArgs("team-a/orders/b5")...),
			engine: func(t *testing.T) *testEngine {
				e := useEngine(t, "testdb", data)
				e.block = true
				return e
			}, want: ReasonDeadlineExceeded},
		{name: "restore: target unreachable", args: append([]string{"restore", "--engine", "testdb", "--identity-file", f.idFile}, f.storeArgs(artifact)...),
			engine: func(t *testing.T) *testEngine {
				e := useEngine(t, "testdb", nil)
				e.checkErr = engine.Errorf(engine.ReasonTargetUnreachable, "dial tcp: connection refused")
				return e
			}, want: ReasonTargetUnreachable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eng := useEngine(t, "testdb", data)
			if tc.engine != nil {
				eng = tc.engine(t)
			}
			env := tc.env
			if env == nil {
				env = f.env
			}
			args := append(tc.args, "--progress-interval", "0", "--termination-log", f.termLog)
			os.Remove(f.termLog)
			rr := runAgent(t, env, args...)
			t.Logf("stderr: %s", rr.stderr)
			if rr.code != 1 {
				t.Fatalf("exit %d, want 1: %s %s", rr.code, rr.stdout, rr.stderr)
			}
			if rr.result.Phase != PhaseFailed || rr.result.Reason != tc.want {
				t.Fatalf("result %+v, want reason %s", rr.result, tc.want)
			}
			if lines := strings.Split(strings.TrimSpace(rr.stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("stderr is not one error line: %q", rr.stderr)
			}
			if b, err := os.ReadFile(f.termLog); err != nil || len(b) == 0 {
				t.Fatalf("no termination log: %v", err)
			}
			f.assertNoSecrets(t, rr)
			if strings.HasPrefix(tc.name, "restore") && eng.touched() {
				t.Fatal("the target was touched")
			}
			if strings.HasPrefix(tc.name, "backup") && tc.want != ReasonAlreadyExists {
				art := ""
				for i, a := range tc.args {
					if a == "--artifact-path" {
						art = tc.args[i+1]
					}
				}
				if keys := f.srv.Keys(t, "cluster-a/"+art+"/"); len(keys) != 0 {
					t.Fatalf("a failed backup left %v", keys)
				}
				if n := f.srv.IncompleteUploads(t, "cluster-a/"); n != 0 {
					t.Fatalf("%d incomplete uploads left", n)
				}
			}
		})
	}
	// The existing backup survived every failure.
	rr = runAgent(t, f.env, append([]string{"verify", "--identity-file", f.idFile, "--progress-interval", "0", "--termination-log", ""}, f.storeArgs(artifact)...)...)
	if rr.code != 0 {
		t.Fatalf("verify after failures: %s", rr.stderr)
	}
}

func TestAgent_FilesystemScryptAndUsage(t *testing.T) {
	root := t.TempDir()
	data := randomData(1 << 20)
	useEngine(t, "testdb", data)
	pass := "a long passphrase for scrypt"
	env := map[string]string{EnvAgePassphrase: pass}
	store := []string{"--store-type", "filesystem", "--fs-root", root, "--artifact-path", "ns/t/b1", "--progress-interval", "0", "--termination-log", ""}
	rr := runAgent(t, env, append([]string{"agent", "backup", "--engine", "testdb", "--encryption", "scrypt", "--compression", "gzip"}, store...)...)
	if rr.code != 0 || rr.result.DataObject != "data.dump.gz.age" {
		t.Fatalf("backup %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}
	if strings.Contains(rr.stdout+rr.stderr, pass) {
		t.Fatal("passphrase in output")
	}
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte(pass+"\n"), 0o600)
	target := useEngine(t, "testdb", nil)
	rr = runAgent(t, nil, append([]string{"restore", "--engine", "testdb", "--passphrase-file", passFile}, store...)...)
	if rr.code != 0 || !bytes.Equal(target.restored, data) {
		t.Fatalf("restore %d: %s", rr.code, rr.stderr)
	}
	os.WriteFile(passFile, []byte("not it\n"), 0o600)
	rr = runAgent(t, nil, append([]string{"restore", "--engine", "testdb", "--passphrase-file", passFile}, store...)...)
	if rr.code != 1 || rr.result.Reason != ReasonDecryptionFailed {
		t.Fatalf("wrong passphrase: %+v", rr.result)
	}
	// Plaintext must be asked for by name; an unknown flag is a usage error.
	if rr := runAgent(t, nil, append([]string{"backup", "--engine", "testdb", "--encryption", "plain"}, store...)...); rr.code != 1 || rr.result.Reason != ReasonInvalidInput {
		t.Fatalf("unknown mode: %+v", rr)
	}
	if rr := runAgent(t, nil, "backup", "--password", "x"); rr.code != 2 {
		t.Fatalf("unknown flag: exit %d", rr.code)
	}
	if rr := runAgent(t, nil, "frobnicate"); rr.code != 2 {
		t.Fatalf("unknown command: exit %d", rr.code)
	}
	// The error line names the program as it was run: Job logs show
	// backstop-agent.
	var out, errb bytes.Buffer
	code := run(context.Background(), "backstop-agent", append([]string{"backup", "--engine", "testdb", "--encryption", "plain"}, store...), &out, &errb, func(string) string { return "" })
	if want := "backstop-agent backup: InvalidInput: "; code != 1 || !strings.HasPrefix(errb.String(), want) || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("exit %d, stderr %q: want one line starting %q", code, errb.String(), want)
	}
}

// A file made by the stock age CLI around a zstd stream decrypts with
// `backstop decrypt --file`, and one made by backstop with `age -d`.
func TestUser_DecryptStockAgeFile(t *testing.T) {
	ageBin, keygen := minio.AgeBinaries(t)
	dir := t.TempDir()
	idFile := filepath.Join(dir, "key.txt")
	if out, err := exec.Command(keygen, "-o", idFile).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v %s", err, out)
	}
	pub, err := exec.Command(keygen, "-y", idFile).Output()
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(256 << 10)
	var zst bytes.Buffer
	zw, _ := zstd.NewWriter(&zst)
	zw.Write(data)
	zw.Close()
	file := filepath.Join(dir, "data.sql.zst.age")
	cmd := exec.Command(ageBin, "-r", strings.TrimSpace(string(pub)), "-o", file)
	cmd.Stdin = &zst
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("age: %v %s", err, out)
	}
	ur := runUserCmd(t, nil, "decrypt", "--file", file, "--identity-file", idFile, "--progress-interval", "0")
	if ur.code != 0 || ur.stdout != string(data) {
		t.Fatalf("decrypt: %d %s", ur.code, ur.stderr)
	}
	ur = runUserCmd(t, nil, "verify", "--file", file, "--identity-file", idFile, "--json")
	var res Result
	if ur.code != 0 || json.Unmarshal([]byte(ur.stdout), &res) != nil || res.PlaintextBytes != int64(len(data)) {
		t.Fatalf("verify: %d %s %s", ur.code, ur.stdout, ur.stderr)
	}
	b, _ := os.ReadFile(file)
	b[len(b)/2] ^= 1
	os.WriteFile(file, b, 0o600)
	ur = runUserCmd(t, nil, "decrypt", "--file", file, "--identity-file", idFile)
	if ur.code != 1 || !strings.Contains(ur.stderr, ReasonIntegrityMismatch) || ur.stdout != "" {
		t.Fatalf("tampered file: %d %q", ur.code, ur.stderr)
	}
}

func TestResult_EncodeFitsTerminationMessage(t *testing.T) {
	r := Result{Phase: PhaseFailed, Reason: ReasonDumpFailed, Message: strings.Repeat("pg_dump: error: ünïcode\n", 2000), ArtifactPath: "a/b/c"}
	b := r.Encode()
	if len(b) > MaxResultSize || bytes.Contains(b, []byte("\n")) {
		t.Fatalf("encoded result has %d bytes", len(b))
	}
	if _, err := ParseResult(b); err != nil {
		t.Fatal(err)
	}
}

func TestReasonsMatchPipeline(t *testing.T) {
	for a, p := range map[string]string{
		ReasonStoreUnreachable: pipeline.ReasonStoreUnreachable, ReasonAuthenticationFailed: pipeline.ReasonAuthenticationFailed,
		ReasonBucketNotFound: pipeline.ReasonBucketNotFound, ReasonManifestNotFound: pipeline.ReasonManifestNotFound,
		ReasonIntegrityMismatch: pipeline.ReasonIntegrityMismatch, ReasonDecryptionFailed: pipeline.ReasonDecryptionFailed,
		ReasonEngineMismatch: pipeline.ReasonEngineMismatch, ReasonDumpFailed: pipeline.ReasonDumpFailed,
		ReasonDumpIncomplete:    pipeline.ReasonDumpIncomplete,
		ReasonTargetUnreachable: pipeline.ReasonTargetUnreachable, ReasonTargetAuthenticationFailed: pipeline.ReasonTargetAuthenticationFailed,
		ReasonRestoreFailed: pipeline.ReasonRestoreFailed, ReasonInvalidInput: pipeline.ReasonInvalidInput,
		ReasonTargetBusy:       pipeline.ReasonTargetBusy,
		ReasonDeadlineExceeded: pipeline.ReasonDeadlineExceeded, ReasonUnsafeArchive: engine.ReasonUnsafeArchive,
		ReasonAlreadyExists: pipeline.ReasonAlreadyExists, ReasonCanceled: pipeline.ReasonCanceled, ReasonStoreError: pipeline.ReasonStoreError,
	} {
		if a != p {
			t.Errorf("%s != %s", a, p)
		}
	}
	if engine.ReasonDumpIncomplete != ReasonDumpIncomplete || engine.ReasonDatabaseNotFound != ReasonDatabaseNotFound ||
		engine.ReasonTargetBusy != ReasonTargetBusy {
		t.Error("the engine's reasons differ from the agent's")
	}
}
