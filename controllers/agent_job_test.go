package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

func testTarget() *backstopv1alpha1.BackupTarget {
	return &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"},
		Spec: backstopv1alpha1.BackupTargetSpec{Postgres: &backstopv1alpha1.PostgresTarget{
			DatabaseConnection: backstopv1alpha1.DatabaseConnection{
				Host: "db.shop.svc", Port: ptr.To[int32](5432), TLSMode: backstopv1alpha1.TLSRequire,
				Credentials: backstopv1alpha1.DatabaseCredentials{
					UsernameSecretRef: &backstopv1alpha1.SecretKeySelector{Name: "db", Key: "user"},
					PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: "db", Key: "password"},
				},
			},
			Database: "orders",
		}},
	}
}

func testStore() *backstopv1alpha1.BackupStore {
	return &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "shop"},
		Spec: backstopv1alpha1.BackupStoreSpec{
			S3: &backstopv1alpha1.S3Store{Bucket: "backups", Prefix: "prod", Endpoint: "http://minio:9000", ForcePathStyle: true,
				CredentialsSecretRef: backstopv1alpha1.LocalObjectReference{Name: "s3"}, PartSizeMiB: 64},
			Encryption: backstopv1alpha1.Encryption{Recipients: &backstopv1alpha1.AgeRecipients{
				PublicKeys:        []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"},
				IdentitySecretRef: &backstopv1alpha1.SecretKeySelector{Name: "age", Key: "identity.txt"},
			}},
		},
	}
}

func TestBuildAgentJob_Hardened(t *testing.T) {
	tmpl := &backstopv1alpha1.JobTemplate{
		ActiveDeadlineSeconds: ptr.To[int64](600),
		BackoffLimit:          ptr.To[int32](2),
		NodeSelector:          map[string]string{"pool": "backup"},
		PodLabels:             map[string]string{"team": "shop", LabelBackup: "spoofed"},
	}
	job := buildAgentJob(DefaultAgentOptions(), agentJobSpec{
		Op: opBackup, Name: "b-backup", Namespace: "shop", Labels: map[string]string{LabelBackup: "b"},
		Target: testTarget(), Store: testStore(), ArtifactPath: "shop/orders/b", Template: tmpl,
	})
	pod := job.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the agent must get no service-account token")
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %s", pod.RestartPolicy)
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container security context is not hardened: %+v", sc)
	}
	if *job.Spec.ActiveDeadlineSeconds != 600 || *job.Spec.BackoffLimit != 2 || pod.NodeSelector["pool"] != "backup" {
		t.Error("the job template overrides were not applied")
	}
	if job.Spec.Template.Labels[LabelBackup] != "b" || job.Spec.Template.Labels["team"] != "shop" {
		t.Errorf("pod labels: %v", job.Spec.Template.Labels)
	}
	args := strings.Join(c.Args, " ")
	if c.Command[0] != "/usr/local/bin/backstop-agent" || c.Args[0] != "backup" {
		t.Errorf("command %q args %q, want the lean agent binary running backup", c.Command, c.Args[:1])
	}
	for _, want := range []string{"--engine postgres", "--host db.shop.svc", "--port 5432", "--database orders",
		"--tls-mode require", "--store-type s3", "--s3-bucket backups", "--prefix prod", "--s3-force-path-style", "--s3-part-size-mib 64",
		"--encryption x25519", "--recipient age1ql3z7", "--artifact-path shop/orders/b"} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q: %s", want, args)
		}
	}
	// Credentials arrive only by secretKeyRef; the identity is not mounted into backups.
	secretRefs(t, c)
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "age" {
			t.Error("the identity Secret is mounted into a backup Job")
		}
	}
	if strings.Contains(args, "identity") {
		t.Error("a backup Job names an identity file")
	}
}

