// Package e2e runs the operator in-process against a real control plane
// (kube-apiserver, etcd, kube-controller-manager), with the pod runner in
// place of a kubelet, and real PostgreSQL, MariaDB and MinIO servers.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/schedule"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
	"github.com/backstop-io/backstop/test/cluster"
	"github.com/backstop-io/backstop/test/monitoring"
)

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	e := newEnv(t)
	pg := pgserver.Start(t)

	t.Run("ScheduleFiresTwiceAndRetentionPrunes", func(t *testing.T) { testScheduleAndRetention(t, e, pg) })
	t.Run("RestoreFromBackupOnceWithSafetyBackup", func(t *testing.T) { testRestore(t, e, pg) })
	t.Run("RestoreRefusesDamagedArtifactAndWrongIdentity", func(t *testing.T) { testRestoreRefusesBadArtifacts(t, e, pg) })
	t.Run("WrongStoreCredentials", func(t *testing.T) { testWrongCredentials(t, e, pg) })
	t.Run("DatabaseStoppedDuringBackup", func(t *testing.T) { testDatabaseStopped(t, e) })
	t.Run("OperatorRestartMidBackup", func(t *testing.T) { testOperatorRestart(t, e, pg) })
	t.Run("FilesRoundTrip", func(t *testing.T) { testFilesRoundTrip(t, e) })
	t.Run("VolumeStoreDeletionRemovesTheArtifact", func(t *testing.T) { testVolumeStoreDeletion(t, e) })
	t.Run("MariaDBRoundTrip", func(t *testing.T) { testMariaDBRoundTrip(t, e) })
	t.Run("VerifiedTLSWithTheTargetsCA", func(t *testing.T) { testVerifiedTLS(t, e) })
	t.Run("DeletingTheNamespaceIsNotHeldByItsBackups", func(t *testing.T) { testNamespaceDeletion(t, e, pg) })
	t.Run("ScheduleDrillsMarkBackupsVerified", func(t *testing.T) { testScheduleDrills(t, e, pg) })
	// Last, and only meaningful after the subtests above: by now they have
	// set every kind of metric (run alone, it fails on the ones not set).
	t.Run("MetricsTheChartUses", func(t *testing.T) { testMetricsTheChartUses(t, e) })
}

// testMetricsTheChartUses scrapes the operator's /metrics and checks that
// every metric the chart's alerts and Grafana dashboard use is served.
func testMetricsTheChartUses(t *testing.T, e *env) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, f := range []string{"templates/prometheusrule.yaml", "files/grafana-dashboard.json"} {
		data, err := os.ReadFile(filepath.Join(root, "charts", "backstop", f))
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(data))
	}
	used := monitoring.MetricFamilies(texts...)
	if len(used) < 10 {
		t.Fatalf("the chart uses only %v", used)
	}
	resp, err := http.Get("http://" + e.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	served := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		// "# TYPE <name> <type>" heads each family with samples.
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			served[f[2]] = true
		}
	}
	for _, name := range used {
		if !served[name] {
			t.Errorf("the chart uses %s, which the operator's /metrics does not serve", name)
		}
	}
}

// pgTarget makes a database with a table of orders and a target for it.
func pgTarget(t *testing.T, e *env, pg *pgserver.Server, ns, db string) *backstopv1alpha1.BackupTarget {
	t.Helper()
	pg.CreateDatabase(t, db, "")
	pg.MustQuery(t, db, `CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL, qty int NOT NULL);
INSERT INTO orders SELECT g, 'item-' || g, g % 7 FROM generate_series(1, 500) g;
CREATE TABLE customers (id int PRIMARY KEY, name text);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');`)
	name := "pg-" + strings.ReplaceAll(db, "_", "-")
	e.secret(t, ns, name, map[string]string{"password": pg.Password})
	bt := &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: backstopv1alpha1.BackupTargetSpec{Postgres: &backstopv1alpha1.PostgresTarget{
			DatabaseConnection: backstopv1alpha1.DatabaseConnection{
				// tlsMode is left to its default, prefer, as most users leave it.
				Host: pg.Host,
				Port: ptr.To(int32(pg.Port)),
				Credentials: backstopv1alpha1.DatabaseCredentials{
					Username:          pg.User,
					PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: name, Key: "password"},
				},
			},
			Database: db,
		}},
	}
	e.create(t, bt)
	if bt.Spec.Postgres.TLSMode != backstopv1alpha1.TLSPrefer {
		t.Fatalf("tlsMode %q after create, want the CRD's default prefer", bt.Spec.Postgres.TLSMode)
	}
	return bt
}

