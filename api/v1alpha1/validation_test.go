package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/testutil/assets"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// The schema tests run against a real kube-apiserver with the generated CRDs:
// the samples must be accepted, and each invalid object rejected with a
// message that names the offending field.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(runWithAPIServer(m))
}

func runWithAPIServer(m *testing.M) int {
	dir, err := assets.ControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, err := assets.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the API server:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = backstopv1alpha1.AddToScheme(scheme)
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "validation-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("bad test YAML: %v\n%s", err, doc)
	}
	return obj
}

func TestSamplesAreAccepted(t *testing.T) {
	root, err := assets.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "backstop_v1alpha1_*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	ns := newNamespace(t)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := decode(t, string(data))
		obj.SetNamespace(ns)
		// Server-side apply, as kubectl apply --server-side and GitOps tools do.
		if err := k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("validation-test"), client.ForceOwnership); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		kinds[obj.GetKind()] = true
	}
	for _, kind := range []string{"BackupStore", "BackupTarget", "BackupSchedule", "Backup", "BackupDrill", "Restore"} {
		if !kinds[kind] {
			t.Errorf("no accepted sample of kind %s in config/samples", kind)
		}
	}
}

const validStoreSpec = `
  s3: {bucket: backups, endpoint: "http://minio:9000", forcePathStyle: true, credentialsSecretRef: {name: s3}}
  encryption: {recipients: {publicKeys: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]}}`

const validPostgres = `
  postgres: {host: db, database: app, credentials: {username: u, passwordSecretRef: {name: db, key: password}}}`

