package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/backstop-io/backstop/internal/testutil/azurite"
	"github.com/backstop-io/backstop/internal/testutil/fakegcs"
)

// filesRoundTrip backs a directory up with the real files engine through
// the store given by storeArgs, changes it, restores it and checks the
// backed-up state came back. It returns the identity file.
func filesRoundTrip(t *testing.T, env map[string]string, storeArgs []string, keys func(prefix string) []string, secrets []string) string {
	t.Helper()
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(dir, "key.txt")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	data := filepath.Join(dir, "volume", "data")
	os.MkdirAll(filepath.Join(data, "sub"), 0o755)
	os.WriteFile(filepath.Join(data, "a.txt"), []byte("alpha\n"), 0o644)
	os.WriteFile(filepath.Join(data, "sub", "b.bin"), randomData(12<<20), 0o600)
	termLog := filepath.Join(dir, "termination-log")

	common := append([]string{"--engine", "files", "--path", data, "--prefix", "cluster-a", "--artifact-path", "ns/files/b1",
		"--progress-interval", "0", "--termination-log", termLog, "--scratch-dir", t.TempDir()}, storeArgs...)
	check := func(what string, rr runResult) {
		t.Helper()
		logb, _ := os.ReadFile(termLog)
		for _, s := range append(secrets, id.String()) {
			if s == "" {
				continue
			}
			if strings.Contains(rr.stdout+rr.stderr+string(logb), s) {
				t.Fatalf("%s: the output holds a secret", what)
			}
		}
	}
	rr := runAgent(t, env, append([]string{"backup", "--encryption", "x25519", "--recipient", id.Recipient().String()}, common...)...)
	check("backup", rr)
	if rr.code != 0 || rr.result.Phase != PhaseSucceeded || rr.result.DataObject != "data.tar.zst.age" {
		t.Fatalf("backup %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}
	if got := strings.Join(keys("cluster-a/"), " "); got != "cluster-a/ns/files/b1/data.tar.zst.age cluster-a/ns/files/b1/manifest.json" {
		t.Fatalf("stored keys: %s", got)
	}

	os.WriteFile(filepath.Join(data, "a.txt"), []byte("changed\n"), 0o644)
	os.WriteFile(filepath.Join(data, "new.txt"), []byte("new\n"), 0o644)
	rr = runAgent(t, env, append([]string{"restore", "--identity-file", idFile}, common...)...)
	check("restore", rr)
	if rr.code != 0 || rr.result.Phase != PhaseSucceeded {
		t.Fatalf("restore %d: %s %s", rr.code, rr.stdout, rr.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "a.txt")); string(b) != "alpha\n" {
		t.Fatalf("a.txt = %q after restore", b)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "sub", "b.bin")); len(b) != 12<<20 {
		t.Fatalf("b.bin has %d bytes after restore", len(b))
	}
	if _, err := os.Stat(filepath.Join(data, "new.txt")); !os.IsNotExist(err) {
		t.Fatal("restore merged instead of replacing")
	}

	// The artifact is there: a second backup to the same path is refused.
	rr = runAgent(t, env, append([]string{"backup", "--encryption", "none"}, common...)...)
	if rr.code != 1 || rr.result.Reason != ReasonAlreadyExists {
		t.Fatalf("second backup: %d %s", rr.code, rr.stdout)
	}
	return idFile
}

// runFailure runs a restore that must fail with reason want.
func runFailure(t *testing.T, env map[string]string, storeArgs []string, want string, secrets []string) {
	t.Helper()
	id, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(t.TempDir(), "key.txt")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	args := append([]string{"restore", "--engine", "files", "--path", t.TempDir(), "--identity-file", idFile,
		"--artifact-path", "ns/files/b1", "--progress-interval", "0", "--termination-log", ""}, storeArgs...)
	rr := runAgent(t, env, args...)
	if rr.code != 1 || rr.result.Reason != want {
		t.Fatalf("exit %d, result %+v, want reason %s; stderr %s", rr.code, rr.result, want, rr.stderr)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(rr.stdout+rr.stderr, s) {
			t.Fatalf("the output holds a secret: %s", rr.stderr)
		}
	}
	t.Logf("%s: %s", want, strings.TrimSpace(rr.stderr))
}

func TestAgent_GCSStoreRoundTrip(t *testing.T) {
	srv := fakegcs.Start(t)
	args := []string{"--store-type", "gcs", "--gcs-endpoint", srv.Endpoint, "--gcs-bucket", srv.Bucket}
	filesRoundTrip(t, nil, args, func(p string) []string { return srv.Keys(t, p) }, nil)

	runFailure(t, nil, []string{"--store-type", "gcs", "--gcs-endpoint", srv.Endpoint, "--gcs-bucket", "no-such-bucket"}, ReasonBucketNotFound, nil)
	// A named key file that does not exist is bad input, not a silent fallback.
	rr := runAgent(t, map[string]string{EnvGCSCredentials: "/nonexistent/key.json"}, "verify", "--store-type", "gcs",
		"--gcs-endpoint", srv.Endpoint, "--gcs-bucket", srv.Bucket, "--artifact-path", "ns/files/b1", "--termination-log", "")
	if rr.code != 1 || rr.result.Reason != ReasonInvalidInput {
		t.Fatalf("missing key file: %d %+v", rr.code, rr.result)
	}
}

func TestAgent_AzureStoreRoundTrip(t *testing.T) {
	srv := azurite.Start(t)
	args := []string{"--store-type", "azure", "--azure-endpoint", srv.Endpoint, "--azure-account", srv.Account,
		"--azure-container", srv.Container, "--azure-block-size-mib", "4"}
	env := map[string]string{EnvAzureKey: srv.Key}
	idFile := filesRoundTrip(t, env, args, func(p string) []string { return srv.Keys(t, p) }, []string{srv.Key})

	// A SAS token from a mounted file reads the backup back.
	cred, _ := azblob.NewSharedKeyCredential(srv.Account, srv.Key)
	q, err := sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.ContainerPermissions{Read: true, List: true}).String(),
		ContainerName: srv.Container,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	sasFile := filepath.Join(t.TempDir(), "sasToken")
	os.WriteFile(sasFile, []byte(q.Encode()+"\n"), 0o600)
	rr := runAgent(t, nil, append([]string{"verify", "--artifact-path", "cluster-a/ns/files/b1", "--azure-sas-file", sasFile, "--identity-file", idFile,
		"--progress-interval", "0", "--termination-log", ""}, args...)...)
	if rr.code != 0 || rr.result.Phase != PhaseSucceeded {
		t.Fatalf("verify with a SAS: %d %+v %s", rr.code, rr.result, rr.stderr)
	}
	if strings.Contains(rr.stdout+rr.stderr, q.Signature()) {
		t.Fatal("the output holds the SAS signature")
	}

	wrongKey := "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
	runFailure(t, map[string]string{EnvAzureKey: wrongKey}, append(args, "--prefix", "cluster-a"), ReasonAuthenticationFailed, []string{wrongKey, srv.Key})
	runFailure(t, env, append(args, "--prefix", "cluster-a", "--azure-container", "no-such-container"), ReasonBucketNotFound, []string{srv.Key})
	rr = runAgent(t, map[string]string{EnvAzureKey: srv.Key, EnvAzureSASToken: q.Encode()}, append([]string{"verify", "--artifact-path", "x/y/z", "--termination-log", ""}, args...)...)
	if rr.code != 1 || rr.result.Reason != ReasonInvalidInput {
		t.Fatalf("key and SAS both set: %d %+v", rr.code, rr.result)
	}
}