// readyPgSetup makes a namespace with the MinIO store and a target of a new
// database db of pg (pgTarget's), and waits until both are Ready.
func readyPgSetup(t *testing.T, e *env, pg *pgserver.Server, db string) (ns string, store *backstopv1alpha1.BackupStore, target *backstopv1alpha1.BackupTarget) {
	t.Helper()
	ns = e.namespace(t)
	store = e.s3Store("minio", ns)
	target = pgTarget(t, e, pg, ns, db)
	e.create(t, store)
	e.waitReady(t, store)
	e.waitReady(t, target)
	return ns, store, target
}

// pgSums is a checksum of every row of every table of db, by table.
func pgSums(t *testing.T, pg *pgserver.Server, db string) map[string]string {
	t.Helper()
	tables := pg.MustQuery(t, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)
	sums := map[string]string{}
	for _, tbl := range strings.Fields(tables) {
		sums[tbl] = pg.MustQuery(t, db, fmt.Sprintf(`SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %q t`, tbl))
	}
	return sums
}

func onDemandBackup(ns, name, target, store string) *backstopv1alpha1.Backup {
	return &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: backstopv1alpha1.BackupSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: store},
		},
	}
}

// artifactKeys lists the objects of a Backup's artifact in MinIO.
func artifactKeys(t *testing.T, e *env, artifactPath string) []string {
	t.Helper()
	keys := e.minio.Keys(t, path.Join("e2e", artifactPath)+"/")
	sort.Strings(keys)
	return keys
}

func testScheduleAndRetention(t *testing.T, e *env, pg *pgserver.Server) {
	ns := e.namespace(t)
	store := e.s3Store("minio", ns)
	target := pgTarget(t, e, pg, ns, "sched_db")
	e.create(t, store)
	e.waitReady(t, store)
	e.waitReady(t, target)

	// The schedule fires every minute; the test clock is moved to just
	// before each due time so the run comes in seconds.
	first := time.Now().Truncate(time.Minute).Add(time.Minute)
	if time.Until(first) < 3*time.Second {
		first = first.Add(time.Minute)
	}
	sched := &backstopv1alpha1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns, Labels: map[string]string{"argocd.argoproj.io/instance": "shop"}},
		Spec: backstopv1alpha1.BackupScheduleSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target.Name},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: store.Name},
			Schedule:  "* * * * *",
			Retention: &backstopv1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](1)},
		},
	}
	e.create(t, sched)
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Status.NextScheduleTime).NotTo(BeNil())
		g.Expect(sched.Status.NextScheduleTime.Time).To(BeTemporally("==", first))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	var names []string
	for _, due := range []time.Time{first, first.Add(time.Minute)} {
		e.clock.setNow(due.Add(-2 * time.Second))
		name := schedule.BackupName(sched.Name, due)
		names = append(names, name)
		bk := e.waitBackup(t, ns, name, 90*time.Second)
		g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)
		// On time: created within a few seconds after its due time, on the test clock.
		created := bk.CreationTimestamp.Time.Add(time.Duration(e.clock.offset.Load()))
		g.Expect(created).To(BeTemporally(">=", due.Add(-time.Second)))
		g.Expect(created).To(BeTemporally("<", due.Add(10*time.Second)))
		g.Expect(bk.Labels).To(HaveKeyWithValue(controllers.LabelSchedule, sched.Name))
		g.Expect(bk.Labels).NotTo(HaveKey("argocd.argoproj.io/instance"), "Backups must not carry the schedule's own labels")
		g.Expect(bk.Status.SHA256).To(MatchRegexp(`^[0-9a-f]{64}$`))
		g.Expect(bk.Status.StoredBytes).To(BeNumerically(">", 0))
		g.Expect(artifactKeys(t, e, bk.Status.ArtifactPath)).To(ContainElements(
			path.Join("e2e", bk.Status.ArtifactPath, "manifest.json"),
			path.Join("e2e", bk.Status.ArtifactPath, bk.Status.DataObject)))
	}

	// keepLast: 1 removes the older Backup and its objects, keeps the newer.
	older := &backstopv1alpha1.Backup{}
	g.Eventually(func() bool {
		err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: names[0]}, older)
		return client.IgnoreNotFound(err) == nil && err != nil
	}).WithTimeout(60*time.Second).Should(BeTrue(), "the older Backup was not pruned")
	g.Eventually(func() []string {
		return artifactKeys(t, e, path.Join(ns, target.Name, names[0]))
	}).WithTimeout(30 * time.Second).Should(BeEmpty())
	newer := &backstopv1alpha1.Backup{}
	g.Expect(e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: names[1]}, newer)).To(Succeed())
	g.Expect(artifactKeys(t, e, newer.Status.ArtifactPath)).To(HaveLen(2))

	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Status.LastBackupName).To(Equal(names[1]))
		g.Expect(sched.Status.LastSuccessfulTime).NotTo(BeNil())
		g.Expect(readyOf(sched).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Eventually(func() []string { return e.eventReasons(t, ns, sched.Name) }).WithTimeout(10 * time.Second).Should(ContainElements(controllers.ReasonBackupCreated, controllers.ReasonPruned))

	// The manager's registry has the numbers a dashboard needs.
	g.Expect(metricValue(t, "backstop_backups_total", map[string]string{"namespace": ns, "target": target.Name, "result": "Succeeded"})).To(BeNumerically(">=", 2))
	g.Expect(metricValue(t, "backstop_backup_last_success_timestamp_seconds", map[string]string{"namespace": ns, "target": target.Name})).To(BeNumerically(">=", float64(time.Now().Add(-10*time.Minute).Unix())))
	g.Expect(metricValue(t, "backstop_backup_stored_bytes", map[string]string{"namespace": ns, "target": target.Name})).To(BeNumerically("==", newer.Status.StoredBytes))
	g.Expect(metricValue(t, "backstop_schedule_next_run_timestamp_seconds", map[string]string{"namespace": ns, "schedule": sched.Name})).To(BeNumerically(">", float64(first.Add(time.Minute).Unix())))
}

