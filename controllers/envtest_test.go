package controllers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/test/cluster"
)

// The tests of this package that need a real API server share one control
// plane (etcd and kube-apiserver), started on first use; each test works in
// a namespace of its own. Tests that need Jobs to run start their own, with
// kube-controller-manager.
var (
	sharedOnce    sync.Once
	sharedCluster *cluster.Cluster
	sharedErr     error
)

func TestMain(m *testing.M) {
	// The managers of these tests log nowhere; so do controller-runtime's
	// parts that use the global logger.
	ctrl.SetLogger(logr.Discard())
	code := m.Run()
	if sharedCluster != nil {
		if err := sharedCluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop test cluster:", err)
		}
	}
	os.Exit(code)
}

// realCluster returns the shared control plane with the Backstop CRDs.
func realCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	sharedOnce.Do(func() {
		s := runtime.NewScheme()
		if err := addSchemes(s); err != nil {
			sharedErr = err
			return
		}
		sharedCluster, sharedErr = cluster.New(cluster.Options{
			CRDDirectoryPaths: []string{"config/crd/bases"},
			Scheme:            s,
		})
	})
	if sharedErr != nil {
		t.Fatalf("start test cluster: %v", sharedErr)
	}
	return sharedCluster
}

func addSchemes(s *runtime.Scheme) error {
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return err
	}
	return backstopv1alpha1.AddToScheme(s)
}

// testNamespace creates a namespace for one test.
func testNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ctl-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createReadyRefs creates the target "orders" and the store "s3" in ns,
// Ready as their controllers would mark them, for tests that run neither.
func createReadyRefs(t *testing.T, c client.Client, ns string) {
	t.Helper()
	st, tg := readyStoreAndTarget()
	for _, o := range []conditions.Object{st, tg} {
		conds := o.GetConditions()
		o.SetNamespace(ns)
		o.SetGeneration(0)
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		for i := range conds {
			conds[i].ObservedGeneration = o.GetGeneration()
		}
		o.SetConditions(conds)
		if err := c.Status().Update(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
}

// staleReads is a client whose Get of a BackupSchedule can be made to return
// an older copy, as an informer cache that has not yet seen the last write
// does. Everything else goes through.
type staleReads struct {
	client.Client
	mu        sync.Mutex
	schedules map[client.ObjectKey]*backstopv1alpha1.BackupSchedule
	// hidden Backups are left out of lists, as by a cache that has not seen
	// them yet.
	hidden map[string]bool
}

func (c *staleReads) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := c.Client.List(ctx, list, opts...); err != nil {
		return err
	}
	bl, ok := list.(*backstopv1alpha1.BackupList)
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := bl.Items[:0]
	for _, bk := range bl.Items {
		if !c.hidden[bk.Name] {
			kept = append(kept, bk)
		}
	}
	bl.Items = kept
	return nil
}

// hide leaves a Backup out of lists until serveFresh.
func (c *staleReads) hide(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hidden == nil {
		c.hidden = map[string]bool{}
	}
	c.hidden[name] = true
}

func (c *staleReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if c.copyStale(key, obj) {
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// copyStale fills obj with the stale copy of key, if one is served.
func (c *staleReads) copyStale(key client.ObjectKey, obj client.Object) bool {
	bs, ok := obj.(*backstopv1alpha1.BackupSchedule)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.schedules[key]; old != nil {
		old.DeepCopyInto(bs)
		return true
	}
	return false
}

// reader wraps a reader (the API reader) with the same stale copies.
func (c *staleReads) reader(r client.Reader) client.Reader { return staleReader{Reader: r, src: c} }

type staleReader struct {
	client.Reader
	src *staleReads
}

func (r staleReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if r.src.copyStale(key, obj) {
		return nil
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// serveStale makes Get return old for its key until serveFresh.
func (c *staleReads) serveStale(old *backstopv1alpha1.BackupSchedule) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.schedules == nil {
		c.schedules = map[client.ObjectKey]*backstopv1alpha1.BackupSchedule{}
	}
	c.schedules[client.ObjectKeyFromObject(old)] = old.DeepCopy()
}

func (c *staleReads) serveFresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.schedules = nil
	c.hidden = nil
}

// recordedEvent is one event a reconciler sent.
type recordedEvent struct {
	Regarding, Related string
	Type, Reason, Note string
}

// eventLog is an events.EventRecorder that keeps every event, in order.
type eventLog struct {
	mu     sync.Mutex
	events []recordedEvent
}

func (l *eventLog) Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{}) {
	ev := recordedEvent{Type: eventtype, Reason: reason, Note: fmt.Sprintf(note, args...)}
	if o, ok := regarding.(client.Object); ok {
		ev.Regarding = o.GetName()
	}
	if o, ok := related.(client.Object); ok && related != nil {
		ev.Related = o.GetName()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

// withReason returns the events with one of the reasons.
func (l *eventLog) withReason(reasons ...string) []recordedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []recordedEvent
	for _, ev := range l.events {
		for _, r := range reasons {
			if ev.Reason == r {
				out = append(out, ev)
			}
		}
	}
	return out
}

// lineLog collects log lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
}

func (l *lineLog) containing(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// startManager starts a manager on the real API server, watching the
// namespace ns, whose client is
// wrapped by wrap (nil: none). setup registers the field indexes and the
// reconcilers; nil means the field indexes only (the test calls Reconcile
// itself). It stops with the test, or earlier by the function returned, as
// an operator that is killed.
func startManager(t *testing.T, cfg *rest.Config, ns string, wrap func(client.Client) client.Client, setup func(ctrl.Manager) error) (ctrl.Manager, func()) {
	t.Helper()
	s := runtime.NewScheme()
	if err := addSchemes(s); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 s,
		Logger:                 logr.Discard(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Only the test's namespace: the control plane is shared.
		Cache:      namespacedCache(ns),
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		NewClient: func(cfg *rest.Config, opts client.Options) (client.Client, error) {
			c, err := client.New(cfg, opts)
			if err != nil || wrap == nil {
				return c, err
			}
			return wrap(c), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if setup == nil {
		setup = func(mgr ctrl.Manager) error { return indexSpecRefs(ctx, mgr.GetFieldIndexer()) }
	}
	if err := setup(mgr); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("manager: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("the manager did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	syncCtx, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("the cache did not sync")
	}
	return mgr, stop
}

// eventually polls f until it returns nil, or fails the test with its last error.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForReady waits until obj's Ready condition has the reason, with
// inMessage in its message; obj is read into as it goes.
func waitForReady(t *testing.T, c client.Client, obj conditions.Object, reason, inMessage string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		ready := conditions.Get(obj, backstopv1alpha1.ConditionReady)
		if ready == nil || ready.Reason != reason || !strings.Contains(ready.Message, inMessage) {
			return fmt.Errorf("%s: Ready = %+v, want reason %s with %q", obj.GetName(), ready, reason, inMessage)
		}
		return nil
	})
}

// namespacedCache is the operator's cache, limited to the test's namespace:
// the control plane is shared.
func namespacedCache(ns string) cache.Options {
	opts := CacheOptions()
	opts.DefaultNamespaces = map[string]cache.Config{ns: {}}
	return opts
}
