// Package podrunner plays the kubelet of one node for end-to-end tests on a
// machine without a container runtime.
//
// A Runner registers a Node (Ready, with allocatable cpu, memory and pods)
// and keeps its Lease fresh, binds every pending pod that has no nodeName to
// that node, and runs the containers of the pods bound to it as local
// processes: init containers one after the other, then the other containers
// together, honouring restartPolicy. It writes the pod status back (phase,
// container states with exit code, reason, start and finish times and the
// termination message) and confirms the deletion of pods after killing their
// processes (SIGTERM, SIGKILL after the grace period).
//
// # Images and commands
//
// There are no images. Options.Images maps an image reference, exactly as
// written in the pod spec, to a binary on this machine. For a container whose
// image is mapped to binary B:
//   - without command, B runs with the container's args (B is the entrypoint);
//   - when the base name of command[0] equals the base name of B, or the last
//     path element of the image repository (for "ghcr.io/backstop-io/backstop:dev"
//     that is "backstop"), B runs in place of command[0] (the process still
//     sees command[0] as argv[0]);
//   - when a file with the base name of command[0] sits next to B, that file
//     runs in place of command[0]: B's directory stands for the image's other
//     binaries (an image that ships "backstop" and "backstop-agent");
//   - otherwise command[0] is looked up in the container's PATH on this
//     machine's filesystem (so "/bin/sh" is the host's shell).
//
// A container whose image is not mapped fails to start (reason StartError),
// unless Options.AllowUnmappedImages is set; then its command runs from the
// host filesystem as in the last case.
//
// # Volumes
//
// Each container process gets its own mount namespace whose root is a view of
// the host's root; the pod's volumes are bind-mounted at their mount paths
// (subPath and subPathExpr honoured, readOnly honoured; Secret, ConfigMap,
// downwardAPI and projected volumes are always read-only). Mount paths that do
// not exist are created in the view only, never on the host. Volume sources:
//   - secret, configMap, projected (secret, configMap, downwardAPI sources),
//     downwardAPI: the keys are written as files (items, defaultMode and
//     per-item mode honoured) in a per-pod directory when the pod starts;
//   - emptyDir: a per-pod directory;
//   - persistentVolumeClaim: a host directory per claim that outlives pods:
//     Options.PVCs["<namespace>/<claim>"] when set, else
//     <Root>/pvc/<namespace>/<claim>, created on demand (see PVCPath). The
//     PersistentVolumeClaim object itself is not required;
//   - hostPath: the path itself.
//
// The termination message file (terminationMessagePath, /dev/termination-log
// by default) is a host file bind-mounted into the view; its first 4096 bytes
// become the terminated state's message. With terminationMessagePolicy
// FallbackToLogsOnError, a failed container with an empty file gets the tail
// of its log instead (the last 80 lines, at most 2048 bytes).
//
// # Environment
//
// env (plain values with $(VAR) expansion, secretKeyRef, configMapKeyRef,
// fieldRef for metadata.name, metadata.namespace, metadata.uid, labels,
// annotations, spec.nodeName, spec.serviceAccountName, status.podIP and
// status.hostIP) and envFrom (secretRef, configMapRef, prefix), optional
// references honoured. A missing Secret or key leaves the container waiting
// (CreateContainerConfigError) and is retried, as the kubelet does. PATH,
// HOSTNAME and HOME get defaults when the pod does not set them.
//
// # What is not done
//
// Processes run as the current user: securityContext (runAsUser,
// readOnlyRootFilesystem, capabilities, seccomp) is ignored, as are
// resources, probes, lifecycle hooks, sidecar (restartable init) containers,
// and service-account token volumes. Secret volumes are not refreshed
// after the pod starts.
//
// The container processes are re-executions of the current binary (the test
// binary), which sets up the mounts in an init function of this package and
// then execs the container command; the package must therefore be linked
// into the binary that runs the Runner, which it is by construction.
//
// The package is Linux only and needs root (mount namespaces, pivot_root).
package podrunner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// nodeIP is the address of the node and of every pod.
const nodeIP = "127.0.0.1"

// DefaultNodeName is the node name when Options.NodeName is empty.
const DefaultNodeName = "podrunner"