func TestBuildAgentJob_RestoreMountsIdentityAndNeverRetries(t *testing.T) {
	job := buildAgentJob(DefaultAgentOptions(), agentJobSpec{
		Op: opRestore, Name: "r-restore", Namespace: "shop", Target: testTarget(), Store: testStore(),
		ArtifactPath: "shop/orders/b", Template: &backstopv1alpha1.JobTemplate{BackoffLimit: ptr.To[int32](5)},
	})
	if *job.Spec.BackoffLimit != 0 {
		t.Errorf("a restore Job must never be retried, backoffLimit %d", *job.Spec.BackoffLimit)
	}
	args := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--identity-file /var/run/backstop/identity/identity.txt") {
		t.Errorf("restore args lack the identity file: %s", args)
	}
	if strings.Contains(args, "--recipient") {
		t.Errorf("restore args carry recipients: %s", args)
	}
	found := false
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "age" {
			found = true
			if *v.Secret.DefaultMode != 0o400 {
				t.Errorf("identity mode %o", *v.Secret.DefaultMode)
			}
		}
	}
	if !found {
		t.Error("the identity Secret is not mounted")
	}
}

func TestBuildAgentJob_NoSecretValues(t *testing.T) {
	// The Job is built from specs only; it can hold no secret value. This
	// guards against a future change that reads a Secret into the Job.
	job := buildAgentJob(DefaultAgentOptions(), agentJobSpec{Op: opBackup, Name: "j", Namespace: "shop", Target: testTarget(), Store: testStore(), ArtifactPath: "a/b/c"})
	data, _ := json.Marshal(job)
	for _, bad := range []string{"AGE-SECRET-KEY", "PGPASSWORD", "MYSQL_PWD"} {
		if strings.Contains(string(data), bad) {
			t.Errorf("the Job spec holds %s", bad)
		}
	}
}

func TestJobName(t *testing.T) {
	long := strings.Repeat("a", 80)
	n := jobName(long, "backup")
	if len(n) > 63 || !strings.HasSuffix(n, "-backup") {
		t.Errorf("jobName(%d chars) = %q (%d)", len(long), n, len(n))
	}
	if jobName(long, "backup") != n {
		t.Error("jobName is not deterministic")
	}
	if jobName(long+"b", "backup") == n {
		t.Error("two long names collide")
	}
	if jobName("nightly", "backup") != "nightly-backup" {
		t.Error("short names are kept")
	}
}

// GCS and Azure stores reach the agent as flags, with the credentials from
// the store's Secret (a mounted file for GCS, env from secretKeyRef for
// Azure) and never in the arguments.
func TestBuildAgentJob_CloudStores(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    backstopv1alpha1.BackupStoreSpec
		wants   []string
		envRefs map[string]string // env name -> "secret/key"
		secret  string            // a Secret mounted as a volume
	}{
		{"gcs", backstopv1alpha1.BackupStoreSpec{GCS: &backstopv1alpha1.GCSStore{Bucket: "backups", Prefix: "prod",
			CredentialsSecretRef: &backstopv1alpha1.SecretKeySelector{Name: "gcs", Key: "key.json"}}},
			[]string{"--store-type gcs", "--gcs-bucket backups", "--prefix prod", "--gcs-credentials-file /"},
			map[string]string{}, "gcs"},
		{"azure", backstopv1alpha1.BackupStoreSpec{Azure: &backstopv1alpha1.AzureStore{StorageAccount: "acct", Container: "backups",
			Endpoint: "http://azurite:10000/acct", BlockSizeMiB: 32, CredentialsSecretRef: &backstopv1alpha1.LocalObjectReference{Name: "az"}}},
			[]string{"--store-type azure", "--azure-account acct", "--azure-container backups", "--azure-endpoint http://azurite:10000/acct", "--azure-block-size-mib 32"},
			map[string]string{"AZURE_STORAGE_KEY": "az/accountKey", "AZURE_STORAGE_SAS_TOKEN": "az/sasToken"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := testStore()
			bs.Spec.S3, bs.Spec.GCS, bs.Spec.Azure = tc.spec.S3, tc.spec.GCS, tc.spec.Azure
			job := buildAgentJob(DefaultAgentOptions(), agentJobSpec{
				Op: opBackup, Name: "b-backup", Namespace: "shop", Target: testTarget(), Store: bs, ArtifactPath: "shop/orders/b",
			})
			c := job.Spec.Template.Spec.Containers[0]
			args := strings.Join(c.Args, " ")
			for _, want := range tc.wants {
				if !strings.Contains(args, want) {
					t.Errorf("args lack %q: %s", want, args)
				}
			}
			if strings.Contains(args, "s3-") {
				t.Errorf("S3 flags for a %s store: %s", tc.name, args)
			}
			refs := secretRefs(t, c)
			for name, want := range tc.envRefs {
				if refs[name] != want {
					t.Errorf("env %s comes from %q, want %q", name, refs[name], want)
				}
			}
			if tc.secret != "" {
				mounted := false
				for _, v := range job.Spec.Template.Spec.Volumes {
					mounted = mounted || v.Secret != nil && v.Secret.SecretName == tc.secret
				}
				if !mounted {
					t.Errorf("Secret %q is not mounted", tc.secret)
				}
			}
		})
	}
}

