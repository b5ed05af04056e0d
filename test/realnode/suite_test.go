package realnode_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/testutil/assets"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
	"github.com/backstop-io/backstop/internal/testutil/minio"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
	"github.com/backstop-io/backstop/test/install"
	"github.com/backstop-io/backstop/test/realnode"
)

const (
	image        = "ghcr.io/backstop-io/backstop:dev"
	release      = "backstop"
	operatorNS   = "backstop-system"
	storePrefix  = "realnode"
	appUID       = 1000
	appGID       = 1000
	otherGroupID = 2000
)

// suite is one real node with the operator installed by its chart, and the
// servers its Jobs reach on the node's bridge address.
type suite struct {
	node     *realnode.Node
	k8s      client.Client
	helm     string
	minio    *minio.Server
	pg       *pgserver.Server
	maria    *mariadbserver.Server
	identity *age.X25519Identity
	ns       string
}

// TestRealNode is what a user's cluster would show: the image built from
// the Dockerfile, installed by `helm install`, its Jobs run by a kubelet
// under Pod Security "restricted".
func TestRealNode(t *testing.T) {
	archive := buildImage(t)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = backstopv1alpha1.AddToScheme(scheme)
	n := realnode.Start(t, realnode.Options{Images: []string{archive}, Scheme: scheme})
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{
		node:     n,
		k8s:      n.Client,
		helm:     install.Tool(t, install.Helm3),
		minio:    minio.StartOn(t, realnode.HostIP),
		pg:       pgserver.StartOn(t, realnode.HostIP),
		maria:    mariadbserver.StartOn(t, realnode.HostIP),
		identity: id,
	}
	s.ns = s.restrictedNamespace(t, "apps")
	t.Cleanup(func() {
		if t.Failed() {
			s.dump(t)
		}
	})

	t.Run("HelmInstall", s.testHelmInstall)
	t.Run("ScheduledBackupsAndRestores", s.testScheduledBackupsAndRestores)
	t.Run("DrillsInTheImage", s.testDrills)
	t.Run("PluginLogsFromTheKubelet", s.testPluginLogs)
	t.Run("CorruptedArtifactRefused", s.testCorruptedArtifact)
	t.Run("OperatorPodDeletedMidBackup", s.testOperatorPodDeleted)
	t.Run("HelmUpgradeAndUninstall", s.testHelmUpgradeAndUninstall)
}

// buildImage builds the Dockerfile with hack/image.sh (cached layers make a
// rebuild of an unchanged tree quick) and returns the archive.
func buildImage(t *testing.T) string {
	t.Helper()
	root, err := assets.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "bin", "backstop-image.tar")
	cmd := exec.Command("bash", filepath.Join(root, "hack", "image.sh"), out)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "IMG="+image)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/image.sh: %v\n%s", err, tail(string(b), 40))
	}
	return out
}

// restrictedNamespace makes a namespace where Pod Security Admission
// enforces the restricted profile.
func (s *suite) restrictedNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	s.create(t, ns)
	return name
}

func (s *suite) testHelmInstall(t *testing.T) {
	g := NewWithT(t)
	s.restrictedNamespace(t, operatorNS)
	s.runHelm(t, "install", release, install.ChartDir, "--namespace", operatorNS,
		"--set", "image.tag=dev", "--set", "image.pullPolicy=IfNotPresent",
		"--wait", "--timeout", "5m")
	pod := s.operatorPod(t, "")

	// The operator holds its Lease.
	g.Eventually(func(g Gomega) {
		lease := &coordinationv1.Lease{}
		g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNS, Name: "backstop.backstop.io"}, lease)).To(Succeed())
		g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).To(HavePrefix(pod.Name))
	}).WithTimeout(2 * time.Minute).Should(Succeed())

	// Its metrics, through its Service, for a user the API server trusts.
	svc := &corev1.Service{}
	g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNS, Name: release + "-metrics"}, svc)).To(Succeed())
	g.Eventually(func() (string, error) {
		return s.get(fmt.Sprintf("https://%s:8443/metrics", svc.Spec.ClusterIP), s.node.Config.BearerToken)
	}).WithTimeout(2*time.Minute).Should(ContainSubstring("controller_runtime_reconcile_total"), "the operator's metrics through its Service")
	body, err := s.get(fmt.Sprintf("https://%s:8443/metrics", svc.Spec.ClusterIP), "")
	g.Expect(err).To(HaveOccurred(), "metrics without a token: %s", tail(body, 3))

	// The secrets the tests' Jobs use, and a store on MinIO.
	s.secret(t, "minio", map[string]string{"accessKeyID": s.minio.AccessKey, "secretAccessKey": s.minio.SecretKey})
	s.secret(t, "age", map[string]string{"identity.txt": s.identity.String() + "\n"})
	s.create(t, &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: s.ns},
		Spec: backstopv1alpha1.BackupStoreSpec{
			S3: &backstopv1alpha1.S3Store{
				Bucket:               s.minio.Bucket,
				Prefix:               storePrefix,
				Endpoint:             "http://" + s.minio.Endpoint,
				ForcePathStyle:       true,
				CredentialsSecretRef: backstopv1alpha1.LocalObjectReference{Name: "minio"},
			},
			Encryption: backstopv1alpha1.Encryption{Recipients: &backstopv1alpha1.AgeRecipients{
				PublicKeys:        []string{s.identity.Recipient().String()},
				IdentitySecretRef: &backstopv1alpha1.SecretKeySelector{Name: "age", Key: "identity.txt"},
			}},
		},
	})
	s.waitReady(t, &backstopv1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: s.ns}})
}