// Options configures a Runner.
type Options struct {
	// Config reaches the API server; it needs rights to nodes, leases,
	// pods, pods/binding, pods/status, secrets and configmaps.
	Config *rest.Config
	// NodeName is the node this runner plays. Default DefaultNodeName.
	NodeName string
	// NodeLabels are added to the node's labels (kubernetes.io/hostname,
	// kubernetes.io/os and kubernetes.io/arch are always set). A pending pod
	// is bound only when its nodeSelector matches the node's labels;
	// affinity, taints and tolerations are not looked at. With several
	// runners on one API server, a pod without nodeSelector goes to whichever
	// binds it first.
	NodeLabels map[string]string
	// Images maps an image reference to a binary on this machine (see the
	// package documentation for how commands are rewritten).
	Images map[string]string
	// AllowUnmappedImages runs the command of a container whose image is
	// not in Images from the host filesystem instead of failing it.
	AllowUnmappedImages bool
	// Root holds per-pod directories and the default PVC directories.
	// Required for New; Start uses a test temporary directory when empty.
	Root string
	// LogDir receives one log file per pod and container (stdout and stderr
	// together). Default <Root>/logs.
	LogDir string
	// PVCs maps "<namespace>/<claim>" to a host directory; claims not in
	// the map get <Root>/pvc/<namespace>/<claim>.
	PVCs map[string]string
	// Capacity is the node's capacity and allocatable. Default: 16 cpu,
	// 64Gi memory, 110 pods.
	Capacity corev1.ResourceList
	// Logf receives the runner's own messages. Default: discarded by New,
	// the test log by Start.
	Logf func(format string, args ...any)
}

// Runner plays the kubelet of one node.
type Runner struct {
	opts    Options
	cs      kubernetes.Interface
	self    string // the executable re-run as the container shim
	ctx     context.Context
	cancel  context.CancelFunc
	queue   workqueue.TypedRateLimitingInterface[string]
	pods    cache.SharedIndexInformer
	wg      sync.WaitGroup
	stopped chan struct{}

	mu       sync.Mutex
	runs     map[types.UID]*podRun
	finished map[types.UID]bool
	stopOnce sync.Once
}

// Start starts a Runner and stops it when the test ends; when the test has
// failed, it logs every container log first.
func Start(t testing.TB, opts Options) *Runner {
	t.Helper()
	if opts.Root == "" {
		opts.Root = t.TempDir()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	r, err := New(opts)
	if err != nil {
		t.Fatalf("start pod runner: %v", err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("start pod runner: %v", err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			r.DumpLogs(t)
		}
	})
	return r
}

// New makes a Runner; Start starts it.
func New(opts Options) (*Runner, error) {
	if opts.Config == nil {
		return nil, errors.New("podrunner: Options.Config is required")
	}
	if opts.Root == "" {
		return nil, errors.New("podrunner: Options.Root is required")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("podrunner: needs root, to give each container a mount namespace")
	}
	if opts.NodeName == "" {
		opts.NodeName = DefaultNodeName
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	var err error
	if opts.Root, err = filepath.Abs(opts.Root); err != nil {
		return nil, err
	}
	if opts.LogDir == "" {
		opts.LogDir = filepath.Join(opts.Root, "logs")
	}
	if opts.LogDir, err = filepath.Abs(opts.LogDir); err != nil {
		return nil, err
	}
	images := make(map[string]string, len(opts.Images))
	for img, bin := range opts.Images {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return nil, err
		}
		images[img] = abs
	}
	opts.Images = images
	if opts.Capacity == nil {
		opts.Capacity = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("16"),
			corev1.ResourceMemory: resource.MustParse("64Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
	}
	for _, d := range []string{opts.Root, opts.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(opts.Config)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 200, 400
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Runner{
		opts:     opts,
		cs:       cs,
		self:     self,
		runs:     map[types.UID]*podRun{},
		finished: map[types.UID]bool{},
		stopped:  make(chan struct{}),
	}, nil
}

// Start registers the node and starts watching pods. It returns once the
// node is registered and the pod cache is synced; the runner works until
// Stop.
func (r *Runner) Start(ctx context.Context) error {
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if err := r.registerNode(ctx); err != nil {
		r.cancel()
		return fmt.Errorf("register node: %w", err)
	}

	factory := informers.NewSharedInformerFactory(r.cs, 30*time.Second)
	r.pods = factory.Core().V1().Pods().Informer()
	r.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 5*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "podrunner"},
	)
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			r.queue.Add(key)
		}
	}
	if _, err := r.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		r.cancel()
		return err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.pods.Run(r.ctx.Done())
	}()
	if !cache.WaitForCacheSync(ctx.Done(), r.pods.HasSynced) {
		r.cancel()
		r.wg.Wait()
		return errors.New("pod cache did not sync")
	}
	for i := 0; i < 4; i++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for r.processNext() {
			}
		}()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.heartbeat()
	}()
	return nil
}