// secretRefs fails the test for any env var of c that is not a
// secretKeyRef, and returns each one's "secret/key".
func secretRefs(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	refs := map[string]string{}
	for _, env := range c.Env {
		if env.Value != "" || env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil {
			t.Errorf("env %s is not a secretKeyRef", env.Name)
			continue
		}
		refs[env.Name] = env.ValueFrom.SecretKeyRef.Name + "/" + env.ValueFrom.SecretKeyRef.Key
	}
	return refs
}

// A Restore's lockTimeout reaches its restore Job, and only that Job: the
// verify Job and the safety backup take no locks on the target.
func TestBuildAgentJob_LockTimeoutOnlyForTheRestore(t *testing.T) {
	for _, op := range []agentOp{opBackup, opVerify, opRestore} {
		job := buildAgentJob(DefaultAgentOptions(), agentJobSpec{
			Op: op, Name: "j", Namespace: "shop", Target: testTarget(), Store: testStore(), ArtifactPath: "shop/orders/b",
			LockTimeout: &metav1.Duration{Duration: 90 * time.Second},
		})
		args := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " ")
		if got, want := strings.Contains(args, "--lock-timeout 1m30s"), op == opRestore; got != want {
			t.Errorf("%s: --lock-timeout 1m30s in the args is %v, want %v: %s", op, got, want, args)
		}
	}
}