// testScheduledBackupsAndRestores backs up PostgreSQL, MariaDB and a files
// target on a local PersistentVolume in use by an application pod, through
// schedules, then restores each.
func (s *suite) testScheduledBackupsAndRestores(t *testing.T) {
	g := NewWithT(t)
	pgTarget := s.postgresTarget(t, "shop")
	pgWant := s.pgSums(t, "shop")
	mariaTarget := s.mariadbTarget(t, "inventory")
	mariaWant := s.mariaSums(t, "inventory")
	data := s.filesVolume(t)
	filesWant := tree(t, data)
	app := s.appPod(t)

	// Three schedules firing at the next minute; suspended once they have.
	var scheds []string
	for _, target := range []string{pgTarget, mariaTarget, "uploads"} {
		name := target + "-every-minute"
		scheds = append(scheds, name)
		s.create(t, &backstopv1alpha1.BackupSchedule{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: backstopv1alpha1.BackupScheduleSpec{
				TargetRef: backstopv1alpha1.LocalObjectReference{Name: target},
				StoreRef:  backstopv1alpha1.LocalObjectReference{Name: "minio"},
				Schedule:  "* * * * *",
			},
		})
	}
	backups := map[string]*backstopv1alpha1.Backup{}
	for i, sched := range scheds {
		bk := s.firstBackupOf(t, sched)
		s.suspend(t, sched)
		g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s: %s", bk.Name, bk.Status.Reason, bk.Status.Message)
		g.Expect(s.keys(t, bk.Status.ArtifactPath)).To(ConsistOf(
			path.Join(storePrefix, bk.Status.ArtifactPath, "manifest.json"),
			path.Join(storePrefix, bk.Status.ArtifactPath, bk.Status.DataObject)), "the artifact in MinIO")
		backups[[]string{"postgres", "mysql", "files"}[i]] = bk
	}

	// The files Job ran beside the application, which holds the
	// ReadWriteOnce claim, and the Job's spec says so.
	jobs := s.jobs(t, controllers.LabelBackup, backups["files"].Name)
	g.Expect(jobs).To(HaveLen(1))
	terms := jobs[0].Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	g.Expect(terms).To(HaveLen(1))
	g.Expect(terms[0].MatchFields).To(ConsistOf(corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{app.Spec.NodeName}}))
	// Backing up changed nothing of the application's files: no fsGroup
	// re-grouped them.
	g.Expect(tree(t, data)).To(Equal(filesWant))

	// Change every target, then restore each from its backup.
	s.pg.MustQuery(t, "shop", `DELETE FROM orders WHERE id % 3 = 0; UPDATE customers SET name = 'changed'; CREATE TABLE stray (x int);`)
	s.maria.MustQuery(t, "inventory", "UPDATE items SET price = 1.00 WHERE id = 3; DELETE FROM items WHERE id = 1; CREATE TABLE extra (x INT);")
	g.Expect(os.WriteFile(filepath.Join(data, "a.txt"), []byte("changed\n"), 0o640)).To(Succeed())
	g.Expect(os.Remove(filepath.Join(data, "sub", "secret.key"))).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(data, "new.txt"), []byte("not in the backup"), 0o644)).To(Succeed())
	g.Expect(s.pgSums(t, "shop")).NotTo(Equal(pgWant))
	g.Expect(s.mariaSums(t, "inventory")).NotTo(Equal(mariaWant))

	for engine, target := range map[string]string{"postgres": pgTarget, "mysql": mariaTarget, "files": "uploads"} {
		s.create(t, &backstopv1alpha1.Restore{
			ObjectMeta: metav1.ObjectMeta{Name: "restore-" + target, Namespace: s.ns},
			Spec: backstopv1alpha1.RestoreSpec{
				TargetRef: backstopv1alpha1.LocalObjectReference{Name: target},
				Source:    backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: backups[engine].Name}},
			},
		})
	}
	for _, target := range []string{pgTarget, mariaTarget, "uploads"} {
		rs := s.waitRestore(t, "restore-"+target)
		g.Expect(rs.Status.Phase).To(Equal(backstopv1alpha1.RestoreSucceeded), "%s: %s: %s", rs.Name, rs.Status.Reason, rs.Status.Message)
	}
	g.Expect(s.pgSums(t, "shop")).To(Equal(pgWant))
	g.Expect(s.mariaSums(t, "inventory")).To(Equal(mariaWant))
	g.Expect(tree(t, data)).To(Equal(filesWant), "the restored files, with their owners, groups and modes")
}

