package scale

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/test/cluster"
)

// The targets of the issue "Schedules and restores under races" (its
// section "At scale, with the fixes in"); the issue "Controllers for all
// five kinds" had set 60 s, 150 MiB and 200 ms.
const (
	targetJobLatency    = 30 * time.Second
	targetPeakRSS       = 100 << 20
	targetReconcileP99  = 0.15 // seconds; a bucket bound of controller-runtime's histogram
	benchNamespace      = "bench"
	componentLabel      = "app.kubernetes.io/component"
	backupLabel         = "backstop.io/backup"
	agentImage          = "ghcr.io/backstop-io/backstop:bench"
	maxWaitForBackups   = 5 * time.Minute
	createWorkers       = 16
	completerWorkers    = 16
	defaultScheduleSize = 1000
)

// controllersOf names the operator's controllers, as in its metrics.
var controllersOf = []string{"backupschedule", "backup", "backupstore", "backuptarget", "restore"}

// TestOperatorAtScale: N BackupSchedules (1,000 unless BACKSTOP_BENCH_SCHEDULES
// says otherwise) fall due in the same minute. The operator runs as its own
// process (the binary built from this tree) against a real kube-apiserver,
// etcd and kube-controller-manager's Job controller; a fast completer stands
// in for the kubelet and the agent. The test measures how late each Backup
// and its Job appear after the due time, how long until every Backup is
// Succeeded, the operator's peak RSS, reconcile latency per controller, and
// the operator's API requests and 409 Conflict answers.
//
// It runs only with BACKSTOP_BENCH=1 (`make bench`).
func TestOperatorAtScale(t *testing.T) {
	if os.Getenv("BACKSTOP_BENCH") != "1" || testing.Short() {
		t.Skip("a benchmark: set BACKSTOP_BENCH=1 (make bench) to run it")
	}
	n := defaultScheduleSize
	if s := os.Getenv("BACKSTOP_BENCH_SCHEDULES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 10000 {
			t.Fatalf("BACKSTOP_BENCH_SCHEDULES=%q: want 1..10000", s)
		}
		n = v
	}
	// The test's own informers log nothing; the operator logs to a file.
	crlog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	bin := buildBackstop(ctx, t)

	// Only the Job controller: it turns pods into Job status the way a real
	// cluster does.
	bc := startBenchCluster(t, []string{"job-controller"})
	c, cfg, scheme, k8s, cs := bc.Cluster, bc.cfg, bc.scheme, bc.k8s, bc.cs

	// Watch what the operator and the Job controller create, and complete
	// agent pods as soon as they appear.
	track := newTracker()
	comp := newCompleter(cs, 2*n+100)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	startWatches(watchCtx, t, cfg, scheme, track, comp)
	comp.run(watchCtx, completerWorkers)

	op := startOperator(ctx, t, bin, c.KubeconfigPath)
	setupNamespace(ctx, t, k8s)

	// The due time: the first whole minute that leaves time to create every
	// schedule and let the operator compute its next run.
	lead := 20*time.Second + time.Duration(n)*20*time.Millisecond
	due := time.Now().Add(lead).Truncate(time.Minute).Add(time.Minute)
	t.Logf("%d schedules due at %s (in %s)", n, due.Format(time.RFC3339), time.Until(due).Round(time.Second))
	createStart := time.Now()
	createSchedules(ctx, t, k8s, n, due)
	createTook := time.Since(createStart)
	readyTook := waitSchedulesComputed(ctx, t, k8s, n, due)
	t.Logf("created %d schedules in %s; all had nextScheduleTime=%s %s after the first create", n, createTook.Round(time.Millisecond), due.Format(time.RFC3339), readyTook.Round(time.Millisecond))
	if time.Until(due) < time.Second {
		t.Fatalf("setup ran past the due time; nothing measured")
	}

	// Baseline just before the due time; sample RSS and queue depth during the run.
	time.Sleep(time.Until(due) - 500*time.Millisecond)
	before := op.mustScrape(t)
	sampler := op.sample(watchCtx)
	profiled := op.cpuProfile(t, os.Getenv("BACKSTOP_BENCH_CPUPROFILE"), 45*time.Second)
	apiProfiled := apiServerProfile(ctx, t, cs, os.Getenv("BACKSTOP_BENCH_APISERVER_CPUPROFILE"), 45*time.Second)

	// Wait until every Backup is over (or the bound).
	deadline := due.Add(maxWaitForBackups)
	for {
		s := track.snapshot()
		if s.finished() >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s: %d Backups seen, %d Jobs, %d Succeeded, %d Failed (of %d)", maxWaitForBackups, len(s.created), len(s.jobs), len(s.succeeded), len(s.failed), n)
			break
		}
		if op.exited() {
			t.Fatalf("the operator exited; log tail:\n%s", tail(op.logPath, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
	allDone := time.Since(due)
	// Let the queues drain (schedules see their Backups finish), then read.
	op.waitQueuesEmpty(t, 60*time.Second)
	after := op.mustScrape(t)
	hwm := op.vmHWM(t)
	sampler.stop()
	<-profiled
	<-apiProfiled
	snap := track.snapshot()

	r := report{
		n: n, due: due, allDone: allDone, snap: snap, before: before, after: after,
		hwm: hwm, rssSampled: sampler.peakRSS, maxDepth: sampler.maxDepth,
		peakAnon: sampler.peakAnon, peakFile: sampler.peakFile, maxHeapInuse: int64(sampler.maxHeapInuse),
		completed: comp.done.Load(), completeFailed: comp.failed.Load(),
	}
	r.backups, r.jobs = countObjects(ctx, t, k8s)
	r.errorLines, r.firstErrors = scanLog(op.logPath)
	op.stop(t)
	r.cpu = op.cpu
	r.rusageMaxRSS = op.maxRSS
	r.log(t)
	if errs := comp.errors(); len(errs) > 0 {
		t.Logf("completer errors (first %d): %s", len(errs), strings.Join(errs, "; "))
	}
	r.check(t)
}

// benchCluster is a control plane for the benchmarks, and the test's own
// clients of it.
type benchCluster struct {
	*cluster.Cluster
	cfg    *rest.Config
	scheme *k8sruntime.Scheme
	k8s    client.Client
	cs     kubernetes.Interface
}

// startBenchCluster starts the API server, etcd and kube-controller-manager
// with the given controllers (nil: its defaults). Neither the controller
// manager's client (20 QPS by default) nor the test's are throttled below
// what the benchmarks need.
func startBenchCluster(t *testing.T, controllers []string) benchCluster {
	t.Helper()
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := backstopv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := cluster.Start(t, cluster.Options{
		CRDDirectoryPaths:     []string{"config/crd/bases"},
		ControllerManager:     true,
		Controllers:           controllers,
		ControllerManagerArgs: []string{"--concurrent-job-syncs=50", "--kube-api-qps=1000", "--kube-api-burst=2000"},
		Scheme:                scheme,
	})
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = -1, 0
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return benchCluster{Cluster: c, cfg: cfg, scheme: scheme, k8s: k8s, cs: cs}
}

// buildBackstop builds the binary of this tree, as `make build` does, unless
// BACKSTOP_BENCH_BINARY names one.
func buildBackstop(ctx context.Context, t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("BACKSTOP_BENCH_BINARY"); bin != "" {
		// Measure another build (a release, or an experiment) instead.
		return bin
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "backstop")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// setupNamespace makes the namespace, a postgres BackupTarget with its
// password Secret and a volume BackupStore encrypted to a fresh age key,
// and waits until the operator says both are Ready. A volume store is the
// one the operator cannot reach itself, so it takes the agent's word for the
// manifest (with an S3 store it would read manifest.json back and stat the
// data object before a Backup is Succeeded).
func setupNamespace(ctx context.Context, t *testing.T, k8s client.Client) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: benchNamespace},
			StringData: map[string]string{"password": "bench"},
		},
		&backstopv1alpha1.BackupTarget{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: benchNamespace},
			Spec: backstopv1alpha1.BackupTargetSpec{Postgres: &backstopv1alpha1.PostgresTarget{
				DatabaseConnection: backstopv1alpha1.DatabaseConnection{
					Host: "db.bench.svc",
					Credentials: backstopv1alpha1.DatabaseCredentials{
						Username:          "backup",
						PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: "db", Key: "password"},
					},
				},
				Database: "app",
			}},
		},
		&backstopv1alpha1.BackupStore{
			ObjectMeta: metav1.ObjectMeta{Name: "store", Namespace: benchNamespace},
			Spec: backstopv1alpha1.BackupStoreSpec{
				Volume:     &backstopv1alpha1.VolumeStore{ClaimName: "backups"},
				Encryption: backstopv1alpha1.Encryption{Recipients: &backstopv1alpha1.AgeRecipients{PublicKeys: []string{id.Recipient().String()}}},
			},
		},
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	waitUntil(ctx, t, time.Minute, "the BackupStore and BackupTarget to be Ready", func() bool {
		st := &backstopv1alpha1.BackupStore{}
		tg := &backstopv1alpha1.BackupTarget{}
		if k8s.Get(ctx, client.ObjectKey{Namespace: benchNamespace, Name: "store"}, st) != nil ||
			k8s.Get(ctx, client.ObjectKey{Namespace: benchNamespace, Name: "db"}, tg) != nil {
			return false
		}
		return meta.IsStatusConditionTrue(st.Status.Conditions, backstopv1alpha1.ConditionReady) &&
			meta.IsStatusConditionTrue(tg.Status.Conditions, backstopv1alpha1.ConditionReady)
	})
}