// metricValue reads one sample from the operator's metrics registry (the
// operator runs in this process); -1 when there is none.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func testRestore(t *testing.T, e *env, pg *pgserver.Server) {
	g := NewWithT(t)
	ns, store, target := readyPgSetup(t, e, pg, "restore_db")

	want := pgSums(t, pg, "restore_db")
	e.create(t, onDemandBackup(ns, "before", target.Name, store.Name))
	bk := e.waitBackup(t, ns, "before", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)

	// Rows added, changed and a table created after the backup.
	pg.MustQuery(t, "restore_db", `INSERT INTO orders SELECT g, 'late-' || g, 1 FROM generate_series(501, 600) g;
UPDATE customers SET name = 'Changed' WHERE id = 1; CREATE TABLE extra (x int); INSERT INTO extra VALUES (1);`)
	g.Expect(pgSums(t, pg, "restore_db")).NotTo(Equal(want))

	rs := &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "rollback", Namespace: ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef:    backstopv1alpha1.LocalObjectReference{Name: target.Name},
			Source:       backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: "before"}},
			SafetyBackup: &backstopv1alpha1.SafetyBackup{Enabled: true},
		},
	}
	e.create(t, rs)
	rs = e.waitRestore(t, ns, rs.Name, 120*time.Second)
	g.Expect(rs.Status.Phase).To(Equal(backstopv1alpha1.RestoreSucceeded), "%s: %s", rs.Status.Reason, rs.Status.Message)
	g.Expect(pgSums(t, pg, "restore_db")).To(Equal(want), "the database must hold exactly the backup's rows")
	g.Expect(rs.Status.Artifact).NotTo(BeNil())
	g.Expect(rs.Status.Artifact.SHA256).To(Equal(bk.Status.SHA256))

	// The safety backup holds the data as it was just before the restore.
	g.Expect(rs.Status.SafetyBackupName).NotTo(BeEmpty())
	safety := e.waitBackup(t, ns, rs.Status.SafetyBackupName, 10*time.Second)
	g.Expect(safety.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded))
	g.Expect(safety.Status.PlaintextSHA256).NotTo(Equal(bk.Status.PlaintextSHA256))

	// The operator restarts: the Restore is not run again.
	jobsBefore := e.jobsLabelled(t, ns, controllers.LabelRestore, rs.Name)
	g.Expect(jobsBefore).To(HaveLen(2), "one verify Job and one restore Job")
	e.stopOperator(t)
	e.startOperator(t)
	pg.MustQuery(t, "restore_db", `INSERT INTO customers VALUES (3, 'after the restore')`)
	g.Consistently(func(g Gomega) {
		g.Expect(e.jobsLabelled(t, ns, controllers.LabelRestore, rs.Name)).To(HaveLen(2))
		got := &backstopv1alpha1.Restore{}
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(rs), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(backstopv1alpha1.RestoreSucceeded))
	}).WithTimeout(8 * time.Second).WithPolling(time.Second).Should(Succeed())
	g.Expect(pg.MustQuery(t, "restore_db", `SELECT name FROM customers WHERE id = 3`)).To(Equal("after the restore"))
	g.Eventually(func() []string { return e.eventReasons(t, ns, rs.Name) }).WithTimeout(10 * time.Second).Should(ContainElement(backstopv1alpha1.ReasonSucceeded))
}