// testDrills drills the first backup of each schedule of
// ScheduledBackupsAndRestores in the image, on the kubelet, under Pod
// Security "restricted": the throwaway PostgreSQL and MariaDB servers start
// inside the drill Jobs' pods, as the image's non-root user, and the files
// backup is extracted into the drill's scratch volume.
func (s *suite) testDrills(t *testing.T) {
	g := NewWithT(t)
	checks := map[string][]backstopv1alpha1.DrillCheck{
		"postgres": {{Name: "orders", SQL: "SELECT count(*) FROM orders", Expect: "2000"}},
		"mysql":    {{Name: "items", SQL: "SELECT COUNT(*) > 0 FROM items", Expect: "1"}},
	}
	drills := map[string]string{}
	for engine, sched := range map[string]string{"postgres": "pg-shop-every-minute", "mysql": "maria-inventory-every-minute", "files": "uploads-every-minute"} {
		bk := s.firstBackupOf(t, sched)
		name := "drill-" + engine
		drills[name] = bk.Name
		s.create(t, &backstopv1alpha1.BackupDrill{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: backstopv1alpha1.BackupDrillSpec{
				BackupRef:     backstopv1alpha1.LocalObjectReference{Name: bk.Name},
				DrillSettings: backstopv1alpha1.DrillSettings{Checks: checks[engine]},
			},
		})
	}
	for name, backup := range drills {
		dr := &backstopv1alpha1.BackupDrill{}
		g.Eventually(func(g Gomega) {
			g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: name}, dr)).To(Succeed())
			g.Expect(dr.Status.Phase).To(BeElementOf(backstopv1alpha1.DrillSucceeded, backstopv1alpha1.DrillFailed))
		}).WithTimeout(6*time.Minute).WithPolling(2*time.Second).Should(Succeed(), "BackupDrill %s did not finish", name)
		g.Expect(dr.Status.Phase).To(Equal(backstopv1alpha1.DrillSucceeded), "%s: %s: %s", name, dr.Status.Reason, dr.Status.Message)
		g.Expect(dr.Status.RestoreDuration).NotTo(BeNil())
		for _, c := range dr.Status.Checks {
			g.Expect(c.Passed).To(BeTrue(), "%s: check %s: %s", name, c.Name, c.Message)
		}
		bk := &backstopv1alpha1.Backup{}
		g.Eventually(func(g Gomega) {
			g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: backup}, bk)).To(Succeed())
			c := meta.FindStatusCondition(bk.Status.Conditions, backstopv1alpha1.ConditionVerified)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
		}).WithTimeout(time.Minute).Should(Succeed())
	}
}