func scheduleName(i int) string { return fmt.Sprintf("db-%04d", i) }

// createSchedules creates n schedules that all fire once a day, at due.
func createSchedules(ctx context.Context, t *testing.T, k8s client.Client, n int, due time.Time) {
	t.Helper()
	cron := fmt.Sprintf("%d %d * * *", due.UTC().Minute(), due.UTC().Hour())
	work := make(chan int)
	errs := make(chan error, createWorkers)
	var wg sync.WaitGroup
	for range createWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				bs := &backstopv1alpha1.BackupSchedule{
					ObjectMeta: metav1.ObjectMeta{Name: scheduleName(i), Namespace: benchNamespace},
					Spec: backstopv1alpha1.BackupScheduleSpec{
						TargetRef: backstopv1alpha1.LocalObjectReference{Name: "db"},
						StoreRef:  backstopv1alpha1.LocalObjectReference{Name: "store"},
						Schedule:  cron,
					},
				}
				if err := k8s.Create(ctx, bs); err != nil {
					select {
					case errs <- fmt.Errorf("create schedule %s: %w", bs.Name, err):
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// waitSchedulesComputed waits until every schedule says its next run is at due.
func waitSchedulesComputed(ctx context.Context, t *testing.T, k8s client.Client, n int, due time.Time) time.Duration {
	t.Helper()
	start := time.Now()
	waitUntil(ctx, t, time.Until(due), "every schedule to have its nextScheduleTime", func() bool {
		list := &backstopv1alpha1.BackupScheduleList{}
		if err := k8s.List(ctx, list, client.InNamespace(benchNamespace)); err != nil {
			return false
		}
		ok := 0
		for _, bs := range list.Items {
			if bs.Status.NextScheduleTime != nil && bs.Status.NextScheduleTime.Time.Equal(due) {
				ok++
			}
		}
		return ok == n
	})
	return time.Since(start)
}

func waitUntil(ctx context.Context, t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) || ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s", limit.Round(time.Second), what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func countObjects(ctx context.Context, t *testing.T, k8s client.Client) (backups, jobs int) {
	t.Helper()
	bl := &backstopv1alpha1.BackupList{}
	if err := k8s.List(ctx, bl, client.InNamespace(benchNamespace)); err != nil {
		t.Fatal(err)
	}
	jl := &batchv1.JobList{}
	if err := k8s.List(ctx, jl, client.InNamespace(benchNamespace)); err != nil {
		t.Fatal(err)
	}
	return len(bl.Items), len(jl.Items)
}

// tracker records when the test first saw each object.
type tracker struct {
	mu        sync.Mutex
	created   map[string]time.Time // Backup name -> first seen
	jobs      map[string]time.Time // Backup name -> its Job first seen
	succeeded map[string]time.Time
	failed    map[string]string // Backup name -> reason: message
}

func newTracker() *tracker {
	return &tracker{created: map[string]time.Time{}, jobs: map[string]time.Time{}, succeeded: map[string]time.Time{}, failed: map[string]string{}}
}

func (tr *tracker) backup(bk *backstopv1alpha1.Backup) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if _, ok := tr.created[bk.Name]; !ok {
		tr.created[bk.Name] = now
	}
	switch bk.Status.Phase {
	case backstopv1alpha1.BackupSucceeded:
		if _, ok := tr.succeeded[bk.Name]; !ok {
			tr.succeeded[bk.Name] = now
		}
	case backstopv1alpha1.BackupFailed:
		tr.failed[bk.Name] = bk.Status.Reason + ": " + bk.Status.Message
	}
}

func (tr *tracker) job(job *batchv1.Job) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	name := job.Labels[backupLabel]
	if _, ok := tr.jobs[name]; !ok && name != "" && job.Labels[componentLabel] == "backup-agent" {
		tr.jobs[name] = now
	}
}