func testRestoreRefusesBadArtifacts(t *testing.T, e *env, pg *pgserver.Server) {
	g := NewWithT(t)
	ns, store, target := readyPgSetup(t, e, pg, "damaged_db")
	e.create(t, onDemandBackup(ns, "good", target.Name, store.Name))
	bk := e.waitBackup(t, ns, "good", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)

	pg.MustQuery(t, "damaged_db", `INSERT INTO customers VALUES (9, 'must survive')`)
	current := pgSums(t, pg, "damaged_db")

	// A second store on the same bucket, whose identity is another key.
	other, err := age.GenerateX25519Identity()
	g.Expect(err).NotTo(HaveOccurred())
	e.secret(t, ns, "other-age", map[string]string{"identity.txt": other.String() + "\n"})
	wrongKey := e.s3Store("wrong-key", ns)
	wrongKey.Spec.Encryption.Recipients.PublicKeys = []string{other.Recipient().String()}
	wrongKey.Spec.Encryption.Recipients.IdentitySecretRef.Name = "other-age"
	e.create(t, wrongKey)
	e.waitReady(t, wrongKey)
	e.create(t, &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "wrong-identity", Namespace: ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target.Name},
			Source:    backstopv1alpha1.RestoreSource{StoreRef: &backstopv1alpha1.LocalObjectReference{Name: wrongKey.Name}, Path: bk.Status.ArtifactPath},
		},
	})
	rs := e.waitRestore(t, ns, "wrong-identity", 90*time.Second)
	g.Expect(rs.Status.Phase).To(Equal(backstopv1alpha1.RestoreFailed))
	g.Expect(rs.Status.Reason).To(Equal(backstopv1alpha1.ReasonDecryptionFailed), rs.Status.Message)
	g.Expect(readyOf(rs).Reason).To(Equal(backstopv1alpha1.ReasonDecryptionFailed))
	g.Expect(e.jobsLabelled(t, ns, controllers.LabelRestore, rs.Name)).To(HaveLen(1), "only the verify Job ran")
	g.Expect(pgSums(t, pg, "damaged_db")).To(Equal(current), "the target must be untouched")
	g.Eventually(func() []string { return e.eventReasons(t, ns, rs.Name) }).WithTimeout(10 * time.Second).Should(ContainElement(backstopv1alpha1.ReasonDecryptionFailed))

	// An application's open transaction holds a table: the restore waits
	// the Restore's lockTimeout, then fails with TargetBusy, changing nothing.
	release := pg.LockTable(t, "damaged_db", "orders")
	e.create(t, &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "busy", Namespace: ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef:   backstopv1alpha1.LocalObjectReference{Name: target.Name},
			Source:      backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: "good"}},
			LockTimeout: &metav1.Duration{Duration: 2 * time.Second},
		},
	})
	rs = e.waitRestore(t, ns, "busy", 90*time.Second)
	release()
	g.Expect(rs.Status.Phase).To(Equal(backstopv1alpha1.RestoreFailed))
	g.Expect(rs.Status.Reason).To(Equal("TargetBusy"), rs.Status.Message)
	g.Expect(rs.Status.Message).To(ContainSubstring("for more than 2s"))
	g.Expect(e.jobsLabelled(t, ns, controllers.LabelRestore, rs.Name)).To(HaveLen(2), "the verify Job and the restore Job ran")
	g.Expect(pgSums(t, pg, "damaged_db")).To(Equal(current), "the target must be untouched")

	// One flipped byte in the stored artifact.
	key := path.Join("e2e", bk.Status.ArtifactPath, bk.Status.DataObject)
	e.minio.FlipBit(t, key, bk.Status.StoredBytes/2)
	e.create(t, &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "flipped", Namespace: ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target.Name},
			Source:    backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: "good"}},
		},
	})
	rs = e.waitRestore(t, ns, "flipped", 90*time.Second)
	g.Expect(rs.Status.Phase).To(Equal(backstopv1alpha1.RestoreFailed))
	g.Expect(rs.Status.Reason).To(Equal(backstopv1alpha1.ReasonIntegrityMismatch), rs.Status.Message)
	g.Expect(pgSums(t, pg, "damaged_db")).To(Equal(current), "the target must be untouched")
}

