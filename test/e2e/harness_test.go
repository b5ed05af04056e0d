package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/testutil/minio"
	"github.com/backstop-io/backstop/test/cluster"
	"github.com/backstop-io/backstop/test/install"
	"github.com/backstop-io/backstop/test/podrunner"
)

// agentImage is what the operator puts in agent Jobs; the pod runner maps it
// to the backstop binary built for the test.
const agentImage = "ghcr.io/backstop-io/backstop:e2e"

// offsetClock is the real clock moved forward by an offset the test sets, so
// that a schedule's next minute comes in seconds rather than a minute.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// setNow moves the clock so that Now is t; it never moves backwards.
func (c *offsetClock) setNow(t time.Time) {
	off := time.Until(t)
	if off > time.Duration(c.offset.Load()) {
		c.offset.Store(int64(off))
	}
}

// env is one control plane, pod runner, MinIO and operator shared by the
// end-to-end tests.
type env struct {
	cluster *cluster.Cluster
	runner  *podrunner.Runner
	minio   *minio.Server
	k8s     client.Client
	// opConfig is what the operator connects with: the chart's ServiceAccount.
	opConfig *rest.Config
	clock    *offsetClock
	logDir   string
	// bin is the backstop binary the test built (what the image holds).
	bin string

	mu     sync.Mutex
	stopOp context.CancelFunc
	// metricsAddr is where the operator serves /metrics (plain HTTP).
	metricsAddr string
	opDone      chan struct{}
	opLog       *os.File
	identity    *age.X25519Identity
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	// The image's two binaries, side by side: the operator and backstop-agent,
	// which the Jobs run.
	bin := filepath.Join(root, "backstop")
	for _, b := range []struct{ out, pkg string }{
		{bin, "github.com/backstop-io/backstop"},
		{filepath.Join(root, "backstop-agent"), "github.com/backstop-io/backstop/cmd/backstop-agent"},
	} {
		build := exec.Command("go", "build", "-o", b.out, b.pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.pkg, err, out)
		}
	}

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = backstopv1alpha1.AddToScheme(scheme)
	c := cluster.Start(t, cluster.Options{
		CRDDirectoryPaths: []string{"config/crd/bases"},
		ControllerManager: true,
		// The namespace controller, for a namespace deleted with its Backups.
		Controllers: append(slices.Clone(cluster.DefaultControllers), "namespace-controller"),
		Scheme:      scheme,
	})
	r := podrunner.Start(t, podrunner.Options{
		Config: c.Config,
		Root:   filepath.Join(root, "runner"),
		Images: map[string]string{agentImage: bin},
	})
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// The operator runs with exactly the chart's RBAC: it impersonates the
	// chart's ServiceAccount, so a permission the chart lacks fails the suite.
	sa := install.ApplyChartRBAC(t, c.Config, "backstop-system", "e2e")
	opConfig := rest.CopyConfig(c.Config)
	opConfig.Impersonate = rest.ImpersonationConfig{UserName: sa}
	e := &env{cluster: c, runner: r, minio: minio.Start(t), k8s: c.Client, opConfig: opConfig, clock: &offsetClock{}, logDir: filepath.Join(root, "operator"), identity: id, bin: bin}
	if err := os.MkdirAll(e.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.startOperator(t)
	t.Cleanup(func() {
		e.stopOperator(t)
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(e.logDir, "operator.log"))
			lines := strings.Split(string(data), "\n")
			if len(lines) > 200 {
				lines = lines[len(lines)-200:]
			}
			t.Logf("operator log tail:\n%s", strings.Join(lines, "\n"))
		}
	})
	return e
}