type trackSnapshot struct {
	created, jobs, succeeded map[string]time.Time
	failed                   map[string]string
}

func (s trackSnapshot) finished() int { return len(s.succeeded) + len(s.failed) }

func (tr *tracker) snapshot() trackSnapshot {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	cp := func(m map[string]time.Time) map[string]time.Time {
		out := make(map[string]time.Time, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	failed := make(map[string]string, len(tr.failed))
	for k, v := range tr.failed {
		failed[k] = v
	}
	return trackSnapshot{created: cp(tr.created), jobs: cp(tr.jobs), succeeded: cp(tr.succeeded), failed: failed}
}

// startWatches runs informers in the test process: Backups and agent Jobs
// for the clock, agent pods for the completer.
func startWatches(ctx context.Context, t *testing.T, cfg *rest.Config, scheme *k8sruntime.Scheme, tr *tracker, comp *completer) crcache.Cache {
	t.Helper()
	// Backup agents, and the agents that delete a volume store's artifacts
	// (the soak's retention and Replace delete Backups).
	req, err := labels.NewRequirement(componentLabel, selection.In, []string{"backup-agent", "delete-agent"})
	if err != nil {
		t.Fatal(err)
	}
	agents := labels.NewSelector().Add(*req)
	cache, err := crcache.New(cfg, crcache.Options{
		Scheme:            scheme,
		DefaultNamespaces: map[string]crcache.Config{benchNamespace: {}},
		ByObject: map[client.Object]crcache.ByObject{
			&batchv1.Job{}: {Label: agents},
			&corev1.Pod{}:  {Label: agents},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	add := func(obj client.Object, h toolscache.ResourceEventHandlerFuncs) {
		inf, err := cache.GetInformer(ctx, obj)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			t.Fatal(err)
		}
	}
	add(&backstopv1alpha1.Backup{}, toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if bk, ok := o.(*backstopv1alpha1.Backup); ok {
				tr.backup(bk)
			}
		},
		UpdateFunc: func(_, o any) {
			if bk, ok := o.(*backstopv1alpha1.Backup); ok {
				tr.backup(bk)
			}
		},
	})
	add(&batchv1.Job{}, toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if job, ok := o.(*batchv1.Job); ok {
				tr.job(job)
			}
		},
	})
	add(&corev1.Pod{}, toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if pod, ok := o.(*corev1.Pod); ok && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
				comp.enqueue(pod.DeepCopy())
			}
		},
	})
	go func() { _ = cache.Start(ctx) }()
	if !cache.WaitForCacheSync(ctx) {
		t.Fatal("the test's informers did not sync")
	}
	return cache
}