func testWrongCredentials(t *testing.T, e *env, pg *pgserver.Server) {
	g := NewWithT(t)
	ns := e.namespace(t)
	e.secret(t, ns, "bad-minio", map[string]string{"accessKeyID": e.minio.AccessKey, "secretAccessKey": "not-the-secret"})
	store := e.s3Store("bad", ns)
	store.Spec.S3.CredentialsSecretRef.Name = "bad-minio"
	target := pgTarget(t, e, pg, ns, "creds_db")
	e.create(t, store)
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(store), store)).To(Succeed())
		c := readyOf(store)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(backstopv1alpha1.ReasonAuthenticationFailed))
		g.Expect(c.Message).NotTo(ContainSubstring("not-the-secret"))
	}).WithTimeout(60 * time.Second).Should(Succeed())
	g.Eventually(func() []string { return e.eventReasons(t, ns, store.Name) }).WithTimeout(10 * time.Second).Should(ContainElement(backstopv1alpha1.ReasonAuthenticationFailed))

	e.waitReady(t, target)
	e.create(t, onDemandBackup(ns, "doomed", target.Name, store.Name))
	bk := e.waitBackup(t, ns, "doomed", 60*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupFailed))
	g.Expect(bk.Status.Reason).To(Equal(backstopv1alpha1.ReasonAuthenticationFailed), bk.Status.Message)
	g.Expect(readyOf(bk).Status).To(Equal(metav1.ConditionFalse))
}

func testDatabaseStopped(t *testing.T, e *env) {
	g := NewWithT(t)
	pg := pgserver.Start(t) // its own server: this test kills it
	ns, store, target := readyPgSetup(t, e, pg, "stopped_db")

	pg.LockTable(t, "stopped_db", "orders")
	e.create(t, onDemandBackup(ns, "interrupted", target.Name, store.Name))
	pg.WaitLockWaiter(t, "stopped_db", "backstop")
	pg.Kill()

	bk := e.waitBackup(t, ns, "interrupted", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupFailed))
	g.Expect(bk.Status.Reason).To(Equal(backstopv1alpha1.ReasonDumpFailed), bk.Status.Message)
	g.Expect(bk.Status.Message).NotTo(ContainSubstring(pg.Password))
	g.Expect(artifactKeys(t, e, path.Join(ns, target.Name, "interrupted"))).To(BeEmpty(), "no manifest and no data object may remain")
	g.Expect(e.minio.IncompleteUploads(t, path.Join("e2e", ns))).To(BeZero())
}