// startOperator runs the manager in-process, as `backstop manager` does.
func (e *env) startOperator(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(e.logDir, "operator.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	log := zap.New(zap.UseDevMode(true), zap.WriteTo(logf))
	ctrl.SetLogger(log)
	if e.metricsAddr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		e.metricsAddr = l.Addr().String()
		_ = l.Close()
	}
	mgr, err := ctrl.NewManager(e.opConfig, ctrl.Options{
		Scheme:                 e.k8s.Scheme(),
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: e.metricsAddr},
		HealthProbeBindAddress: "0",
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Cache:                  controllers.CacheOptions(),
		// The operator is restarted within one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	agent := controllers.DefaultAgentOptions()
	agent.Image = agentImage
	if err := controllers.SetupAll(ctx, mgr, controllers.Options{Agent: agent, Clock: e.clock, ScheduleResync: time.Second}); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(logf, "manager stopped: %v\n", err)
		}
	}()
	e.stopOp, e.opDone, e.opLog = cancel, done, logf
}

func (e *env) stopOperator(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopOp == nil {
		return
	}
	e.stopOp()
	select {
	case <-e.opDone:
	case <-time.After(60 * time.Second):
		t.Error("the operator did not stop within 60s")
	}
	_ = e.opLog.Close()
	e.stopOp = nil
}

// namespace makes a namespace with the store Secrets every test uses.
func (e *env) namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	if err := e.k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	e.secret(t, ns.Name, "minio", map[string]string{"accessKeyID": e.minio.AccessKey, "secretAccessKey": e.minio.SecretKey})
	e.secret(t, ns.Name, "age", map[string]string{"identity.txt": e.identity.String() + "\n"})
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpNamespace(t, ns.Name)
		}
	})
	return ns.Name
}

func (e *env) secret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
	if err := e.k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// s3Store is a BackupStore on the test MinIO, encrypted to the test identity.
func (e *env) s3Store(name, ns string) *backstopv1alpha1.BackupStore {
	return &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: backstopv1alpha1.BackupStoreSpec{
			S3: &backstopv1alpha1.S3Store{
				Bucket:               e.minio.Bucket,
				Prefix:               "e2e",
				Endpoint:             "http://" + e.minio.Endpoint,
				ForcePathStyle:       true,
				CredentialsSecretRef: backstopv1alpha1.LocalObjectReference{Name: "minio"},
				// The smallest parts S3 takes: the Jobs pass it to the agent.
				PartSizeMiB: 5,
			},
			Encryption: backstopv1alpha1.Encryption{Recipients: &backstopv1alpha1.AgeRecipients{
				PublicKeys:        []string{e.identity.Recipient().String()},
				IdentitySecretRef: &backstopv1alpha1.SecretKeySelector{Name: "age", Key: "identity.txt"},
			}},
		},
	}
}

func (e *env) create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := e.k8s.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// waitReady waits for a store or target to be Ready.
// uploadsTarget is the files target "uploads" of ns, and where the pod
// runner keeps its directory (uploads in the claim app-data).
func (e *env) uploadsTarget(ns string) (*backstopv1alpha1.BackupTarget, string) {
	return &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: ns},
		Spec:       backstopv1alpha1.BackupTargetSpec{Files: &backstopv1alpha1.FilesTarget{ClaimName: "app-data", Path: "uploads"}},
	}, filepath.Join(e.runner.PVCPath(ns, "app-data"), "uploads")
}

func (e *env) waitReady(t *testing.T, obj client.Object) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		c := readyOf(obj)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "Ready: %s: %s", c.Reason, c.Message)
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func readyOf(obj client.Object) *metav1.Condition {
	o, ok := obj.(interface{ GetConditions() []metav1.Condition })
	if !ok {
		return nil
	}
	for _, c := range o.GetConditions() {
		if c.Type == backstopv1alpha1.ConditionReady {
			c := c
			return &c
		}
	}
	return nil
}

// waitBackup waits for a Backup to reach a final phase and returns it.
func (e *env) waitBackup(t *testing.T, ns, name string, timeout time.Duration) *backstopv1alpha1.Backup {
	t.Helper()
	bk := &backstopv1alpha1.Backup{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, bk)).To(Succeed())
		g.Expect(bk.Status.Phase).To(BeElementOf(backstopv1alpha1.BackupSucceeded, backstopv1alpha1.BackupFailed))
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
	return bk
}