// testPluginLogs: `kubectl backstop logs` reads a backup Job's container
// log from the kubelet, through the API server, as a user's kubectl does.
func (s *suite) testPluginLogs(t *testing.T) {
	root, err := assets.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(t.TempDir(), "kubectl-backstop")
	build := exec.Command("go", "build", "-o", plugin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bk := s.firstBackupOf(t, "pg-shop-every-minute")
	cmd := exec.Command(plugin, "logs", bk.Name, "-n", s.ns)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.node.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl backstop logs %s: %v\n%s", bk.Name, err, out)
	}
	// The agent's last line: its result, as the termination message has it.
	if !strings.Contains(string(out), `{"phase":"Succeeded"`) || !strings.Contains(string(out), bk.Status.ArtifactPath) {
		t.Fatalf("kubectl backstop logs %s printed:\n%s", bk.Name, out)
	}
}

func (s *suite) testCorruptedArtifact(t *testing.T) {
	g := NewWithT(t)
	target := s.postgresTarget(t, "ledger")
	s.create(t, onDemand("ledger-good", target))
	bk := s.waitBackup(t, "ledger-good")
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)

	s.pg.MustQuery(t, "ledger", `INSERT INTO customers VALUES (9, 'must survive')`)
	current := s.pgSums(t, "ledger")
	s.minio.FlipBit(t, path.Join(storePrefix, bk.Status.ArtifactPath, bk.Status.DataObject), bk.Status.StoredBytes/2)
	s.create(t, &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "ledger-flipped", Namespace: s.ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target},
			Source:    backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: bk.Name}},
		},
	})
	rs := s.waitRestore(t, "ledger-flipped")
	g.Expect(rs.Status.Phase).To(Equal(backstopv1alpha1.RestoreFailed))
	g.Expect(rs.Status.Reason).To(Equal(backstopv1alpha1.ReasonIntegrityMismatch), rs.Status.Message)
	g.Expect(s.jobs(t, controllers.LabelRestore, rs.Name)).To(HaveLen(1), "only the verify Job ran")
	g.Expect(s.pgSums(t, "ledger")).To(Equal(current), "the target is untouched")
}

// testOperatorPodDeleted deletes the operator's pod while a backup's
// pg_dump waits on a lock: the Deployment's new pod takes over, and there is
// exactly one Job and one Succeeded Backup.
func (s *suite) testOperatorPodDeleted(t *testing.T) {
	g := NewWithT(t)
	target := s.postgresTarget(t, "billing")
	release := s.pg.LockTable(t, "billing", "orders")
	s.create(t, onDemand("billing-across", target))
	s.pg.WaitLockWaiter(t, "billing", "backstop")

	old := s.operatorPod(t, "")
	g.Expect(s.k8s.Delete(context.Background(), old)).To(Succeed())
	s.operatorPod(t, string(old.UID))
	release()

	bk := s.waitBackup(t, "billing-across")
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)
	g.Consistently(func() int { return len(s.jobs(t, controllers.LabelBackup, bk.Name)) }).
		WithTimeout(10*time.Second).Should(Equal(1), "exactly one Job")
	list := &backstopv1alpha1.BackupList{}
	g.Expect(s.k8s.List(context.Background(), list, client.InNamespace(s.ns))).To(Succeed())
	var mine []string
	for _, b := range list.Items {
		if b.Spec.TargetRef.Name == target {
			mine = append(mine, b.Name+"="+string(b.Status.Phase))
		}
	}
	g.Expect(mine).To(ConsistOf("billing-across=Succeeded"))
	g.Expect(s.keys(t, bk.Status.ArtifactPath)).To(HaveLen(2))
}

func (s *suite) testHelmUpgradeAndUninstall(t *testing.T) {
	g := NewWithT(t)
	old := s.operatorPod(t, "")
	s.runHelm(t, "upgrade", release, install.ChartDir, "--namespace", operatorNS, "--reuse-values",
		"--set", "logging.level=debug", "--wait", "--timeout", "5m")
	s.operatorPod(t, string(old.UID))

	// Everything keeps working on the upgraded operator.
	s.waitReady(t, &backstopv1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: s.ns}})
	s.create(t, onDemand("after-upgrade", "pg-shop"))
	bk := s.waitBackup(t, "after-upgrade")
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)

	before := s.keys(t, "")
	g.Expect(before).To(ContainElement(path.Join(storePrefix, bk.Status.ArtifactPath, "manifest.json")))
	s.runHelm(t, "uninstall", release, "--namespace", operatorNS, "--wait", "--timeout", "3m")
	g.Eventually(func() []corev1.Pod {
		pods := &corev1.PodList{}
		g.Expect(s.k8s.List(context.Background(), pods, client.InNamespace(operatorNS))).To(Succeed())
		return pods.Items
	}).WithTimeout(2 * time.Minute).Should(BeEmpty())
	// The backups are the user's: uninstalling the operator leaves them in
	// the store, and their records in the cluster.
	g.Consistently(func() []string { return s.keys(t, "") }).WithTimeout(10 * time.Second).Should(Equal(before))
	g.Expect(s.k8s.Get(context.Background(), client.ObjectKeyFromObject(bk), bk)).To(Succeed())
}