func testOperatorRestart(t *testing.T, e *env, pg *pgserver.Server) {
	g := NewWithT(t)
	ns, store, target := readyPgSetup(t, e, pg, "restart_db")

	release := pg.LockTable(t, "restart_db", "orders")
	e.create(t, onDemandBackup(ns, "across-restart", target.Name, store.Name))
	pg.WaitLockWaiter(t, "restart_db", "backstop")

	// The operator goes down while the backup runs, and the backup
	// finishes while it is down.
	e.stopOperator(t)
	release()
	g.Eventually(func(g Gomega) {
		jobs := e.jobsLabelled(t, ns, controllers.LabelBackup, "across-restart")
		g.Expect(jobs).To(HaveLen(1))
		g.Expect(jobs[0].Status.Succeeded).To(BeNumerically("==", 1))
	}).WithTimeout(60 * time.Second).Should(Succeed())
	e.startOperator(t)

	bk := e.waitBackup(t, ns, "across-restart", 60*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)
	g.Consistently(func() int {
		return len(e.jobsLabelled(t, ns, controllers.LabelBackup, "across-restart"))
	}).WithTimeout(5*time.Second).Should(Equal(1), "no second Job")
	g.Expect(artifactKeys(t, e, bk.Status.ArtifactPath)).To(HaveLen(2))
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(target), target)).To(Succeed())
		g.Expect(target.Status.LastSuccessfulBackup).To(Equal(bk.Name))
		g.Expect(target.Status.LastSuccessfulBackupTime).NotTo(BeNil())
	}).WithTimeout(10 * time.Second).Should(Succeed())
	succeeded := 0
	for _, r := range e.eventReasons(t, ns, bk.Name) {
		if r == backstopv1alpha1.ReasonSucceeded {
			succeeded++
		}
	}
	g.Expect(succeeded).To(Equal(1), "Succeeded exactly once")
}

// treeHash describes a directory: every path with its mode, size, content
// hash or link target, sorted.
func treeHash(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case info.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %d %x %d", len(data), data, info.ModTime().Unix())
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

func testFilesRoundTrip(t *testing.T, e *env) {
	g := NewWithT(t)
	ns := e.namespace(t)
	store := e.s3Store("minio", ns)
	e.create(t, store)
	e.waitReady(t, store)

	target, data := e.uploadsTarget(ns)
	g.Expect(os.MkdirAll(filepath.Join(data, "img", "empty"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(data, "a.txt"), []byte("alpha\n"), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(data, "img", "logo.bin"), []byte{0, 1, 2, 3, 255}, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(data, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)).To(Succeed())
	g.Expect(os.Symlink("img/logo.bin", filepath.Join(data, "logo"))).To(Succeed())
	old := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	g.Expect(os.Chtimes(filepath.Join(data, "a.txt"), old, old)).To(Succeed())
	want := treeHash(t, data)

	e.create(t, target)
	e.waitReady(t, target)
	e.create(t, onDemandBackup(ns, "files", target.Name, store.Name))
	bk := e.waitBackup(t, ns, "files", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)
	g.Expect(bk.Status.Engine).To(Equal("files"))

	g.Expect(os.WriteFile(filepath.Join(data, "a.txt"), []byte("changed"), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(data, "new.txt"), []byte("not in the backup"), 0o644)).To(Succeed())
	g.Expect(os.Remove(filepath.Join(data, "run.sh"))).To(Succeed())

	e.create(t, &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "files-back", Namespace: ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target.Name},
			Source:    backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: "files"}},
		},
	})
	rs := e.waitRestore(t, ns, "files-back", 90*time.Second)
	g.Expect(rs.Status.Phase).To(Equal(backstopv1alpha1.RestoreSucceeded), "%s: %s", rs.Status.Reason, rs.Status.Message)
	g.Expect(treeHash(t, data)).To(Equal(want))
}