// waitRestore waits for a Restore to reach a final phase and returns it.
func (e *env) waitRestore(t *testing.T, ns, name string, timeout time.Duration) *backstopv1alpha1.Restore {
	t.Helper()
	rs := &backstopv1alpha1.Restore{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rs)).To(Succeed())
		g.Expect(rs.Status.Phase).To(BeElementOf(backstopv1alpha1.RestoreSucceeded, backstopv1alpha1.RestoreFailed))
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
	return rs
}

// jobsLabelled lists the Jobs of a namespace with a label.
func (e *env) jobsLabelled(t *testing.T, ns, key, value string) []batchv1.Job {
	t.Helper()
	jobs := &batchv1.JobList{}
	if err := e.k8s.List(context.Background(), jobs, client.InNamespace(ns), client.MatchingLabels{key: value}); err != nil {
		t.Fatal(err)
	}
	return jobs.Items
}

// events lists the reasons of the events about an object.
func (e *env) eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	list, err := e.cluster.Clientset.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ev := range list.Items {
		if ev.Regarding.Name == name {
			reasons = append(reasons, ev.Reason)
		}
	}
	return reasons
}

func (e *env) dumpNamespace(t *testing.T, ns string) {
	for _, l := range []client.ObjectList{&backstopv1alpha1.BackupStoreList{}, &backstopv1alpha1.BackupTargetList{}, &backstopv1alpha1.BackupScheduleList{}, &backstopv1alpha1.BackupList{}, &backstopv1alpha1.BackupDrillList{}, &backstopv1alpha1.RestoreList{}, &batchv1.JobList{}} {
		if err := e.k8s.List(context.Background(), l, client.InNamespace(ns)); err == nil {
			t.Logf("%T in %s:\n%s", l, ns, summarize(l))
		}
	}
	pods := &corev1.PodList{}
	if err := e.k8s.List(context.Background(), pods, client.InNamespace(ns)); err == nil {
		for _, p := range pods.Items {
			t.Logf("pod %s (%s) logs:\n%s", p.Name, p.Status.Phase, e.runner.PodLogs(ns, p.Name))
		}
	}
}

func summarize(l client.ObjectList) string {
	var b strings.Builder
	switch l := l.(type) {
	case *backstopv1alpha1.BackupList:
		for _, o := range l.Items {
			fmt.Fprintf(&b, "  %s phase=%s reason=%s msg=%s conds=%v\n", o.Name, o.Status.Phase, o.Status.Reason, o.Status.Message, o.Status.Conditions)
		}
	case *backstopv1alpha1.BackupDrillList:
		for _, o := range l.Items {
			fmt.Fprintf(&b, "  %s phase=%s reason=%s msg=%s checks=%v conds=%v\n", o.Name, o.Status.Phase, o.Status.Reason, o.Status.Message, o.Status.Checks, o.Status.Conditions)
		}
	case *backstopv1alpha1.RestoreList:
		for _, o := range l.Items {
			fmt.Fprintf(&b, "  %s phase=%s reason=%s msg=%s conds=%v\n", o.Name, o.Status.Phase, o.Status.Reason, o.Status.Message, o.Status.Conditions)
		}
	case *backstopv1alpha1.BackupStoreList:
		for _, o := range l.Items {
			fmt.Fprintf(&b, "  %s conds=%v\n", o.Name, o.Status.Conditions)
		}
	case *backstopv1alpha1.BackupTargetList:
		for _, o := range l.Items {
			fmt.Fprintf(&b, "  %s conds=%v\n", o.Name, o.Status.Conditions)
		}
	case *backstopv1alpha1.BackupScheduleList:
		for _, o := range l.Items {
			fmt.Fprintf(&b, "  %s last=%v next=%v active=%v conds=%v\n", o.Name, o.Status.LastScheduleTime, o.Status.NextScheduleTime, o.Status.Active, o.Status.Conditions)
		}
	case *batchv1.JobList:
		for _, o := range l.Items {
			fmt.Fprintf(&b, "  %s active=%d succeeded=%d failed=%d conds=%v\n", o.Name, o.Status.Active, o.Status.Succeeded, o.Status.Failed, o.Status.Conditions)
		}
	}
	return b.String()
}
