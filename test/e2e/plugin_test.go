package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/humanize"
	"github.com/backstop-io/backstop/internal/kubectlplugin"
)

// cli runs the backstop binary installed as kubectl-backstop, as kubectl
// runs a plugin.
type cli struct {
	t    *testing.T
	path string
	env  []string
}

type cliResult struct {
	stdout, stderr string
	code           int
}

func newCLI(t *testing.T, e *env) *cli {
	dir := t.TempDir()
	path := filepath.Join(dir, "kubectl-backstop")
	if err := os.Symlink(e.bin, path); err != nil {
		t.Fatal(err)
	}
	return &cli{t: t, path: path, env: append(os.Environ(), "KUBECONFIG="+e.cluster.KubeconfigPath)}
}

func (c *cli) run(stdin string, args ...string) cliResult {
	c.t.Helper()
	cmd := exec.Command(c.path, args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	go func() {
		<-ctx.Done()
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}()
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("running kubectl-backstop %s: %v", strings.Join(args, " "), err)
	}
	c.t.Logf("$ kubectl backstop %s\n%s%s(exit %d)", strings.Join(args, " "), res.stdout, res.stderr, res.code)
	return res
}

// lineWith is the line of out that contains every one of words, or "".
func lineWith(out string, words ...string) string {
	for _, l := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return l
		}
	}
	return ""
}

func TestKubectlPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	e := newEnv(t)
	k := newCLI(t, e)
	g := NewWithT(t)
	ctx := context.Background()

	// A namespace with a files target, a schedule that is not due soon and a
	// healthy store.
	ns := e.namespace(t)
	store := e.s3Store("minio", ns)
	e.create(t, store)
	target, data := e.uploadsTarget(ns)
	g.Expect(os.MkdirAll(data, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(data, "a.txt"), bytes.Repeat([]byte("alpha\n"), 2000), 0o644)).To(Succeed())
	e.create(t, target)
	sched := &backstopv1alpha1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns},
		Spec: backstopv1alpha1.BackupScheduleSpec{
			TargetRef:      backstopv1alpha1.LocalObjectReference{Name: target.Name},
			StoreRef:       backstopv1alpha1.LocalObjectReference{Name: store.Name},
			Schedule:       "0 3 * * *",
			DeletionPolicy: backstopv1alpha1.DeletionRetain,
		},
	}
	e.create(t, sched)
	e.waitReady(t, store)
	e.waitReady(t, target)
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(ctx, client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Status.NextScheduleTime).NotTo(BeNil())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	t.Run("StatusBeforeAnyBackup", func(t *testing.T) {
		r := k.run("", "status", "-n", ns)
		g := NewWithT(t)
		g.Expect(r.code).To(Equal(0))
		g.Expect(r.stdout).To(HavePrefix("Namespace: " + ns + "\n"))
		g.Expect(r.stdout).To(ContainSubstring("TARGET"))
		g.Expect(lineWith(r.stdout, "uploads", "<none>", "minio (Ready)", "NoBackup")).NotTo(BeEmpty())
	})

	var bkName string
	t.Run("BackupScheduleWait", func(t *testing.T) {
		g := NewWithT(t)
		r := k.run("", "backup", "nightly", "-n", ns, "--wait")
		g.Expect(r.code).To(Equal(0), r.stderr)
		g.Expect(r.stdout).To(MatchRegexp(`backup\.backstop\.io/nightly-manual-\S+ created \(target uploads, store minio, settings of schedule nightly\)`))
		g.Expect(r.stdout).To(ContainSubstring("Succeeded"))
		g.Expect(r.stdout).To(MatchRegexp(`Backup nightly-manual-\S+ succeeded: \S+ stored`))
		bkName = strings.TrimPrefix(strings.Fields(lineWith(r.stdout, "created"))[0], "backup.backstop.io/")

		bk := &backstopv1alpha1.Backup{}
		g.Expect(e.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: bkName}, bk)).To(Succeed())
		g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded))
		// The schedule's settings, but on demand: not in its history.
		g.Expect(bk.Spec.ScheduleRef).To(BeNil())
		g.Expect(bk.Spec.DeletionPolicy).To(Equal(backstopv1alpha1.DeletionRetain))
		g.Expect(bk.Spec.StoreRef.Name).To(Equal("minio"))
		// The human size the Size column shows, next to the exact bytes.
		g.Expect(bk.Status.StoredBytes).To(BeNumerically(">", 0))
		g.Expect(bk.Status.StoredSize).To(Equal(humanize.Bytes(bk.Status.StoredBytes)))
		g.Expect(r.stdout).To(ContainSubstring(bk.Status.StoredSize + " stored"))
	})
	if bkName == "" {
		t.FailNow()
	}

	t.Run("SizeColumnIsHuman", func(t *testing.T) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		g := NewWithT(t)
		scheme := runtime.NewScheme()
		g.Expect(apiextensionsv1.AddToScheme(scheme)).To(Succeed())
		c, err := client.New(e.cluster.Config, client.Options{Scheme: scheme})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.Get(ctx, client.ObjectKey{Name: "backups.backstop.io"}, crd)).To(Succeed())
		var found bool
		for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
			if c.Name == "Size" {
				found = true
				g.Expect(c.JSONPath).To(Equal(".status.storedSize"))
				g.Expect(c.Type).To(Equal("string"))
			}
		}
		g.Expect(found).To(BeTrue())
	})

	t.Run("StatusAfterBackup", func(t *testing.T) {
		g := NewWithT(t)
		bk := &backstopv1alpha1.Backup{}
		g.Expect(e.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: bkName}, bk)).To(Succeed())
		r := k.run("", "status", "-n", ns)
		g.Expect(r.code).To(Equal(0))
		line := lineWith(r.stdout, "uploads", bkName)
		g.Expect(line).NotTo(BeEmpty())
		g.Expect(strings.Fields(line)).To(Equal([]string{"uploads", "files", bkName, strings.Fields(line)[3], bk.Status.StoredSize, "-", "in", strings.Fields(line)[7], "minio", "(Ready)", "OK"}))

		r = k.run("", "status", "-n", ns, "-o", "json")
		g.Expect(r.code).To(Equal(0))
		var out []kubectlplugin.NamespaceStatus
		g.Expect(json.Unmarshal([]byte(r.stdout), &out)).To(Succeed())
		g.Expect(out).To(HaveLen(1))
		g.Expect(out[0].Targets).To(HaveLen(1))
		g.Expect(out[0].Targets[0].LastSuccessfulBackup).To(Equal(bkName))
		g.Expect(out[0].Targets[0].StoredBytes).To(Equal(bk.Status.StoredBytes))
		g.Expect(out[0].Targets[0].NextRun.Time).To(BeTemporally("==", sched.Status.NextScheduleTime.Time))

		r = k.run("", "status", "-n", ns, "-o", "yaml")
		g.Expect(r.code).To(Equal(0))
		g.Expect(r.stdout).To(ContainSubstring("lastSuccessfulBackup: " + bkName))
	})

	t.Run("Describe", func(t *testing.T) {
		g := NewWithT(t)
		r := k.run("", "describe", bkName, "-n", ns)
		g.Expect(r.code).To(Equal(0), r.stderr)
		g.Expect(r.stdout).To(MatchRegexp(`(?m)^Phase:\s+Succeeded$`))
		g.Expect(r.stdout).To(MatchRegexp(`(?m)^Schedule:\s+<none> \(on demand\)$`))
		g.Expect(r.stdout).To(MatchRegexp(`(?m)^  Manifest:\s+` + ns + "/uploads/" + bkName + `/manifest\.json$`))
		g.Expect(lineWith(r.stdout, "Ready", "True", "Succeeded")).NotTo(BeEmpty())
		g.Expect(r.stdout).To(ContainSubstring("Events:"))
		g.Expect(lineWith(r.stdout, "Normal", "Succeeded")).NotTo(BeEmpty())

		r = k.run("", "describe", "backup/"+bkName, "-n", ns, "-o", "json")
		g.Expect(r.code).To(Equal(0))
		var bk backstopv1alpha1.Backup
		g.Expect(json.Unmarshal([]byte(r.stdout), &bk)).To(Succeed())
		g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded))
	})

	t.Run("VerifyByBackupName", func(t *testing.T) {
		g := NewWithT(t)
		idFile := filepath.Join(t.TempDir(), "identity.txt")
		g.Expect(os.WriteFile(idFile, []byte(e.identity.String()+"\n"), 0o600)).To(Succeed())
		v := *k
		v.env = append(append([]string{}, k.env...), "AWS_ACCESS_KEY_ID="+e.minio.AccessKey, "AWS_SECRET_ACCESS_KEY="+e.minio.SecretKey)
		r := v.run("", "verify", bkName, "-n", ns, "--identity-file", idFile)
		g.Expect(r.code).To(Equal(0), r.stderr)
		g.Expect(r.stdout).To(ContainSubstring("Verified"))

		out := filepath.Join(t.TempDir(), "dump.tar")
		r = v.run("", "decrypt", bkName, "--namespace="+ns, "--identity-file", idFile, "--output", out)
		g.Expect(r.code).To(Equal(0), r.stderr)
		st, err := os.Stat(out)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(st.Size()).To(BeNumerically(">", 12000))

		// The manifest needs the store's credentials only.
		r = v.run("", "manifest", bkName, "-n", ns)
		g.Expect(r.code).To(Equal(0), r.stderr)
		var m struct {
			Engine string `json:"engine"`
			SHA256 string `json:"sha256"`
		}
		g.Expect(json.Unmarshal([]byte(r.stdout), &m)).To(Succeed())
		bk := &backstopv1alpha1.Backup{}
		g.Expect(e.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: bkName}, bk)).To(Succeed())
		g.Expect(m.Engine).To(Equal("files"))
		g.Expect(m.SHA256).To(Equal(bk.Status.SHA256))
		r = k.run("", "manifest", bkName, "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(ContainSubstring("no S3 credentials"))

		// Without the identity it fails, non-zero, in one line.
		r = v.run("", "verify", bkName, "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(strings.Count(strings.TrimSpace(r.stderr), "\n")).To(Equal(0))
	})

	var rsName string
	t.Run("RestoreAsksFirst", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(os.WriteFile(filepath.Join(data, "a.txt"), []byte("changed"), 0o644)).To(Succeed())
		restores := func() int {
			l := &backstopv1alpha1.RestoreList{}
			g.Expect(e.k8s.List(ctx, l, client.InNamespace(ns))).To(Succeed())
			return len(l.Items)
		}
		// No terminal and no --yes: refused, nothing created.
		r := k.run("uploads\n", "restore", bkName, "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stdout).To(ContainSubstring("This WIPES every file under uploads of PersistentVolumeClaim app-data"))
		g.Expect(r.stderr).To(Equal("kubectl backstop restore: refusing to restore without confirmation: stdin is not a terminal; pass --yes to replace the data\n"))
		g.Expect(restores()).To(Equal(0))

		// A person at a terminal who does not confirm: nothing created.
		var out, errb bytes.Buffer
		io := kubectlplugin.IO{Stdin: strings.NewReader("no\n"), Stdout: &out, Stderr: &errb, StdinIsTerminal: true}
		code := kubectlplugin.Main(ctx, "kubectl backstop", []string{"restore", bkName, "-n", ns, "--kubeconfig", e.cluster.KubeconfigPath}, io)
		g.Expect(code).To(Equal(1))
		g.Expect(out.String()).To(ContainSubstring("Type the target's name (uploads) to go on: "))
		g.Expect(errb.String()).To(Equal("kubectl backstop restore: not confirmed; nothing was changed\n"))
		g.Expect(restores()).To(Equal(0))

		// One who types the name: restored.
		out.Reset()
		errb.Reset()
		io.Stdin = strings.NewReader("uploads\n")
		code = kubectlplugin.Main(ctx, "kubectl backstop", []string{"restore", bkName, "--wait", "-n", ns, "--kubeconfig", e.cluster.KubeconfigPath}, io)
		g.Expect(code).To(Equal(0), errb.String())
		g.Expect(out.String()).To(MatchRegexp(`Restore \S+ succeeded`))
		g.Expect(restores()).To(Equal(1))
		got, err := os.ReadFile(filepath.Join(data, "a.txt"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(got)).To(Equal(strings.Repeat("alpha\n", 2000)))

		// --yes needs no terminal.
		g.Expect(os.WriteFile(filepath.Join(data, "a.txt"), []byte("changed again"), 0o644)).To(Succeed())
		r = k.run("", "restore", bkName, "-n", ns, "--yes", "--lock-timeout", "500ms")
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(ContainSubstring("lockTimeout must be between 1s and 1h"))
		g.Expect(restores()).To(Equal(1), "a refused Restore is not created")
		r = k.run("", "restore", bkName, "-n", ns, "--yes", "--wait", "--safety-backup", "--lock-timeout", "30s")
		g.Expect(r.code).To(Equal(0), r.stderr)
		g.Expect(restores()).To(Equal(2))
		got, _ = os.ReadFile(filepath.Join(data, "a.txt"))
		g.Expect(string(got)).To(Equal(strings.Repeat("alpha\n", 2000)))

		rsName = strings.TrimPrefix(strings.Fields(lineWith(r.stdout, "restore.backstop.io/"))[0], "restore.backstop.io/")
		r = k.run("", "describe", rsName, "-n", ns)
		g.Expect(r.code).To(Equal(0))
		g.Expect(r.stdout).To(MatchRegexp(`(?m)^Source:\s+Backup ` + bkName + `$`))
		rs := &backstopv1alpha1.Restore{}
		g.Expect(e.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: rsName}, rs)).To(Succeed())
		g.Expect(rs.Spec.SafetyBackup).NotTo(BeNil())
		g.Expect(rs.Spec.LockTimeout).To(Equal(&metav1.Duration{Duration: 30 * time.Second}))
		g.Expect(rs.Status.SafetyBackupName).NotTo(BeEmpty())
		g.Expect(r.stdout).To(MatchRegexp(`(?m)^Safety Backup:\s+` + rs.Status.SafetyBackupName + `$`))
		g.Expect(r.stdout).To(MatchRegexp(`(?m)^Lock Timeout:\s+30s$`))
		g.Expect(r.stdout).To(MatchRegexp(`(?m)^Phase:\s+Succeeded$`))
	})

	t.Run("Logs", func(t *testing.T) {
		// The pod runner is no kubelet: the API server cannot fetch logs
		// from it. What is checked here is the way from the Backup to its
		// Job's pod, and a clear one-line error.
		g := NewWithT(t)
		r := k.run("", "logs", bkName, "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(HavePrefix("kubectl backstop logs: logs of pod " + bkName + "-backup-"))
		g.Expect(strings.Count(strings.TrimSpace(r.stderr), "\n")).To(Equal(0))

		// A Restore's first pod is its verify Job's.
		r = k.run("", "logs", "restore/"+rsName, "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stdout).To(HavePrefix("==> pod " + rsName + "-verify-"))
		g.Expect(r.stderr).To(HavePrefix("kubectl backstop logs: logs of pod " + rsName + "-verify-"))

		r = k.run("", "logs", "backup/nope", "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(Equal(`kubectl backstop logs: Backup "nope" not found in namespace "` + ns + `"` + "\n"))
	})

	t.Run("SuspendResume", func(t *testing.T) {
		g := NewWithT(t)
		r := k.run("", "suspend", "nightly", "-n", ns)
		g.Expect(r.code).To(Equal(0))
		g.Expect(r.stdout).To(Equal("backupschedule.backstop.io/nightly suspended\n"))
		g.Expect(e.k8s.Get(ctx, client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Spec.Suspend).To(BeTrue())
		g.Expect(lineWith(k.run("", "status", "-n", ns).stdout, "uploads", "suspended")).NotTo(BeEmpty())

		r = k.run("", "resume", "nightly", "-n", ns)
		g.Expect(r.code).To(Equal(0))
		g.Expect(r.stdout).To(Equal("backupschedule.backstop.io/nightly resumed\n"))
		g.Expect(e.k8s.Get(ctx, client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Spec.Suspend).To(BeFalse())
	})

	// A second namespace whose store cannot be reached: status fails.
	bad := e.namespace(t)
	badStore := e.s3Store("minio", bad)
	badStore.Spec.S3.Endpoint = "http://127.0.0.1:1"
	e.create(t, badStore)
	e.create(t, &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: bad},
		Spec:       backstopv1alpha1.BackupTargetSpec{Files: &backstopv1alpha1.FilesTarget{ClaimName: "app-data"}},
	})
	e.create(t, &backstopv1alpha1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: bad},
		Spec: backstopv1alpha1.BackupScheduleSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: "uploads"},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: "minio"},
			Schedule:  "0 3 * * *",
		},
	})

	t.Run("StatusFailsWhenAStoreFails", func(t *testing.T) {
		g := NewWithT(t)
		var r cliResult
		g.Eventually(func() int {
			r = k.run("", "status", "-n", bad)
			return r.code
		}).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Equal(1))
		g.Expect(lineWith(r.stdout, "uploads", "Failing: BackupStore minio:")).NotTo(BeEmpty())

		r = k.run("", "status", "-A")
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stdout).To(ContainSubstring("Namespace: " + ns + "\n"))
		g.Expect(r.stdout).To(ContainSubstring("Namespace: " + bad + "\n"))
	})

	t.Run("BackupOfTargetWaitFails", func(t *testing.T) {
		// A target with no schedule whose directory is not there: the
		// namespace's only store is used, and the failure is the exit code.
		e.create(t, &backstopv1alpha1.BackupTarget{
			ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: ns},
			Spec:       backstopv1alpha1.BackupTargetSpec{Files: &backstopv1alpha1.FilesTarget{ClaimName: "app-data", Path: "not-there"}},
		})
		g := NewWithT(t)
		r := k.run("", "backup", "broken", "-n", ns, "--wait")
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stdout).To(ContainSubstring("(target broken, store minio, settings of no schedule)"))
		g.Expect(r.stderr).To(MatchRegexp(`^kubectl backstop backup: Backup broken-manual-\S+ failed: \S+: .+\n$`))
		r = k.run("", "status", "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(lineWith(r.stdout, "broken", "Failing: Backup broken-manual-")).NotTo(BeEmpty())
		g.Expect(lineWith(r.stdout, "uploads", "OK")).NotTo(BeEmpty())
	})

	t.Run("Errors", func(t *testing.T) {
		g := NewWithT(t)
		r := k.run("", "describe", "nope", "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(Equal(`kubectl backstop describe: no Backup or Restore "nope" in namespace "` + ns + `"` + "\n"))

		r = k.run("", "suspend", "nope", "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(Equal(`kubectl backstop suspend: BackupSchedule "nope" not found in namespace "` + ns + `"` + "\n"))

		r = k.run("", "backup", "nope", "-n", ns)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(Equal(`kubectl backstop backup: no BackupSchedule or BackupTarget "nope" in namespace "` + ns + `"` + "\n"))

		r = k.run("", "restore", "-n", ns)
		g.Expect(r.code).To(Equal(2))
		g.Expect(r.stderr).To(Equal("kubectl backstop restore: missing <backup>\n"))

		r = k.run("", "status", "-n", ns, "--kubeconfig", filepath.Join(t.TempDir(), "none"))
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(HavePrefix("kubectl backstop status: no cluster: "))

		// A cluster that is not there.
		cfg, err := clientcmd.LoadFromFile(e.cluster.KubeconfigPath)
		g.Expect(err).NotTo(HaveOccurred())
		for _, c := range cfg.Clusters {
			c.Server = "https://127.0.0.1:1"
		}
		down := filepath.Join(t.TempDir(), "down")
		g.Expect(clientcmd.WriteToFile(*cfg, down)).To(Succeed())
		r = k.run("", "status", "-n", ns, "--kubeconfig", down)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(HavePrefix("kubectl backstop status: cannot reach the cluster at https://127.0.0.1:1: "))
		g.Expect(strings.Count(strings.TrimSpace(r.stderr), "\n")).To(Equal(0))

		// A user with no rights in the namespace.
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: ns}}
		e.create(t, sa)
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrInt64(600)}}
		tr, err = e.cluster.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "nobody", tr, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		cfg, _ = clientcmd.LoadFromFile(e.cluster.KubeconfigPath)
		for _, a := range cfg.AuthInfos {
			a.ClientCertificate, a.ClientKey, a.ClientCertificateData, a.ClientKeyData = "", "", nil, nil
			a.Token = tr.Status.Token
		}
		nobody := filepath.Join(t.TempDir(), "nobody")
		g.Expect(clientcmd.WriteToFile(*cfg, nobody)).To(Succeed())
		r = k.run("", "status", "-n", ns, "--kubeconfig", nobody)
		g.Expect(r.code).To(Equal(1))
		g.Expect(r.stderr).To(HavePrefix("kubectl backstop status: no permission: "))
		g.Expect(r.stderr).To(ContainSubstring("system:serviceaccount:" + ns + ":nobody"))
	})

	t.Run("Completion", func(t *testing.T) {
		g := NewWithT(t)
		r := k.run("", "completion", "bash")
		g.Expect(r.code).To(Equal(0))
		script := filepath.Join(t.TempDir(), "backstop.bash")
		g.Expect(os.WriteFile(script, []byte(r.stdout), 0o644)).To(Succeed())
		// The script parses and completes a Backup name from the cluster.
		probe := exec.Command("bash", "-c", `source "$1"; PATH="$(dirname "$2"):$PATH"
COMP_WORDS=(kubectl-backstop restore -n "$3" ""); COMP_CWORD=4; _backstop_complete; echo "${COMPREPLY[@]}"
COMP_WORDS=(kubectl-backstop de); COMP_CWORD=1; _backstop_complete; echo "${COMPREPLY[@]}"`, "bash", script, k.path, ns)
		probe.Env = k.env
		out, err := probe.CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), string(out))
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		g.Expect(lines).To(HaveLen(2))
		backups := &backstopv1alpha1.BackupList{}
		g.Expect(e.k8s.List(ctx, backups, client.InNamespace(ns))).To(Succeed())
		var names []string
		for _, b := range backups.Items {
			names = append(names, b.Name)
		}
		g.Expect(names).To(ContainElement(bkName))
		g.Expect(strings.Fields(lines[0])).To(ConsistOf(names))
		g.Expect(lines[1]).To(Equal("describe decrypt"))

		r = k.run("", "completion", "zsh")
		g.Expect(r.code).To(Equal(0))
		g.Expect(r.stdout).To(HavePrefix("#compdef kubectl-backstop backstop\n"))
	})
}

func ptrInt64(v int64) *int64 { return &v }