func TestInvalidObjectsAreRejected(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name string
		kind string
		spec string
		want string // a part of the API server's message that names the field
	}{
		// BackupStore
		{"two backends", "BackupStore", validStoreSpec + `
  volume: {claimName: backups}`, "exactly one of spec.s3, spec.gcs, spec.azure or spec.volume"},
		{"no backend", "BackupStore", `
  encryption: {none: {}}`, "exactly one of spec.s3, spec.gcs, spec.azure or spec.volume"},
		{"no encryption block", "BackupStore", `
  volume: {claimName: backups}`, "spec.encryption: Required value"},
		{"empty encryption block", "BackupStore", `
  volume: {claimName: backups}
  encryption: {}`, "exactly one of encryption.recipients, encryption.passphraseSecretRef or encryption.none"},
		{"recipients and none", "BackupStore", `
  volume: {claimName: backups}
  encryption: {none: {}, recipients: {publicKeys: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]}}`, "exactly one of encryption.recipients"},
		{"recipients without keys", "BackupStore", `
  volume: {claimName: backups}
  encryption: {recipients: {identitySecretRef: {name: id, key: key.txt}}}`, "recipients needs publicKeys or publicKeysSecretRef"},
		{"malformed public key", "BackupStore", `
  volume: {claimName: backups}
  encryption: {recipients: {publicKeys: [age1notakey]}}`, "spec.encryption.recipients.publicKeys[0]"},
		{"private key where a public key goes", "BackupStore", `
  volume: {claimName: backups}
  encryption: {recipients: {publicKeys: [AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ]}}`, "spec.encryption.recipients.publicKeys[0]"},
		{"unknown compression", "BackupStore", validStoreSpec + `
  compression: {algorithm: lz4}`, "spec.compression.algorithm: Unsupported value"},
		{"gzip level out of range", "BackupStore", validStoreSpec + `
  compression: {algorithm: gzip, level: 12}`, "compression.level must be 1-22 for zstd, 1-9 for gzip"},
		{"zstd level zero", "BackupStore", validStoreSpec + `
  compression: {algorithm: zstd, level: 0}`, "spec.compression.level"},
		{"bad bucket name", "BackupStore", `
  s3: {bucket: Bad_Bucket, credentialsSecretRef: {name: s3}}
  encryption: {none: {}}`, "spec.s3.bucket"},
		{"endpoint not a URL", "BackupStore", `
  s3: {bucket: backups, endpoint: "ftp://minio", credentialsSecretRef: {name: s3}}
  encryption: {none: {}}`, "spec.s3.endpoint"},
		{"s3 part size too small", "BackupStore", `
  s3: {bucket: backups, credentialsSecretRef: {name: s3}, partSizeMiB: 4}
  encryption: {none: {}}`, "spec.s3.partSizeMiB"},
		{"s3 part size too large", "BackupStore", `
  s3: {bucket: backups, credentialsSecretRef: {name: s3}, partSizeMiB: 513}
  encryption: {none: {}}`, "spec.s3.partSizeMiB"},
		{"azure block size too small", "BackupStore", `
  azure: {storageAccount: acct, container: backups, blockSizeMiB: -1}
  encryption: {none: {}}`, "spec.azure.blockSizeMiB"},
		{"azure block size too large", "BackupStore", `
  azure: {storageAccount: acct, container: backups, blockSizeMiB: 513}
  encryption: {none: {}}`, "spec.azure.blockSizeMiB"},
		{"s3 without credentials", "BackupStore", `
  s3: {bucket: backups}
  encryption: {none: {}}`, "spec.s3.credentialsSecretRef: Required value"},
		{"volume subPath escaping", "BackupStore", `
  volume: {claimName: backups, subPath: "a/../../etc"}
  encryption: {none: {}}`, "subPath must be relative and must not contain '..'"},
		{"probe interval not a duration", "BackupStore", validStoreSpec + `
  probeInterval: soon`, "spec.probeInterval"},

		// BackupTarget
		{"two engines", "BackupTarget", validPostgres + `
  files: {claimName: data}`, "exactly one of spec.postgres, spec.mysql or spec.files"},
		{"a Job gone before its result is read", "Backup", `
  targetRef: {name: db}
  storeRef: {name: s3}
  jobTemplate: {ttlSecondsAfterFinished: 0}`, "spec.jobTemplate.ttlSecondsAfterFinished"},
		{"drill checks on files", "BackupTarget", `
  files: {claimName: data}
  drillChecks: [{name: rows, sql: "SELECT 1", expect: "1"}]`, "drillChecks are SQL checks: not allowed on a files target"},
		{"no engine", "BackupTarget", `
  {}`, "exactly one of spec.postgres, spec.mysql or spec.files"},
		{"port out of range", "BackupTarget", `
  postgres: {host: db, port: 70000, database: app, credentials: {username: u, passwordSecretRef: {name: db, key: password}}}`, "spec.postgres.port"},
		{"unknown TLS mode", "BackupTarget", `
  postgres: {host: db, database: app, tlsMode: maybe, credentials: {username: u, passwordSecretRef: {name: db, key: password}}}`, "spec.postgres.tlsMode: Unsupported value"},
		{"postgres verify-full without a CA", "BackupTarget", `
  postgres: {host: db, database: app, tlsMode: verify-full, credentials: {username: u, passwordSecretRef: {name: db, key: password}}}`, "tlsMode verify-ca and verify-full need caSecretRef"},
		{"postgres verify-ca without a CA", "BackupTarget", `
  postgres: {host: db, database: app, tlsMode: verify-ca, credentials: {username: u, passwordSecretRef: {name: db, key: password}}}`, "tlsMode verify-ca and verify-full need caSecretRef"},
		{"username twice", "BackupTarget", `
  postgres: {host: db, database: app, credentials: {username: u, usernameSecretRef: {name: db, key: user}, passwordSecretRef: {name: db, key: password}}}`, "exactly one of credentials.username or credentials.usernameSecretRef"},
		{"no password", "BackupTarget", `
  postgres: {host: db, database: app, credentials: {username: u}}`, "spec.postgres.credentials.passwordSecretRef: Required value"},
		{"bad secret name", "BackupTarget", `
  postgres: {host: db, database: app, credentials: {username: u, passwordSecretRef: {name: Not_A_Name, key: password}}}`, "spec.postgres.credentials.passwordSecretRef.name"},
		{"mysql without databases", "BackupTarget", `
  mysql: {host: db, databases: [], credentials: {username: u, passwordSecretRef: {name: db, key: password}}}`, "spec.mysql.databases"},
		{"mysql database name with a quote", "BackupTarget", `
  mysql: {host: db, databases: ["shop'; DROP"], credentials: {username: u, passwordSecretRef: {name: db, key: password}}}`, "spec.mysql.databases[0]"},
		{"files path absolute", "BackupTarget", `
  files: {claimName: data, path: /etc}`, "path must be relative to the volume"},
		{"files Jobs as root", "BackupTarget", `
  files: {claimName: data, runAsUser: 0}`, "spec.files.runAsUser"},
		{"files Jobs in a negative group", "BackupTarget", `
  files: {claimName: data, runAsUser: 1000, runAsGroup: -1}`, "spec.files.runAsGroup"},
		{"host with a space", "BackupTarget", `
  postgres: {host: "db; rm", database: app, credentials: {username: u, passwordSecretRef: {name: db, key: password}}}`, "spec.postgres.host"},

		// BackupSchedule
		{"unknown concurrency policy", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "@daily"
  concurrencyPolicy: Sometimes`, "spec.concurrencyPolicy: Unsupported value"},
		{"negative keepLast", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "@daily"
  retention: {keepLast: -1}`, "spec.retention.keepLast"},
		{"negative keepDaily", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "@daily"
  retention: {keepDaily: -3}`, "spec.retention.keepDaily"},
		{"empty retention", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "@daily"
  retention: {}`, "retention needs at least one keep rule or failedHistoryLimit"},
		{"malformed time zone", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "@daily"
  timeZone: "Not A Zone"`, "spec.timeZone"},
		{"empty schedule", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: ""`, "spec.schedule"},
		{"time zone inside the schedule", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "CRON_TZ=Europe/Paris 0 3 * * *"`, "schedule must not carry a time zone; use spec.timeZone"},
		{"zero starting deadline", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "@daily"
  startingDeadlineSeconds: 0`, "spec.startingDeadlineSeconds"},
		{"backoff limit too high", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "@daily"
  jobTemplate: {backoffLimit: 50}`, "spec.jobTemplate.backoffLimit"},
		{"schedule without target", "BackupSchedule", `
  storeRef: {name: s}
  schedule: "@daily"`, "spec.targetRef: Required value"},

		// Backup
		{"unknown deletion policy", "Backup", `
  targetRef: {name: t}
  storeRef: {name: s}
  deletionPolicy: Shred`, "spec.deletionPolicy: Unsupported value"},
		{"backup without store", "Backup", `
  targetRef: {name: t}`, "spec.storeRef: Required value"},

		// Restore
		{"two sources", "Restore", `
  targetRef: {name: t}
  source: {backupRef: {name: b}, latestOf: t}`, "exactly one of source.backupRef, source.path or source.latestOf"},
		{"no source", "Restore", `
  targetRef: {name: t}`, "spec.source: Required value"},
		{"path without store", "Restore", `
  targetRef: {name: t}
  source: {path: ns/t/b}`, "source.storeRef is required with source.path or source.latestOf"},
		{"backupRef with store", "Restore", `
  targetRef: {name: t}
  source: {backupRef: {name: b}, storeRef: {name: s}}`, "source.storeRef is required with source.path or source.latestOf, and not allowed with source.backupRef"},
		{"path escaping the prefix", "Restore", `
  targetRef: {name: t}
  source: {storeRef: {name: s}, path: "ns/../../other"}`, "source.path must be relative"},
		{"safety backup without enabled", "Restore", `
  targetRef: {name: t}
  source: {backupRef: {name: b}}
  safetyBackup: {}`, "spec.safetyBackup.enabled: Required value"},
		{"lock timeout under a second", "Restore", `
  targetRef: {name: t}
  source: {backupRef: {name: b}}
  lockTimeout: 500ms`, "lockTimeout must be between 1s and 1h"},
		{"lock timeout over an hour", "Restore", `
  targetRef: {name: t}
  source: {backupRef: {name: b}}
  lockTimeout: 2h`, "lockTimeout must be between 1s and 1h"},

		// BackupDrill
		{"drill without backup", "BackupDrill", `
  timeout: 1h`, "spec.backupRef: Required value"},
		{"two checks of one name", "BackupDrill", `
  backupRef: {name: b}
  checks: [{name: rows, sql: "select 1", expect: "1"}, {name: rows, sql: "select 2", expect: "2"}]`, "spec.checks[1]: Duplicate value"},
		{"a check named as the drill's own", "BackupDrill", `
  backupRef: {name: b}
  checks: [{name: integrity, sql: "select 1", expect: "1"}]`, "integrity, tables and files are the names of the drill's own checks"},
		{"a check name with capitals", "BackupDrill", `
  backupRef: {name: b}
  checks: [{name: Rows, sql: "select 1", expect: "1"}]`, "spec.checks[0].name"},
		{"a check without sql", "BackupDrill", `
  backupRef: {name: b}
  checks: [{name: rows, expect: "1"}]`, "spec.checks[0].sql: Required value"},
		{"drill timeout too short", "BackupDrill", `
  backupRef: {name: b}
  timeout: 10s`, "timeout must be between 1m and 168h"},
		{"drill timeout not a duration", "BackupDrill", `
  backupRef: {name: b}
  timeout: soon`, "spec.timeout"},
		{"drill cron with a time zone", "BackupSchedule", `
  targetRef: {name: t}
  storeRef: {name: s}
  schedule: "@daily"
  drill: {schedule: "TZ=UTC 0 5 * * 0"}`, "drill.schedule must not carry a time zone"},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d invalid cases", len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, fmt.Sprintf("apiVersion: backstop.io/v1alpha1\nkind: %s\nmetadata: {name: invalid-%d, namespace: %s}\nspec:%s\n", tc.kind, i, ns, tc.spec))
			err := k8s.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("the API server accepted the invalid %s", tc.kind)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the error does not name the field:\n got: %v\nwant: ...%s...", err, tc.want)
			}
			// Nothing was created.
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(obj.GroupVersionKind())
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), got); !apierrors.IsNotFound(err) {
				t.Fatalf("the rejected object exists: %v", err)
			}
		})
	}
}

func TestBackupAndRestoreSpecsAreImmutable(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)

	backup := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: ns},
		Spec: backstopv1alpha1.BackupSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: "t"},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: "s"},
		},
	}
	if err := k8s.Create(ctx, backup); err != nil {
		t.Fatal(err)
	}
	if backup.Spec.DeletionPolicy != backstopv1alpha1.DeletionDelete {
		t.Errorf("deletionPolicy defaulted to %q, want Delete", backup.Spec.DeletionPolicy)
	}
	edited := backup.DeepCopy()
	edited.Spec.StoreRef.Name = "other"
	err := k8s.Update(ctx, edited)
	if err == nil || !strings.Contains(err.Error(), "spec is immutable: create a new Backup instead") {
		t.Fatalf("editing a Backup spec: want an immutability error, got %v", err)
	}
	// Labels and annotations may still change.
	labelled := backup.DeepCopy()
	labelled.Labels = map[string]string{"team": "shop"}
	if err := k8s.Update(ctx, labelled); err != nil {
		t.Fatalf("relabelling a Backup: %v", err)
	}
	got := &backstopv1alpha1.Backup{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(backup), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.StoreRef.Name != "s" {
		t.Fatalf("the rejected edit changed the spec: storeRef %q", got.Spec.StoreRef.Name)
	}

	restore := &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: "t"},
			Source:    backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: "b"}},
		},
	}
	if err := k8s.Create(ctx, restore); err != nil {
		t.Fatal(err)
	}
	editedRestore := restore.DeepCopy()
	editedRestore.Spec.Source.BackupRef.Name = "other"
	err = k8s.Update(ctx, editedRestore)
	if err == nil || !strings.Contains(err.Error(), "spec is immutable: create a new Restore instead") {
		t.Fatalf("editing a Restore spec: want an immutability error, got %v", err)
	}

	drill := &backstopv1alpha1.BackupDrill{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: ns},
		Spec:       backstopv1alpha1.BackupDrillSpec{BackupRef: backstopv1alpha1.LocalObjectReference{Name: "b"}},
	}
	if err := k8s.Create(ctx, drill); err != nil {
		t.Fatal(err)
	}
	if drill.Spec.Timeout == nil || drill.Spec.Timeout.Duration != time.Hour {
		t.Errorf("timeout defaulted to %v, want 1h", drill.Spec.Timeout)
	}
	if drill.Spec.ScratchSize == nil || drill.Spec.ScratchSize.String() != "10Gi" {
		t.Errorf("scratchSize defaulted to %v, want 10Gi", drill.Spec.ScratchSize)
	}
	editedDrill := drill.DeepCopy()
	editedDrill.Spec.BackupRef.Name = "other"
	err = k8s.Update(ctx, editedDrill)
	if err == nil || !strings.Contains(err.Error(), "spec is immutable: create a new BackupDrill instead") {
		t.Fatalf("editing a BackupDrill spec: want an immutability error, got %v", err)
	}
}

func TestDefaults(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	obj := decode(t, fmt.Sprintf("apiVersion: backstop.io/v1alpha1\nkind: BackupSchedule\nmetadata: {name: d, namespace: %s}\nspec: {targetRef: {name: t}, storeRef: {name: s}, schedule: '@hourly'}\n", ns))
	if err := k8s.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	sched := &backstopv1alpha1.BackupSchedule{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), sched); err != nil {
		t.Fatal(err)
	}
	if sched.Spec.ConcurrencyPolicy != backstopv1alpha1.ConcurrencyForbid {
		t.Errorf("concurrencyPolicy defaulted to %q, want Forbid", sched.Spec.ConcurrencyPolicy)
	}
}