// postgresTarget makes a database with orders and customers, a user the
// pods log in as, and a BackupTarget; it returns the target's name.
func (s *suite) postgresTarget(t *testing.T, db string) string {
	t.Helper()
	s.pg.CreateDatabase(t, db, "")
	s.pg.MustQuery(t, db, `CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL, qty int NOT NULL);
INSERT INTO orders SELECT g, 'item-' || g, g % 7 FROM generate_series(1, 2000) g;
CREATE TABLE customers (id int PRIMARY KEY, name text);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');`)
	name := "pg-" + db
	s.secret(t, name, map[string]string{"password": s.pg.Password})
	s.create(t, &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: backstopv1alpha1.BackupTargetSpec{Postgres: &backstopv1alpha1.PostgresTarget{
			DatabaseConnection: backstopv1alpha1.DatabaseConnection{
				Host:    realnode.HostIP,
				Port:    ptr.To(int32(s.pg.Port)),
				TLSMode: backstopv1alpha1.TLSDisable,
				Credentials: backstopv1alpha1.DatabaseCredentials{
					Username:          s.pg.User,
					PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: name, Key: "password"},
				},
			},
			Database: db,
		}},
	})
	return name
}

func (s *suite) pgSums(t *testing.T, db string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, tbl := range strings.Fields(s.pg.MustQuery(t, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)) {
		sums[tbl] = s.pg.MustQuery(t, db, fmt.Sprintf(`SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %q t`, tbl))
	}
	return sums
}

// mariadbTarget makes a database with a table and a view, a user that logs
// in from the pods' addresses, and a BackupTarget.
func (s *suite) mariadbTarget(t *testing.T, db string) string {
	t.Helper()
	s.maria.CreateDatabase(t, db)
	s.maria.MustQuery(t, db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(8,2));\n"+
		"INSERT INTO items VALUES (1, 'tea', 3.50), (2, 'coffee', 4.20), (3, 'cake', 5.00);\n"+
		"CREATE VIEW cheap AS SELECT name FROM items WHERE price < 4;")
	name := "maria-" + db
	password := s.maria.Password + "-pods"
	// The pods come from the bridge's subnet.
	podHosts := strings.TrimSuffix(realnode.HostIP, "1") + "%"
	s.maria.MustQuery(t, "", fmt.Sprintf("CREATE USER IF NOT EXISTS 'backstop'@'%s' IDENTIFIED BY '%s'; GRANT ALL PRIVILEGES ON *.* TO 'backstop'@'%s';", podHosts, password, podHosts))
	s.secret(t, name, map[string]string{"password": password})
	s.create(t, &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: backstopv1alpha1.BackupTargetSpec{MySQL: &backstopv1alpha1.MySQLTarget{
			DatabaseConnection: backstopv1alpha1.DatabaseConnection{
				Host:    realnode.HostIP,
				Port:    ptr.To(int32(s.maria.Port)),
				TLSMode: backstopv1alpha1.TLSDisable,
				Credentials: backstopv1alpha1.DatabaseCredentials{
					Username:          "backstop",
					PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: name, Key: "password"},
				},
			},
			Databases: []string{db},
		}},
	})
	return name
}

func (s *suite) mariaSums(t *testing.T, db string) string {
	t.Helper()
	return s.maria.MustQuery(t, db, "SELECT GROUP_CONCAT(CONCAT_WS(':', id, name, price) ORDER BY id SEPARATOR '|') FROM items;\n"+
		"SELECT GROUP_CONCAT(name ORDER BY name) FROM cheap;\nSELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '"+db+"';")
}