// Stop kills every container process (SIGKILL), stops watching and waits
// for the runner's goroutines. Pod status is not written after Stop; a new
// Runner for the same node marks pods it finds half-run as failed (or
// restarts them, per their restartPolicy). The Node stays registered.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() {
		if r.cancel == nil {
			return
		}
		r.cancel()
		if r.queue != nil {
			r.queue.ShutDown()
		}
		r.wg.Wait()
		close(r.stopped)
	})
}

// NodeName is the name of the node this runner plays.
func (r *Runner) NodeName() string { return r.opts.NodeName }

// PVCPath is the host directory that stands for a PersistentVolumeClaim.
func (r *Runner) PVCPath(namespace, claim string) string {
	if p, ok := r.opts.PVCs[namespace+"/"+claim]; ok {
		return p
	}
	return filepath.Join(r.opts.Root, "pvc", namespace, claim)
}

// LogPath is the file holding a container's stdout and stderr (every run of
// the container, appended).
func (r *Runner) LogPath(namespace, pod, container string) string {
	return filepath.Join(r.opts.LogDir, fmt.Sprintf("%s_%s_%s.log", namespace, pod, container))
}

// PodLogs returns the logs of every container of a pod that has run, each
// under a header line.
func (r *Runner) PodLogs(namespace, pod string) string {
	files, _ := filepath.Glob(filepath.Join(r.opts.LogDir, fmt.Sprintf("%s_%s_*.log", namespace, pod)))
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s ---\n%s", filepath.Base(f), data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// DumpLogs writes every container log of this runner to the test log.
func (r *Runner) DumpLogs(t testing.TB) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.opts.LogDir, "*.log"))
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		t.Logf("pod runner log %s:\n%s", filepath.Base(f), data)
	}
}

func (r *Runner) logf(format string, args ...any) {
	select {
	case <-r.stopped:
		return
	default:
	}
	r.opts.Logf("podrunner: "+format, args...)
}

// --- node ---

func (r *Runner) registerNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: r.opts.NodeName, Labels: r.nodeLabels()}}
	_, err := r.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A runner for this node ran before: make the labels current.
		var old *corev1.Node
		if old, err = r.cs.CoreV1().Nodes().Get(ctx, r.opts.NodeName, metav1.GetOptions{}); err == nil {
			if old.Labels == nil {
				old.Labels = map[string]string{}
			}
			for k, v := range r.nodeLabels() {
				old.Labels[k] = v
			}
			_, err = r.cs.CoreV1().Nodes().Update(ctx, old, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return err
	}
	if err := r.updateNodeStatus(ctx); err != nil {
		return err
	}
	return r.renewLease(ctx)
}

func (r *Runner) nodeLabels() map[string]string {
	labels := map[string]string{
		"kubernetes.io/hostname": r.opts.NodeName,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     goruntime.GOARCH,
	}
	for k, v := range r.opts.NodeLabels {
		labels[k] = v
	}
	return labels
}

// fits tells whether a pending pod's nodeSelector matches this node.
func (r *Runner) fits(pod *corev1.Pod) bool {
	labels := r.nodeLabels()
	for k, v := range pod.Spec.NodeSelector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (r *Runner) updateNodeStatus(ctx context.Context) error {
	node, err := r.cs.CoreV1().Nodes().Get(ctx, r.opts.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		for _, old := range node.Status.Conditions {
			if old.Type == t && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	node.Status.Capacity = r.opts.Capacity
	node.Status.Allocatable = r.opts.Capacity
	node.Status.Phase = corev1.NodeRunning
	node.Status.Conditions = []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "podrunner has sufficient memory available"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "podrunner has no disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "podrunner has sufficient PID available"),
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "podrunner is posting ready status"),
	}
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: nodeIP},
		{Type: corev1.NodeHostName, Address: r.opts.NodeName},
	}
	node.Status.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion:          "podrunner",
		OperatingSystem:         "linux",
		Architecture:            goruntime.GOARCH,
		ContainerRuntimeVersion: "podrunner://1",
	}
	_, err = r.cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func (r *Runner) renewLease(ctx context.Context) error {
	leases := r.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, r.opts.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: r.opts.NodeName, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(r.opts.NodeName),
				LeaseDurationSeconds: ptr.To[int32](40),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity = ptr.To(r.opts.NodeName)
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

func (r *Runner) heartbeat() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		if err := r.renewLease(r.ctx); err != nil && r.ctx.Err() == nil {
			r.logf("renew lease: %v", err)
		}
		if err := r.updateNodeStatus(r.ctx); err != nil && r.ctx.Err() == nil {
			r.logf("update node status: %v", err)
		}
	}
}