// A Backup on a volume store: the backup Job writes the artifact into the
// claim, and deleting the Backup runs a delete Job (the real agent, the
// claim mounted as the pod runner mounts it) that removes it.
func testVolumeStoreDeletion(t *testing.T, e *env) {
	g := NewWithT(t)
	ns := e.namespace(t)
	store := &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "vol", Namespace: ns},
		Spec: backstopv1alpha1.BackupStoreSpec{
			Volume: &backstopv1alpha1.VolumeStore{ClaimName: "backups"},
			Encryption: backstopv1alpha1.Encryption{Recipients: &backstopv1alpha1.AgeRecipients{
				PublicKeys: []string{e.identity.Recipient().String()},
			}},
		},
	}
	e.create(t, store)
	e.waitReady(t, store)
	target, data := e.uploadsTarget(ns)
	g.Expect(os.MkdirAll(data, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(data, "a.txt"), []byte("alpha\n"), 0o644)).To(Succeed())
	e.create(t, target)
	e.waitReady(t, target)

	e.create(t, onDemandBackup(ns, "on-volume", target.Name, store.Name))
	bk := e.waitBackup(t, ns, "on-volume", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)
	artifact := filepath.Join(e.runner.PVCPath(ns, "backups"), filepath.FromSlash(bk.Status.ArtifactPath))
	g.Expect(filepath.Join(artifact, "manifest.json")).To(BeAnExistingFile())
	g.Expect(filepath.Join(artifact, bk.Status.DataObject)).To(BeAnExistingFile())

	g.Expect(e.k8s.Delete(context.Background(), bk)).To(Succeed())
	g.Eventually(func() bool {
		err := e.k8s.Get(context.Background(), client.ObjectKeyFromObject(bk), &backstopv1alpha1.Backup{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(90*time.Second).WithPolling(time.Second).Should(BeTrue(), "the Backup is still there: its artifact was not deleted")
	g.Expect(filepath.Join(artifact, "manifest.json")).NotTo(BeAnExistingFile())
	g.Expect(filepath.Join(artifact, bk.Status.DataObject)).NotTo(BeAnExistingFile())
}

func testMariaDBRoundTrip(t *testing.T, e *env) {
	g := NewWithT(t)
	db := mariadbserver.Start(t)
	ns := e.namespace(t)
	store := e.s3Store("minio", ns)
	e.create(t, store)
	db.CreateDatabase(t, "shop")
	db.MustQuery(t, "shop", "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(8,2));\n"+
		"INSERT INTO items VALUES (1, 'tea', 3.50), (2, 'coffee', 4.20), (3, 'cake', 5.00);\n"+
		"CREATE VIEW cheap AS SELECT name FROM items WHERE price < 4;")
	sums := func() string {
		return db.MustQuery(t, "shop", "SELECT GROUP_CONCAT(CONCAT_WS(':', id, name, price) ORDER BY id SEPARATOR '|') FROM items;\nSELECT GROUP_CONCAT(name ORDER BY name) FROM cheap;\nSELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop';")
	}
	want := sums()
	e.secret(t, ns, "maria", map[string]string{"password": db.Password})
	target := &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: backstopv1alpha1.BackupTargetSpec{MySQL: &backstopv1alpha1.MySQLTarget{
			DatabaseConnection: backstopv1alpha1.DatabaseConnection{
				// tlsMode left to its default, prefer.
				Host: db.Host,
				Port: ptr.To(int32(db.Port)),
				Credentials: backstopv1alpha1.DatabaseCredentials{
					Username:          db.User,
					PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: "maria", Key: "password"},
				},
			},
			Databases: []string{"shop"},
		}},
	}
	e.create(t, target)
	e.waitReady(t, store)
	e.waitReady(t, target)
	e.create(t, onDemandBackup(ns, "shop-1", target.Name, store.Name))
	bk := e.waitBackup(t, ns, "shop-1", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)

	db.MustQuery(t, "shop", "UPDATE items SET price = 1.00 WHERE id = 3; DELETE FROM items WHERE id = 1; CREATE TABLE extra (x INT);")
	g.Expect(sums()).NotTo(Equal(want))
	e.create(t, &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-back", Namespace: ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target.Name},
			Source:    backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: "shop-1"}},
		},
	})
	rs := e.waitRestore(t, ns, "shop-back", 120*time.Second)
	g.Expect(rs.Status.Phase).To(Equal(backstopv1alpha1.RestoreSucceeded), "%s: %s", rs.Status.Reason, rs.Status.Message)
	g.Expect(sums()).To(Equal(want))
}

// testNamespaceDeletion deletes a namespace holding a store, a target and a
// Backup, as a user cleaning up does: the namespace controller deletes them
// all at once, and the Backup's finalizer, which deletes its artifact, must
// not hold the namespace in Terminating once the store is gone.
func testNamespaceDeletion(t *testing.T, e *env, pg *pgserver.Server) {
	g := NewWithT(t)
	ns, store, target := readyPgSetup(t, e, pg, "doomed_ns")
	e.create(t, onDemandBackup(ns, "last", target.Name, store.Name))
	bk := e.waitBackup(t, ns, "last", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), bk.Status.Message)

	g.Expect(e.k8s.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Eventually(func() bool {
		err := e.k8s.Get(context.Background(), client.ObjectKey{Name: ns}, &corev1.Namespace{})
		return apierrors.IsNotFound(err)
	}, 2*time.Minute, time.Second).Should(BeTrue(), "the namespace is still Terminating")
}
