// Package demo is `make demo`: Backstop end to end on this machine, with no
// cluster. It starts a local control plane, a pod runner in place of a
// kubelet, a MinIO store and PostgreSQL (or a files target when PostgreSQL
// is not installed), runs the operator, applies a store, a target and a
// schedule that fires every 30 seconds, shows two backups land, restores the
// first one, and stops everything it started.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/testutil/minio"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
	"github.com/backstop-io/backstop/test/cluster"
	"github.com/backstop-io/backstop/test/podrunner"
)

const agentImage = "ghcr.io/backstop-io/backstop:demo"

func say(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func TestDemo(t *testing.T) {
	if os.Getenv("BACKSTOP_DEMO") != "1" {
		t.Skip("the demo runs with `make demo`")
	}
	started := time.Now()
	logDir := os.Getenv("BACKSTOP_DEMO_DIR")
	if logDir == "" {
		logDir = filepath.Join(os.TempDir(), "backstop-demo-"+started.Format("20060102-150405"))
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The client library's own log lines go to a file beside the others:
	// the terminal shows the demo's steps only.
	clientLog, err := os.Create(filepath.Join(logDir, "client.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer clientLog.Close()
	crlog.SetLogger(zap.New(zap.WriteTo(clientLog)))
	defer func() {
		say("Stopped everything the demo started (in %s). Logs and the demo's age key are in %s", time.Since(started).Round(time.Second), logDir)
	}()

	say("Building backstop")
	work := t.TempDir()
	bin := filepath.Join(work, "backstop")
	run(t, "", nil, "go", "build", "-o", bin, "github.com/backstop-io/backstop")
	// What the Jobs run, next to it as in the image.
	run(t, "", nil, "go", "build", "-o", filepath.Join(work, "backstop-agent"), "github.com/backstop-io/backstop/cmd/backstop-agent")

	say("Starting a local control plane: etcd, kube-apiserver, kube-controller-manager")
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = backstopv1alpha1.AddToScheme(scheme)
	c := cluster.Start(t, cluster.Options{
		CRDDirectoryPaths: []string{"config/crd/bases"},
		ControllerManager: true,
		Scheme:            scheme,
		LogDir:            filepath.Join(logDir, "control-plane"),
	})
	assets, err := cluster.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl not found next to the control plane; run: bash hack/control-plane.sh --kubectl")
	}
	kenv := []string{"KUBECONFIG=" + c.KubeconfigPath}
	fmt.Printf("    KUBECONFIG=%s\n", c.KubeconfigPath)

	say("Starting the pod runner (plays the kubelet: runs Job pods as local processes)")
	runnerLog, err := os.Create(filepath.Join(logDir, "pod-runner.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer runnerLog.Close()
	runner := podrunner.Start(t, podrunner.Options{
		Config: c.Config,
		Root:   filepath.Join(work, "node"),
		LogDir: filepath.Join(logDir, "pods"),
		Images: map[string]string{agentImage: bin},
		Logf:   func(format string, args ...any) { fmt.Fprintf(runnerLog, format+"\n", args...) },
	})

	say("Starting MinIO as the S3 store")
	store := minio.Start(t)

	say("Generating an age key pair: the cluster gets the public key, restores get the identity")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(logDir, "demo-key.txt")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("    public key %s; identity in %s\n", id.Recipient(), keyFile)

	var pg *pgserver.Server
	if _, err := pgserver.BinDir(); err == nil {
		say("Starting PostgreSQL with a small shop database")
		if pg, err = pgserver.Launch(); err != nil {
			t.Fatal(err)
		}
		defer pg.Stop()
		pg.MustQuery(t, "postgres", "CREATE DATABASE shop")
		pg.MustQuery(t, "shop", "CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, 'item-' || g FROM generate_series(1, 1000) g;")
	} else {
		say("PostgreSQL is not installed: backing up a directory on a volume instead")
		dir := runner.PVCPath("demo", "uploads")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 100; i++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%03d.txt", i)), []byte(strings.Repeat("backstop ", i)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	say("Starting the operator (logs: %s)", filepath.Join(logDir, "operator.log"))
	opLog, err := os.Create(filepath.Join(logDir, "operator.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer opLog.Close()
	op := exec.Command(bin, "manager", "--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--agent-image="+agentImage)
	op.Env = append(os.Environ(), kenv...)
	op.Stdout, op.Stderr = opLog, opLog
	if err := op.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = op.Process.Signal(os.Interrupt); _ = op.Wait() }()

	say("Applying a store, a target and a schedule that fires every 30 seconds")
	run(t, "", kenv, kubectl, "create", "namespace", "demo")
	run(t, "", kenv, kubectl, "-n", "demo", "create", "secret", "generic", "minio", "--from-literal=accessKeyID="+store.AccessKey, "--from-literal=secretAccessKey="+store.SecretKey)
	run(t, "", kenv, kubectl, "-n", "demo", "create", "secret", "generic", "age-identity", "--from-file=identity.txt="+keyFile)
	target := filesTarget
	if pg != nil {
		run(t, "", kenv, kubectl, "-n", "demo", "create", "secret", "generic", "shop-db", "--from-literal=password="+pg.Password)
		target = fmt.Sprintf(postgresTarget, pg.Host, pg.Port, pg.User)
	}
	manifests := fmt.Sprintf(storeAndSchedule, store.Endpoint, store.Bucket, id.Recipient()) + target
	fmt.Print(indent(manifests))
	run(t, manifests, kenv, kubectl, "apply", "-n", "demo", "-f", "-")

	say("Waiting for two backups to succeed, and for a drill to verify the first")
	k8s := c.Client
	first := waitBackups(t, k8s, 2, 4*time.Minute)
	run(t, "", kenv, kubectl, "wait", "-n", "demo", "backup/"+first, "--for=condition=Verified", "--timeout=180s")
	fmt.Print(indent(run(t, "", kenv, kubectl, "get", "backstop", "-n", "demo")))
	fmt.Print(indent(run(t, "", kenv, kubectl, "get", "backup", first, "-n", "demo", "-o", "jsonpath={.status.verification.checks[*].name} passed, time to restore {.status.verification.restoreDuration}{\"\\n\"}")))

	say("Changing the data, then restoring the first backup (%s)", first)
	if pg != nil {
		pg.MustQuery(t, "shop", "DELETE FROM orders WHERE id > 10; INSERT INTO orders VALUES (5000, 'not in the backup');")
		fmt.Printf("    orders now: %s rows\n", pg.MustQuery(t, "shop", "SELECT count(*) FROM orders"))
	} else {
		dir := runner.PVCPath("demo", "uploads")
		_ = os.Remove(filepath.Join(dir, "file-001.txt"))
		_ = os.WriteFile(filepath.Join(dir, "not-in-the-backup.txt"), []byte("x"), 0o644)
	}
	restore := fmt.Sprintf(restoreYAML, first)
	fmt.Print(indent(restore))
	run(t, restore, kenv, kubectl, "apply", "-n", "demo", "-f", "-")
	run(t, "", kenv, kubectl, "wait", "-n", "demo", "restore/restore-first", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=180s")
	fmt.Print(indent(run(t, "", kenv, kubectl, "get", "restore,backups", "-n", "demo")))
	if pg != nil {
		fmt.Printf("    orders after the restore: %s rows (the backup had 1000)\n", pg.MustQuery(t, "shop", "SELECT count(*) FROM orders"))
	} else {
		entries, _ := os.ReadDir(runner.PVCPath("demo", "uploads"))
		fmt.Printf("    files after the restore: %d (the backup had 100)\n", len(entries))
	}
	say("Artifacts in the store (age-encrypted zstd around the engine's own dump, plus the manifest):")
	for _, k := range store.Keys(t, "demo/") {
		fmt.Printf("    s3://%s/%s\n", store.Bucket, k)
	}
}

// waitBackups waits until n Backups have succeeded and returns the oldest's name.
func waitBackups(t *testing.T, k8s client.Client, n int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		list := &backstopv1alpha1.BackupList{}
		if err := k8s.List(context.Background(), list, client.InNamespace("demo")); err != nil {
			t.Fatal(err)
		}
		var done []backstopv1alpha1.Backup
		for _, b := range list.Items {
			switch b.Status.Phase {
			case backstopv1alpha1.BackupSucceeded:
				done = append(done, b)
			case backstopv1alpha1.BackupFailed:
				t.Fatalf("Backup %s failed: %s: %s", b.Name, b.Status.Reason, b.Status.Message)
			}
		}
		if len(done) >= n {
			oldest := done[0]
			for _, b := range done {
				if b.CreationTimestamp.Before(&oldest.CreationTimestamp) {
					oldest = b
				}
			}
			return oldest.Name
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("fewer than %d backups succeeded within %s", n, timeout)
	return ""
}

// run runs a command and returns its output; it fails the demo on error.
func run(t *testing.T, stdin string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

const storeAndSchedule = `apiVersion: backstop.io/v1alpha1
kind: BackupStore
metadata:
  name: minio
spec:
  s3:
    endpoint: http://%s
    bucket: %s
    forcePathStyle: true
    credentialsSecretRef: {name: minio}
  encryption:
    recipients:
      publicKeys: [%s]
      identitySecretRef: {name: age-identity, key: identity.txt}
---
apiVersion: backstop.io/v1alpha1
kind: BackupSchedule
metadata:
  name: every-30s
spec:
  targetRef: {name: shop}
  storeRef: {name: minio}
  schedule: "@every 30s"
  retention: {keepLast: 5}
  # Restore every backup into a throwaway server in its own pod, check
  # every table and its rows against the backup, and mark it Verified.
  drill: {}
---
`

const postgresTarget = `apiVersion: backstop.io/v1alpha1
kind: BackupTarget
metadata:
  name: shop
spec:
  postgres:
    host: %s
    port: %d
    database: shop
    tlsMode: disable
    credentials:
      username: %s
      passwordSecretRef: {name: shop-db, key: password}
`

const filesTarget = `apiVersion: backstop.io/v1alpha1
kind: BackupTarget
metadata:
  name: shop
spec:
  files:
    claimName: uploads
`

const restoreYAML = `apiVersion: backstop.io/v1alpha1
kind: Restore
metadata:
  name: restore-first
spec:
  targetRef: {name: shop}
  source:
    backupRef: {name: %s}
`