// filesVolume makes a local PersistentVolume on the node with an
// application's files (owned by the application's user, some by another
// group, with their own modes), a ReadWriteOnce claim bound to it, and the
// files target "uploads"; it returns the files' directory on this machine.
func (s *suite) filesVolume(t *testing.T) string {
	t.Helper()
	g := NewWithT(t)
	root := filepath.Join(realnode.Dir(), "volumes", "app-data")
	data := filepath.Join(root, "uploads")
	g.Expect(os.MkdirAll(filepath.Join(data, "sub"), 0o750)).To(Succeed())
	files := []struct {
		path string
		mode os.FileMode
		gid  int
		body string
	}{
		{"a.txt", 0o640, appGID, "alpha\n"},
		{"sub/secret.key", 0o600, appGID, "key material of the app\n"},
		{"shared.txt", 0o644, otherGroupID, "group of another team\n"},
		{"run.sh", 0o750, appGID, "#!/bin/sh\necho hi\n"},
	}
	for _, f := range files {
		p := filepath.Join(data, f.path)
		g.Expect(os.WriteFile(p, []byte(f.body), f.mode)).To(Succeed())
		g.Expect(os.Chmod(p, f.mode)).To(Succeed())
		g.Expect(os.Chown(p, appUID, f.gid)).To(Succeed())
	}
	for _, d := range []string{root, data, filepath.Join(data, "sub")} {
		g.Expect(os.Chown(d, appUID, appGID)).To(Succeed())
	}
	g.Expect(os.Chmod(filepath.Join(data, "sub"), 0o750)).To(Succeed())

	s.create(t, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "app-data"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: root}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{realnode.NodeName}}},
			}}}},
		},
	})
	s.create(t, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "app-data", Namespace: s.ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(""),
			VolumeName:       "app-data",
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	})
	s.create(t, &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: s.ns},
		Spec: backstopv1alpha1.BackupTargetSpec{Files: &backstopv1alpha1.FilesTarget{
			ClaimName: "app-data", Path: "uploads",
			RunAsUser: ptr.To[int64](appUID), RunAsGroup: ptr.To[int64](appGID),
			SupplementalGroups: []int64{otherGroupID},
		}},
	})
	return data
}

// appPod runs the application that holds the files' claim, as its user,
// and waits for it to run.
func (s *suite) appPod(t *testing.T) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: s.ns},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](appUID), RunAsGroup: ptr.To[int64](appGID),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "app", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"/bin/sleep", "infinity"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "app-data"},
			}}},
		},
	}
	s.create(t, pod)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(s.k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	return pod
}

// tree describes a directory as a user would check it: every path with its
// mode, owner, group, size and content.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d", rel, info.Mode(), st.Uid, st.Gid)
		if info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %q", data)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func onDemand(name, target string) *backstopv1alpha1.Backup {
	return &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: backstopv1alpha1.BackupSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: "minio"},
		},
	}
}

// firstBackupOf waits for a schedule's first Backup to finish.
func (s *suite) firstBackupOf(t *testing.T, sched string) *backstopv1alpha1.Backup {
	t.Helper()
	var name string
	NewWithT(t).Eventually(func(g Gomega) {
		list := &backstopv1alpha1.BackupList{}
		g.Expect(s.k8s.List(context.Background(), list, client.InNamespace(s.ns), client.MatchingLabels{controllers.LabelSchedule: sched})).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty())
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
		name = list.Items[0].Name
	}).WithTimeout(3*time.Minute).WithPolling(time.Second).Should(Succeed(), "schedule %s made no Backup", sched)
	return s.waitBackup(t, name)
}