// A files target's Jobs run as the user the target names and get no
// fsGroup (the kubelet would re-group the target's files on mount); only a
// restore mounts the target's claim writable.
func TestBuildAgentJob_FilesTarget(t *testing.T) {
	target := &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: "shop"},
		Spec: backstopv1alpha1.BackupTargetSpec{Files: &backstopv1alpha1.FilesTarget{
			ClaimName: "app-data", Path: "uploads", RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](2000),
			SupplementalGroups: []int64{3000}}},
	}
	// A drill into a files scratch target runs as the target's user too.
	for _, op := range []agentOp{opBackup, opVerify, opRestore, opDrill} {
		job := buildAgentJob(DefaultAgentOptions(), agentJobSpec{
			Op: op, Name: "j", Namespace: "shop", Target: target, Store: testStore(), ArtifactPath: "shop/uploads/b",
		})
		pod := job.Spec.Template.Spec
		c := pod.Containers[0]
		if psc := pod.SecurityContext; psc.FSGroup != nil || *psc.RunAsUser != 1000 || *psc.RunAsGroup != 2000 || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod security context %+v, want user 1000, group 2000, non-root, no fsGroup", op, psc)
		}
		if g := pod.SecurityContext.SupplementalGroups; len(g) != 1 || g[0] != 3000 {
			t.Errorf("%s: supplementalGroups %v, want [3000]", op, g)
		}
		if *c.SecurityContext.RunAsUser != 1000 || *c.SecurityContext.RunAsGroup != 2000 {
			t.Errorf("%s: container runs as %d:%d, want 1000:2000", op, *c.SecurityContext.RunAsUser, *c.SecurityContext.RunAsGroup)
		}
		var data *corev1.VolumeMount
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].Name == "data" {
				data = &c.VolumeMounts[i]
			}
		}
		if data == nil {
			t.Fatalf("%s: the target's claim is not mounted: %+v", op, c.VolumeMounts)
		}
		if want := op != opRestore && op != opDrill; data.ReadOnly != want {
			t.Errorf("%s: the target's claim is mounted readOnly=%v, want %v", op, data.ReadOnly, want)
		}
		// With no fsGroup a root-owned 0400 Secret file is unreadable to
		// the Job's user: the identity comes by env from the Secret.
		if op == opBackup {
			continue
		}
		if args := strings.Join(c.Args, " "); strings.Contains(args, "--identity-file") {
			t.Errorf("%s: a files Job reads the identity from a file it cannot read: %s", op, args)
		}
		identityEnv := false
		for _, e := range c.Env {
			if e.Name == "BACKSTOP_AGE_IDENTITY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
				e.ValueFrom.SecretKeyRef.Name == "age" && e.ValueFrom.SecretKeyRef.Key == "identity.txt" {
				identityEnv = true
			}
		}
		if !identityEnv {
			t.Errorf("%s: no BACKSTOP_AGE_IDENTITY from Secret age/identity.txt: %+v", op, c.Env)
		}
		for _, v := range pod.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "age" {
				t.Errorf("%s: the identity Secret is mounted in a pod with no fsGroup", op)
			}
		}
	}

	// Public Secret files (recipients) in a files backup are readable by
	// the Job's user.
	store := testStore()
	store.Spec.Encryption.Recipients.PublicKeysSecretRef = &backstopv1alpha1.SecretKeySelector{Name: "recipients", Key: "keys.txt"}
	for _, v := range buildAgentJob(DefaultAgentOptions(), agentJobSpec{Op: opBackup, Name: "j", Namespace: "shop", Target: target, Store: store, ArtifactPath: "a"}).Spec.Template.Spec.Volumes {
		if v.Secret != nil && *v.Secret.DefaultMode != 0o444 {
			t.Errorf("Secret %s mode %o in a pod with no fsGroup, want 0444", v.Secret.SecretName, *v.Secret.DefaultMode)
		}
	}

	// Without a user on the target, files Jobs run as the agent's user,
	// still without fsGroup; database targets keep fsGroup.
	target.Spec.Files.RunAsUser, target.Spec.Files.RunAsGroup = nil, nil
	psc := buildAgentJob(DefaultAgentOptions(), agentJobSpec{Op: opBackup, Name: "j", Namespace: "shop", Target: target, Store: testStore(), ArtifactPath: "a"}).Spec.Template.Spec.SecurityContext
	if *psc.RunAsUser != agentUID || *psc.RunAsGroup != agentUID || psc.FSGroup != nil {
		t.Errorf("files target without a user: %+v", psc)
	}
	psc = buildAgentJob(DefaultAgentOptions(), agentJobSpec{Op: opBackup, Name: "j", Namespace: "shop", Target: testTarget(), Store: testStore(), ArtifactPath: "a"}).Spec.Template.Spec.SecurityContext
	if psc.FSGroup == nil || *psc.FSGroup != agentUID {
		t.Errorf("database target: fsGroup %v, want %d", psc.FSGroup, agentUID)
	}
}

// TestBuildAgentJob_DrillIntoThrowawayServer: a drill Job without a scratch
// target gets the engine, the store and its identity, a size-limited
// scratch emptyDir and the checks, and nothing of the production database:
// no host, no database name, no credentials, no claim.
func TestBuildAgentJob_DrillIntoThrowawayServer(t *testing.T) {
	size := resource.MustParse("3Gi")
	job := buildAgentJob(DefaultAgentOptions(), agentJobSpec{
		Op: opDrill, Name: "d-drill", Namespace: "shop", Store: testStore(), ArtifactPath: "shop/orders/b",
		Engine: "postgres", ScratchSize: &size, Env: []corev1.EnvVar{{Name: envDrillChecks, Value: `[{"name":"rows","sql":"SELECT 1","expect":"1"}]`}},
		Template: &backstopv1alpha1.JobTemplate{ActiveDeadlineSeconds: ptr.To[int64](3600)},
	})
	pod := job.Spec.Template.Spec
	c := pod.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"drill --artifact-path shop/orders/b", "--engine postgres", "--scratch-dir /scratch", "--scratch-size-limit 3221225472",
		"--identity-file /var/run/backstop/identity/identity.txt", "--timeout 59m30s"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	for _, not := range []string{"--host", "--database", "--into-target", "--path", "--user"} {
		if strings.Contains(args, not) {
			t.Errorf("a drill into a throwaway server got %s: %s", not, args)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "BACKSTOP_DB_") {
			t.Errorf("a drill into a throwaway server got %s", e.Name)
		}
	}
	checks := false
	for _, e := range c.Env {
		checks = checks || e.Name == envDrillChecks && strings.Contains(e.Value, `"rows"`)
	}
	if !checks {
		t.Errorf("no %s in %+v", envDrillChecks, c.Env)
	}
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("a drill into a throwaway server mounts claim %s", v.PersistentVolumeClaim.ClaimName)
		}
		if v.Name == "scratch" && (v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Cmp(size) != 0) {
			t.Errorf("scratch volume %+v, want an emptyDir of 3Gi", v)
		}
	}
	if psc := pod.SecurityContext; *psc.RunAsUser != agentUID || psc.FSGroup == nil {
		t.Errorf("pod security context %+v, want the agent's user with fsGroup", psc)
	}
	if *job.Spec.BackoffLimit != 0 || *job.Spec.ActiveDeadlineSeconds != 3600 {
		t.Errorf("backoffLimit %d, activeDeadlineSeconds %d; want 0 and 3600", *job.Spec.BackoffLimit, *job.Spec.ActiveDeadlineSeconds)
	}
}