// --- pods ---

func (r *Runner) processNext() bool {
	key, shutdown := r.queue.Get()
	if shutdown {
		return false
	}
	defer r.queue.Done(key)
	if err := r.sync(key); err != nil {
		if r.ctx.Err() != nil {
			return true
		}
		r.logf("sync pod %s: %v", key, err)
		r.queue.AddRateLimited(key)
		return true
	}
	r.queue.Forget(key)
	return true
}

func (r *Runner) sync(key string) error {
	ctx := r.ctx
	obj, exists, err := r.pods.GetIndexer().GetByKey(key)
	if err != nil {
		return err
	}
	var pod *corev1.Pod
	if exists {
		pod = obj.(*corev1.Pod)
	}

	// Kill the runs of a pod that is gone (or replaced by a new pod of the
	// same name).
	r.mu.Lock()
	var run *podRun
	for _, p := range r.runs {
		if p.key != key {
			continue
		}
		if pod == nil || p.uid != pod.UID {
			p.terminate(0)
		} else {
			run = p
		}
	}
	r.mu.Unlock()
	if pod == nil {
		return nil
	}

	if pod.Spec.NodeName == "" {
		if pod.DeletionTimestamp != nil || isTerminal(pod) || !r.fits(pod) {
			return nil
		}
		return r.bind(ctx, pod)
	}
	if pod.Spec.NodeName != r.opts.NodeName {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		if run != nil {
			grace := time.Duration(ptr.Deref(pod.DeletionGracePeriodSeconds, 30)) * time.Second
			run.terminate(grace)
			return nil
		}
		if isTerminal(pod) {
			return nil
		}
		// Nothing of it runs here: mark it ended and confirm the deletion.
		if startedBefore(pod) {
			if err := r.markLost(ctx, pod); err != nil {
				return err
			}
		}
		return r.confirmDeletion(ctx, pod)
	}
	if run != nil || isTerminal(pod) {
		return nil
	}
	r.mu.Lock()
	done := r.finished[pod.UID]
	r.mu.Unlock()
	if done {
		return nil
	}
	if startedBefore(pod) && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
		// A previous runner started it and its processes are gone.
		return r.markLost(ctx, pod)
	}
	r.startRun(pod)
	return nil
}

func (r *Runner) bind(ctx context.Context, pod *corev1.Pod) error {
	err := r.cs.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: r.opts.NodeName},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func (r *Runner) confirmDeletion(ctx context.Context, pod *corev1.Pod) error {
	err := r.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// markLost fails a pod whose containers a previous runner started: their
// processes are gone, as after a node reboot.
func (r *Runner) markLost(ctx context.Context, pod *corev1.Pod) error {
	lost := func(statuses []corev1.ContainerStatus) {
		now := metav1.Now()
		for i := range statuses {
			if statuses[i].State.Terminated != nil {
				continue
			}
			statuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode:   137,
				Reason:     "ContainerStatusUnknown",
				Message:    "The container could not be located when the pod runner restarted",
				FinishedAt: now,
			}}
			statuses[i].Ready = false
			statuses[i].Started = ptr.To(false)
		}
	}
	r.logf("pod %s/%s was started by a previous runner; marking it Failed", pod.Namespace, pod.Name)
	return updateStatus(ctx, r.cs, pod.Namespace, pod.Name, pod.UID, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodFailed
		lost(st.InitContainerStatuses)
		lost(st.ContainerStatuses)
		setCondition(st, corev1.PodReady, corev1.ConditionFalse, "PodFailed", "")
		setCondition(st, corev1.ContainersReady, corev1.ConditionFalse, "PodFailed", "")
	})
}

func (r *Runner) startRun(pod *corev1.Pod) {
	p := newPodRun(r, pod)
	r.mu.Lock()
	r.runs[pod.UID] = p
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		p.run()
		r.mu.Lock()
		delete(r.runs, pod.UID)
		r.finished[pod.UID] = true
		r.mu.Unlock()
		// The latest state of the pod may need handling (a deletion that
		// came while the run ended).
		if r.ctx.Err() == nil {
			r.queue.Add(p.key)
		}
	}()
}

func isTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// startedBefore tells whether some container of the pod has been started.
func startedBefore(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodRunning {
		return true
	}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, s := range list {
			if s.State.Running != nil || s.State.Terminated != nil {
				return true
			}
		}
	}
	return false
}