func (s *suite) suspend(t *testing.T, sched string) {
	t.Helper()
	obj := &backstopv1alpha1.BackupSchedule{ObjectMeta: metav1.ObjectMeta{Name: sched, Namespace: s.ns}}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"suspend":true}}`))
	if err := s.k8s.Patch(context.Background(), obj, patch); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) waitBackup(t *testing.T, name string) *backstopv1alpha1.Backup {
	t.Helper()
	bk := &backstopv1alpha1.Backup{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: name}, bk)).To(Succeed())
		g.Expect(bk.Status.Phase).To(BeElementOf(backstopv1alpha1.BackupSucceeded, backstopv1alpha1.BackupFailed))
	}).WithTimeout(4*time.Minute).WithPolling(time.Second).Should(Succeed(), "Backup %s did not finish", name)
	return bk
}

func (s *suite) waitRestore(t *testing.T, name string) *backstopv1alpha1.Restore {
	t.Helper()
	rs := &backstopv1alpha1.Restore{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(s.k8s.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: name}, rs)).To(Succeed())
		g.Expect(rs.Status.Phase).To(BeElementOf(backstopv1alpha1.RestoreSucceeded, backstopv1alpha1.RestoreFailed))
	}).WithTimeout(5*time.Minute).WithPolling(time.Second).Should(Succeed(), "Restore %s did not finish", name)
	return rs
}

func (s *suite) waitReady(t *testing.T, obj client.Object) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(s.k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		conds := obj.(interface{ GetConditions() []metav1.Condition }).GetConditions()
		ready := metav1.Condition{}
		for _, c := range conds {
			if c.Type == backstopv1alpha1.ConditionReady {
				ready = c
			}
		}
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "Ready: %s: %s", ready.Reason, ready.Message)
	}).WithTimeout(2 * time.Minute).Should(Succeed())
}

// operatorPod waits for the operator's pod, Ready, other than the one with
// UID notUID, and returns it.
func (s *suite) operatorPod(t *testing.T, notUID string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	NewWithT(t).Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(s.k8s.List(context.Background(), pods, client.InNamespace(operatorNS), client.MatchingLabels{"app.kubernetes.io/component": "manager"})).To(Succeed())
		pod = nil
		for i := range pods.Items {
			p := &pods.Items[i]
			if string(p.UID) == notUID || p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					pod = p
				}
			}
		}
		g.Expect(pod).NotTo(BeNil(), "no Ready operator pod")
	}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
	return pod
}

func (s *suite) jobs(t *testing.T, label, value string) []batchv1.Job {
	t.Helper()
	list := &batchv1.JobList{}
	if err := s.k8s.List(context.Background(), list, client.InNamespace(s.ns), client.MatchingLabels{label: value}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// keys lists the objects in MinIO under the store's prefix and p.
func (s *suite) keys(t *testing.T, p string) []string {
	t.Helper()
	keys := s.minio.Keys(t, path.Join(storePrefix, p)+"/")
	sort.Strings(keys)
	return keys
}

func (s *suite) create(t *testing.T, obj client.Object) {
	t.Helper()
	if _, ok := obj.(*corev1.Namespace); !ok && obj.GetNamespace() == "" {
		if _, cluster := obj.(*corev1.PersistentVolume); !cluster {
			obj.SetNamespace(s.ns)
		}
	}
	if err := s.k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func (s *suite) secret(t *testing.T, name string, data map[string]string) {
	t.Helper()
	s.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns}, StringData: data})
}

func (s *suite) runHelm(t *testing.T, args ...string) {
	t.Helper()
	install.Run(t, s.helm, append(args, "--kubeconfig", s.node.Kubeconfig)...)
}

// get fetches a URL of the cluster (a Service's address) with a bearer token.
func (s *suite) get(url, token string) (string, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the operator's self-signed metrics certificate
	}}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(body), nil
}

// dump logs what a user would look at after a failure: the objects, the
// pods and their logs.
func (s *suite) dump(t *testing.T) {
	for _, ns := range []string{s.ns, operatorNS} {
		pods := &corev1.PodList{}
		if err := s.k8s.List(context.Background(), pods, client.InNamespace(ns)); err != nil {
			continue
		}
		for _, p := range pods.Items {
			t.Logf("pod %s/%s %s %v", ns, p.Name, p.Status.Phase, p.Status.Conditions)
			for _, c := range p.Spec.Containers {
				t.Logf("  %s log tail:\n%s", c.Name, tail(s.node.ContainerLog(ns, p.Name, c.Name), 30))
			}
		}
	}
	for _, l := range []client.ObjectList{&backstopv1alpha1.BackupList{}, &backstopv1alpha1.RestoreList{}, &backstopv1alpha1.BackupStoreList{}, &backstopv1alpha1.BackupTargetList{}} {
		if err := s.k8s.List(context.Background(), l, client.InNamespace(s.ns)); err == nil {
			t.Logf("%T: %+v", l, l)
		}
	}
	events, err := s.node.Clientset.CoreV1().Events(s.ns).List(context.Background(), metav1.ListOptions{})
	if err == nil {
		for _, e := range events.Items {
			t.Logf("event %s %s/%s: %s: %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