// operator is `backstop manager` running as its own process.
type operator struct {
	cmd        *exec.Cmd
	done       chan struct{}
	metricsURL string
	pprofURL   string
	logPath    string
	logFile    *os.File
	stopOnce   sync.Once
	cpu        time.Duration
	maxRSS     int64
}

func startOperator(ctx context.Context, t *testing.T, bin, kubeconfig string) *operator {
	t.Helper()
	metricsPort, probePort := freePort(t), freePort(t)
	pprofURL := ""
	logPath := filepath.Join(t.TempDir(), "operator.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "manager",
		"--leader-elect=false",
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(metricsPort),
		"--metrics-secure=false",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probePort),
		"--agent-image="+agentImage,
	)
	if os.Getenv("BACKSTOP_BENCH_CPUPROFILE") != "" {
		// Only when asked: a binary from BACKSTOP_BENCH_BINARY may not know the flag.
		pprofPort := freePort(t)
		cmd.Args = append(cmd.Args, "--pprof-bind-address=127.0.0.1:"+strconv.Itoa(pprofPort))
		pprofURL = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile", pprofPort)
	}
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	op := &operator{cmd: cmd, done: make(chan struct{}), metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), pprofURL: pprofURL, logPath: logPath, logFile: logf}
	go func() {
		_ = cmd.Wait()
		close(op.done)
	}()
	t.Cleanup(func() {
		op.stop(t)
		if t.Failed() {
			t.Logf("operator log tail:\n%s", tail(logPath, 60))
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	waitUntil(ctx, t, time.Minute, "the operator to be ready", func() bool {
		if op.exited() {
			t.Fatalf("the operator exited; log:\n%s", tail(logPath, 40))
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort))
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return op
}

// cpuProfile writes the operator's CPU profile of the next d to path, when
// BACKSTOP_BENCH_CPUPROFILE names one (`go tool pprof <binary> <path>`
// reads it). The channel is closed when the profile is written or failed.
func (op *operator) cpuProfile(t *testing.T, path string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if path == "" || op.pprofURL == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		hc := &http.Client{Timeout: d + 30*time.Second}
		resp, err := hc.Get(fmt.Sprintf("%s?seconds=%d", op.pprofURL, int(d.Seconds())))
		if err != nil {
			t.Errorf("CPU profile: %v", err)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		f, err := os.Create(path)
		if err != nil {
			t.Errorf("CPU profile: %v", err)
			return
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			t.Errorf("CPU profile: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("CPU profile: %v", err)
		}
		t.Logf("operator CPU profile of %s from the due time: %s", d, path)
	}()
	return done
}

// apiServerProfile writes the API server's CPU profile of the next d to
// path, when BACKSTOP_BENCH_APISERVER_CPUPROFILE names one: on these two
// cores the API server, not the operator, takes most of the CPU in the rush.
func apiServerProfile(ctx context.Context, t *testing.T, cs kubernetes.Interface, path string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if path == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		data, err := cs.Discovery().RESTClient().Get().AbsPath("/debug/pprof/profile").
			Param("seconds", strconv.Itoa(int(d.Seconds()))).Timeout(d + 30*time.Second).DoRaw(ctx)
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			t.Errorf("API server CPU profile: %v", err)
			return
		}
		t.Logf("API server CPU profile of %s from the due time: %s", d, path)
	}()
	return done
}

func (op *operator) exited() bool {
	select {
	case <-op.done:
		return true
	default:
		return false
	}
}

func (op *operator) stop(t *testing.T) {
	op.stopOnce.Do(func() {
		if !op.exited() {
			_ = op.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-op.done:
			case <-time.After(30 * time.Second):
				t.Errorf("the operator did not stop within 30s of SIGTERM")
				_ = op.cmd.Process.Kill()
				<-op.done
			}
		}
		if st := op.cmd.ProcessState; st != nil {
			op.cpu = st.UserTime() + st.SystemTime()
			if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
				op.maxRSS = ru.Maxrss << 10 // KiB on Linux
			}
		}
		_ = op.logFile.Close()
	})
}