// A volume store's claim is writable where the Job writes to the store
// (backup) or removes from it (delete), and read-only where it only reads.
func TestBuildAgentJob_VolumeStoreWritableOnlyToWriteOrDelete(t *testing.T) {
	store := &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "vol", Namespace: "shop"},
		Spec: backstopv1alpha1.BackupStoreSpec{Volume: &backstopv1alpha1.VolumeStore{ClaimName: "backups"},
			Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}}},
	}
	for _, op := range []agentOp{opBackup, opVerify, opRestore, opDrill, opDelete} {
		spec := agentJobSpec{Op: op, Name: "j", Namespace: "shop", Store: store, ArtifactPath: "shop/orders/b"}
		if op != opDelete {
			spec.Target = testTarget()
		}
		c := buildAgentJob(DefaultAgentOptions(), spec).Spec.Template.Spec.Containers[0]
		var mount *corev1.VolumeMount
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].MountPath == mountStore {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Fatalf("%s: the store's claim is not mounted: %+v", op, c.VolumeMounts)
		}
		if want := op != opBackup && op != opDelete; mount.ReadOnly != want {
			t.Errorf("%s: the store's claim is mounted readOnly=%v, want %v", op, mount.ReadOnly, want)
		}
	}
}

// A database target's CA bundle is mounted from its Secret and named to
// the agent, which hands it to pg_dump, psql or the MariaDB client.
func TestBuildAgentJob_DatabaseCA(t *testing.T) {
	target := testTarget()
	target.Spec.Postgres.TLSMode = backstopv1alpha1.TLSVerifyFull
	target.Spec.Postgres.CASecretRef = &backstopv1alpha1.SecretKeySelector{Name: "db-tls", Key: "ca.crt"}
	for _, op := range []agentOp{opBackup, opRestore, opVerify} {
		pod := buildAgentJob(DefaultAgentOptions(), agentJobSpec{Op: op, Name: "j", Namespace: "shop", Target: target, Store: testStore(), ArtifactPath: "shop/orders/b"}).Spec.Template.Spec
		if args := strings.Join(pod.Containers[0].Args, " "); !strings.Contains(args, "--tls-mode verify-full --ca-file /var/run/backstop/db-ca/ca.crt") {
			t.Errorf("%s: args %q do not name the CA file", op, args)
		}
		found := false
		for _, v := range pod.Volumes {
			if s := v.Secret; s != nil && s.SecretName == "db-tls" && len(s.Items) == 1 && s.Items[0].Key == "ca.crt" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: the CA Secret is not mounted: %+v", op, pod.Volumes)
		}
	}
}

// Jobs that read an artifact are told the digest of the data they must find
// there; backup and delete Jobs are not.
func TestBuildAgentJob_ExpectedDigest(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, op := range []agentOp{opBackup, opVerify, opRestore, opDrill, opDelete} {
		spec := agentJobSpec{Op: op, Name: "j", Namespace: "shop", Store: testStore(), ArtifactPath: "shop/orders/b", ExpectSHA256: sum}
		if op != opDelete {
			spec.Target = testTarget()
		}
		args := strings.Join(buildAgentJob(DefaultAgentOptions(), spec).Spec.Template.Spec.Containers[0].Args, " ")
		if got, want := strings.Contains(args, "--expect-sha256 "+sum), op != opBackup && op != opDelete; got != want {
			t.Errorf("%s: --expect-sha256 given = %v, want %v: %s", op, got, want, args)
		}
	}
}