func (op *operator) mustScrape(t *testing.T) scrape {
	t.Helper()
	sc, err := fetchMetrics(op.metricsURL)
	if err != nil {
		t.Fatalf("scrape the operator: %v", err)
	}
	return sc
}

// procStatus reads one "<key>: <n> kB" line of /proc/<pid>/status, in bytes.
func (op *operator) procStatus(key string) (int64, error) {
	v, err := op.procStatuses(key)
	return v[0], err
}

// procStatuses reads several "<key>: <n> kB" lines of /proc/<pid>/status in
// one read, in bytes, in the order asked.
func (op *operator) procStatuses(keys ...string) ([]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", op.cmd.Process.Pid))
	if err != nil {
		return make([]int64, len(keys)), err
	}
	defer f.Close()
	vals, found := make([]int64, len(keys)), 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for i, key := range keys {
			if rest, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err != nil {
					return vals, err
				}
				vals[i] = kb << 10
				found++
			}
		}
	}
	if found < len(keys) {
		return vals, fmt.Errorf("not all of %v in /proc/%d/status", keys, op.cmd.Process.Pid)
	}
	return vals, nil
}

// vmHWM is the operator's peak resident set size so far.
func (op *operator) vmHWM(t *testing.T) int64 {
	t.Helper()
	v, err := op.procStatus("VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitQueuesEmpty waits until no controller has work queued or running.
func (op *operator) waitQueuesEmpty(t *testing.T, limit time.Duration) {
	t.Helper()
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		sc, err := fetchMetrics(op.metricsURL)
		if err == nil && sc.sum("workqueue_depth", nil) == 0 && sc.sum("controller_runtime_active_workers", nil) == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the operator's work queues were not empty %s after the last Backup finished", limit)
}

type sampler struct {
	stopc    chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	peakRSS  int64
	maxDepth map[string]float64
	// What the peak is made of: anonymous memory and pages of the binary
	// (RssAnon, RssFile, at the sample of the peak VmRSS), and the largest
	// Go heap in use seen (go_memstats_heap_inuse_bytes, every 5 s).
	peakAnon, peakFile int64
	maxHeapInuse       float64
}

// sample reads the operator's RSS every 250 ms and its work queue depths
// every 5 s until stop. A scrape of the metrics is not free for the
// operator (1,000 schedules have thousands of series): scraped every second
// it took 9% of the operator's CPU in the rush, far more than a Prometheus
// scraping every 15 to 60 s would.
func (op *operator) sample(ctx context.Context) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{}), maxDepth: map[string]float64{}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-s.stopc:
				return
			case <-tick.C:
			}
			if v, err := op.procStatuses("VmRSS", "RssAnon", "RssFile"); err == nil {
				s.mu.Lock()
				if v[0] > s.peakRSS {
					s.peakRSS, s.peakAnon, s.peakFile = v[0], v[1], v[2]
				}
				s.mu.Unlock()
			}
			if i%20 != 0 {
				continue
			}
			sc, err := fetchMetrics(op.metricsURL)
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.maxHeapInuse = max(s.maxHeapInuse, sc.sum("go_memstats_heap_inuse_bytes", nil))
			for _, name := range controllersOf {
				s.maxDepth[name] = max(s.maxDepth[name], sc.sum("workqueue_depth", map[string]string{"name": name}))
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// stop ends the sampling; its fields are then the run's.
func (s *sampler) stop() {
	close(s.stopc)
	<-s.done
}

// report is what the benchmark measured.
type report struct {
	n              int
	due            time.Time
	allDone        time.Duration
	snap           trackSnapshot
	before, after  scrape
	hwm            int64
	rssSampled     int64
	peakAnon       int64
	peakFile       int64
	maxHeapInuse   int64
	rusageMaxRSS   int64
	maxDepth       map[string]float64
	cpu            time.Duration
	backups, jobs  int
	errorLines     int
	firstErrors    []string
	completed      int64
	completeFailed int64
}

// latencies returns how long after the due time each tracked event came, sorted.
func latencies(m map[string]time.Time, due time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(m))
	for _, at := range m {
		out = append(out, at.Sub(due))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// pct is the nearest-rank percentile of sorted durations.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

func (r report) reconcile(controller string) histogram {
	m := map[string]string{"controller": controller}
	return r.after.histogramOf("controller_runtime_reconcile_time_seconds", m).
		minus(r.before.histogramOf("controller_runtime_reconcile_time_seconds", m))
}

func (r report) delta(name string, match map[string]string) float64 {
	return r.after.sum(name, match) - r.before.sum(name, match)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func (r report) log(t *testing.T) {
	t.Helper()
	created, jobs := latencies(r.snap.created, r.due), latencies(r.snap.jobs, r.due)
	done := latencies(r.snap.succeeded, r.due)
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Operator at scale: %d BackupSchedules due at %s (GOMAXPROCS %d, %d CPUs)\n\n", r.n, r.due.UTC().Format(time.RFC3339), runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(&b, "| measure | value |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| Backups created (seen) / Jobs created (seen) | %d / %d (in the API at the end: %d / %d) |\n", len(created), len(jobs), r.backups, r.jobs)
	fmt.Fprintf(&b, "| Backup created after due: p50 / p99 / max | %s / %s / %s |\n", secs(pct(created, 0.5)), secs(pct(created, 0.99)), secs(pct(created, 1)))
	fmt.Fprintf(&b, "| Job created after due: p50 / p99 / max | %s / %s / %s |\n", secs(pct(jobs, 0.5)), secs(pct(jobs, 0.99)), secs(pct(jobs, 1)))
	fmt.Fprintf(&b, "| Backup Succeeded after due: p50 / p99 / max | %s / %s / %s |\n", secs(pct(done, 0.5)), secs(pct(done, 0.99)), secs(pct(done, 1)))
	fmt.Fprintf(&b, "| Backups Succeeded / Failed | %d / %d |\n", len(r.snap.succeeded), len(r.snap.failed))
	fmt.Fprintf(&b, "| every Backup over, after due | %s |\n", secs(r.allDone))
	fmt.Fprintf(&b, "| operator peak RSS (VmHWM; rusage maxrss; sampled VmRSS in the run) | %s; %s; %s |\n", mib(r.hwm), mib(r.rusageMaxRSS), mib(r.rssSampled))
	fmt.Fprintf(&b, "| of the sampled peak: anonymous; pages of the binary; largest Go heap in use | %s; %s; %s |\n", mib(r.peakAnon), mib(r.peakFile), mib(r.maxHeapInuse))
	fmt.Fprintf(&b, "| operator CPU time, whole life (user+system) | %s |\n", secs(r.cpu))
	total := r.delta("rest_client_requests_total", nil)
	conflicts := r.delta("rest_client_requests_total", map[string]string{"code": "409"})
	fmt.Fprintf(&b, "| operator API requests in the run (409 Conflict) | %.0f (%.0f) |\n", total, conflicts)
	var methods []string
	for _, m := range r.after.values("rest_client_requests_total", "method") {
		if v := r.delta("rest_client_requests_total", map[string]string{"method": m}); v > 0 {
			methods = append(methods, fmt.Sprintf("%s %.0f", m, v))
		}
	}
	var codes []string
	for _, c := range r.after.values("rest_client_requests_total", "code") {
		if v := r.delta("rest_client_requests_total", map[string]string{"code": c}); v > 0 {
			codes = append(codes, fmt.Sprintf("%s: %.0f", c, v))
		}
	}
	fmt.Fprintf(&b, "| requests by method; by code | %s; %s |\n", strings.Join(methods, ", "), strings.Join(codes, ", "))
	fmt.Fprintf(&b, "| operator log lines at error level (whole life) | %d |\n", r.errorLines)
	fmt.Fprintf(&b, "| completer: pods completed (failed) | %d (%d) |\n", r.completed, r.completeFailed)
	fmt.Fprintf(&b, "\n| controller | reconciles | errors | p50 | p99 | share <= %.0f ms | max queue depth |\n| --- | --- | --- | --- | --- | --- | --- |\n", targetReconcileP99*1000)
	for _, name := range controllersOf {
		h := r.reconcile(name)
		if h.count == 0 {
			continue
		}
		p50, _ := h.quantile(0.5)
		p99, up := h.quantile(0.99)
		errs := r.delta("controller_runtime_reconcile_errors_total", map[string]string{"controller": name})
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f ms | %.0f ms (bucket <= %g s) | %.2f%% | %.0f |\n",
			name, h.count, errs, p50*1000, p99*1000, up, 100*h.fractionAtMost(targetReconcileP99), r.maxDepth[name])
	}
	if len(r.firstErrors) > 0 {
		fmt.Fprintf(&b, "\nfirst operator errors:\n%s\n", strings.Join(r.firstErrors, "\n"))
	}
	if len(r.snap.failed) > 0 {
		var some []string
		for name, why := range r.snap.failed {
			some = append(some, name+": "+why)
			if len(some) == 5 {
				break
			}
		}
		fmt.Fprintf(&b, "\nfailed Backups (some):\n%s\n", strings.Join(some, "\n"))
	}
	t.Log(b.String())
}

// check fails the test for each target of the issue that was missed.
func (r report) check(t *testing.T) {
	t.Helper()
	jobs := latencies(r.snap.jobs, r.due)
	if len(r.snap.created) != r.n || len(r.snap.jobs) != r.n || r.backups != r.n || r.jobs != r.n {
		t.Errorf("want exactly %d Backups and Jobs; saw %d and %d, the API holds %d and %d", r.n, len(r.snap.created), len(r.snap.jobs), r.backups, r.jobs)
	}
	if m := pct(jobs, 1); m > targetJobLatency {
		t.Errorf("the last Job was created %s after the due time; target %s", secs(m), targetJobLatency)
	}
	if len(r.snap.succeeded) != r.n {
		t.Errorf("%d of %d Backups Succeeded", len(r.snap.succeeded), r.n)
	}
	if r.hwm > targetPeakRSS {
		t.Errorf("operator peak RSS %s; target %s", mib(r.hwm), mib(targetPeakRSS))
	}
	for _, name := range controllersOf {
		h := r.reconcile(name)
		if h.count > 0 && h.fractionAtMost(targetReconcileP99) < 0.99 {
			p99, _ := h.quantile(0.99)
			t.Errorf("controller %s: reconcile p99 about %.0f ms (%.2f%% within %.0f ms); target under %.0f ms", name, p99*1000, 100*h.fractionAtMost(targetReconcileP99), targetReconcileP99*1000, targetReconcileP99*1000)
		}
	}
	// A conflict storm is conflicts growing with the load: allow one 409
	// per hundred schedules, no more.
	if c := r.delta("rest_client_requests_total", map[string]string{"code": "409"}); c > float64(r.n)/100 {
		t.Errorf("%.0f requests answered 409 Conflict for %d schedules", c, r.n)
	}
}

// scanLog counts the operator's error-level log lines and keeps the first few.
func scanLog(path string) (count int, first []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"level":"error"`) {
			count++
			if len(first) < 5 {
				if len(line) > 400 {
					line = line[:400] + "..."
				}
				first = append(first, line)
			}
		}
	}
	return count, first
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
