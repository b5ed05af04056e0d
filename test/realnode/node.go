// Package realnode starts a one-node Kubernetes cluster on this machine for
// tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// kube-proxy, containerd with runc and a CNI bridge, and a kubelet. Pods
// run for real, as on any node: images imported into containerd, the
// securityContext enforced by runc, volumes mounted by the kubelet, Services
// routed by kube-proxy.
//
// The binaries come from hack/control-plane.sh --node (built from the Go
// module proxy, cached outside the clone); containerd, runc and the CNI
// plugins from Debian's packages (hack/setup.sh installs them).
//
// The pod network is the bridge BridgeName with the subnet PodSubnet, which
// exists on this machine only: no masquerading and, by a rule of its own,
// no forwarding off the bridge. The node's address on it, HostIP, is where
// the API server, the kubelet and the servers the tests start listen, so
// that pods reach them.
//
// Everything lives under one directory (Dir). A run first removes what a
// killed run left there (processes, containers, mounts, cgroups, iptables
// chains, the bridge), and Stop removes it again; only the logs stay, for a
// look after a failure. The node needs root.
package realnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backstop-io/backstop/internal/testutil/assets"
	"github.com/backstop-io/backstop/test/cluster"
)

const (
	// NodeName is the node's name.
	NodeName = "backstop-node"
	// BridgeName is the pods' bridge.
	BridgeName = "bsnode0"
	// PodSubnet is the pods' addresses.
	PodSubnet = "10.213.0.0/24"
	// HostIP is the node's address on the bridge: the pods' gateway.
	HostIP = "10.213.0.1"
	// ServiceSubnet holds the Services' virtual addresses.
	ServiceSubnet = "10.213.1.0/24"
	// PauseImage is containerd's sandbox image, made locally.
	PauseImage = "localhost/backstop-realnode/pause:1"
)

// Options configures a Node.
type Options struct {
	// Images are docker-archive files to import into containerd.
	Images []string
	// Scheme of Node.Client; nil means client-go's.
	Scheme *runtime.Scheme
}

// Node is a running one-node cluster.
type Node struct {
	// Config is an admin (system:masters) REST config.
	Config *rest.Config
	// Client is a controller-runtime client of Config with Options.Scheme.
	Client client.Client
	// Clientset is a client-go clientset of Config.
	Clientset kubernetes.Interface
	// Kubeconfig is an admin kubeconfig file (for kubectl and helm).
	Kubeconfig string
	// LogDir holds every component's log.
	LogDir string
	// Bin is the directory of the Kubernetes binaries.
	Bin string

	dir       string
	apiServer string
	pki       *pki
	procs     []*process
	lock      *os.File
}

// Dir is where the node keeps its state; fixed, so that a run finds what a
// killed one left.
func Dir() string { return filepath.Join(os.TempDir(), "backstop-realnode") }

// Start starts a node and stops it when the test ends; on a failed test it
// logs the tails of the components' logs.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	n, err := New(opts)
	if err != nil {
		t.Fatalf("start the real node: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"kubelet", "containerd", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver"} {
				t.Logf("%s log tail:\n%s", name, cluster.TailFile(filepath.Join(n.LogDir, name+".log"), 25))
			}
		}
		if err := n.Stop(); err != nil {
			t.Errorf("stop the real node: %v", err)
		}
	})
	return n
}

// New starts a node. The caller must call Stop.
func New(opts Options) (n *Node, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the real node needs root (containerd, runc, the kubelet and the bridge)")
	}
	for _, tool := range []string{"containerd", "ctr", "runc", "iptables", "ip", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: run hack/setup.sh (make test does)", tool)
		}
	}
	bin, err := binaries()
	if err != nil {
		return nil, err
	}
	n = &Node{dir: Dir(), Bin: bin}
	n.LogDir = filepath.Join(n.dir, "logs")
	// One node at a time on a machine.
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return nil, err
	}
	if n.lock, err = lockMachine(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = n.Stop()
			n = nil
		}
	}()
	if err := clean(n.dir, bin); err != nil {
		return n, fmt.Errorf("remove what an earlier run left: %w", err)
	}
	for _, d := range []string{"run", "logs", "cni", "pod-logs", "kubelet", "etcd"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return n, err
		}
	}
	if err := n.network(); err != nil {
		return n, err
	}
	if n.pki, err = newPKI(filepath.Join(n.dir, "pki"), []net.IP{net.ParseIP(HostIP), net.ParseIP("127.0.0.1"), serviceIP(1)}, NodeName); err != nil {
		return n, err
	}
	if err := n.startContainerd(opts.Images); err != nil {
		return n, err
	}
	if err := n.startControlPlane(); err != nil {
		return n, err
	}
	if err := n.clients(opts.Scheme); err != nil {
		return n, err
	}
	if err := n.startNode(); err != nil {
		return n, err
	}
	return n, n.waitReady(3 * time.Minute)
}

// lockMachine waits until no other node runs on this machine (they share
// the bridge, its subnet and Dir) and holds the lock until the file closes.
func lockMachine() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "backstop-realnode.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// binaries returns the directory of the Kubernetes binaries, building them
// on a cold cache.
func binaries() (string, error) {
	root, err := assets.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "control-plane.sh"), "--node")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/control-plane.sh --node: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// serviceIP is the i-th address of ServiceSubnet (1: the kubernetes Service).
func serviceIP(i byte) net.IP {
	ip, _, _ := net.ParseCIDR(ServiceSubnet)
	ip = ip.To4()
	return net.IPv4(ip[0], ip[1], ip[2], i)
}

// network makes the bridge with the node's address (the CNI plugin reuses
// it) and a rule that keeps pods' packets on it.
func (n *Node) network() error {
	cmds := [][]string{
		{"ip", "link", "add", BridgeName, "type", "bridge"},
		{"ip", "addr", "add", HostIP + "/24", "dev", BridgeName},
		{"ip", "link", "set", BridgeName, "up"},
		{"iptables", "-N", isolationChain},
		{"iptables", "-A", isolationChain, "-i", BridgeName, "!", "-o", BridgeName, "-j", "DROP"},
		{"iptables", "-I", "FORWARD", "-j", isolationChain},
	}
	for _, c := range cmds {
		if _, err := run(30*time.Second, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(n.dir, "cni", "10-backstop-realnode.conflist"), n.cniConfig())
}

func (n *Node) startContainerd(images []string) error {
	cfg := filepath.Join(n.dir, "containerd.toml")
	if err := writeFile(cfg, n.containerdConfig()); err != nil {
		return err
	}
	p, err := n.start("containerd", "containerd", "--config", cfg)
	if err != nil {
		return err
	}
	if err := p.waitFor(time.Minute, func() error {
		_, err := run(10*time.Second, "ctr", "--address", n.containerdSocket(), "version")
		return err
	}); err != nil {
		return err
	}
	pause, err := pauseImage(n.dir)
	if err != nil {
		return fmt.Errorf("make the pause image: %w", err)
	}
	for _, img := range append([]string{pause}, images...) {
		if _, err := run(10*time.Minute, "ctr", "--address", n.containerdSocket(), "-n", "k8s.io", "images", "import", "--no-unpack", img); err != nil {
			return fmt.Errorf("import %s: %w", filepath.Base(img), err)
		}
	}
	return nil
}

func (n *Node) startControlPlane() error {
	etcdPort, peerPort := freePort(), freePort()
	etcd, err := n.start("etcd", filepath.Join(n.Bin, "etcd"),
		"--data-dir="+filepath.Join(n.dir, "etcd"),
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", peerPort),
		fmt.Sprintf("--initial-cluster=default=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync")
	if err != nil {
		return err
	}
	if err := etcd.waitFor(time.Minute, httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", etcdPort), "")); err != nil {
		return err
	}

	apiPort := freePort()
	p := n.pki
	apiserver, err := n.start("kube-apiserver", filepath.Join(n.Bin, "kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		// The node's address: pods reach it through the kubernetes Service.
		"--bind-address="+HostIP, "--advertise-address="+HostIP,
		"--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--token-auth-file="+p.path("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"),
		"--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range="+ServiceSubnet,
		"--allow-privileged=false",
		"--profiling=false")
	if err != nil {
		return err
	}
	n.apiServer = fmt.Sprintf("https://%s:%d", HostIP, apiPort)
	if err := apiserver.waitFor(2*time.Minute, httpOK(n.apiServer+"/readyz", p.adminToken)); err != nil {
		return err
	}

	admin, err := p.kubeconfig("admin", n.apiServer, p.adminToken)
	if err != nil {
		return err
	}
	n.Kubeconfig = admin
	kcmConfig, err := p.kubeconfig("kube-controller-manager", n.apiServer, p.controllerToken)
	if err != nil {
		return err
	}
	kcmPort := freePort()
	kcm, err := n.start("kube-controller-manager", filepath.Join(n.Bin, "kube-controller-manager"),
		"--kubeconfig="+kcmConfig, "--authentication-kubeconfig="+kcmConfig, "--authorization-kubeconfig="+kcmConfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(n.dir, "kcm-certs"),
		"--service-account-private-key-file="+p.path("sa.key"), "--root-ca-file="+p.path("ca.crt"),
		"--use-service-account-credentials=false",
		// Every controller a node needs (node lifecycle lifts the not-ready
		// taint, the PV binder binds local volumes); none of a cloud's.
		"--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
		"--concurrent-job-syncs=10")
	if err != nil {
		return err
	}
	if err := kcm.waitFor(time.Minute, httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), "")); err != nil {
		return err
	}
	schedPort := freePort()
	sched, err := n.start("kube-scheduler", filepath.Join(n.Bin, "kube-scheduler"),
		"--kubeconfig="+kcmConfig, "--authentication-kubeconfig="+kcmConfig, "--authorization-kubeconfig="+kcmConfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort))
	if err != nil {
		return err
	}
	return sched.waitFor(time.Minute, httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), ""))
}

func (n *Node) clients(scheme *runtime.Scheme) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	n.Config = cfg
	if scheme == nil {
		scheme = clientgoscheme.Scheme
	}
	if n.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	n.Clientset, err = kubernetes.NewForConfig(cfg)
	return err
}

func (n *Node) startNode() error {
	kubeletConfig, err := n.pki.kubeconfig("kubelet", n.apiServer, n.pki.nodeToken)
	if err != nil {
		return err
	}
	port, healthz := freePort(), freePort()
	cfg := filepath.Join(n.dir, "kubelet-config.yaml")
	if err := writeFile(cfg, n.kubeletConfig(port, healthz)); err != nil {
		return err
	}
	kubelet, err := n.start("kubelet", filepath.Join(n.Bin, "kubelet"),
		"--config="+cfg, "--kubeconfig="+kubeletConfig,
		"--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--hostname-override="+NodeName, "--node-ip="+HostIP, "--v=2")
	if err != nil {
		return err
	}
	if err := kubelet.waitFor(2*time.Minute, httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz), "")); err != nil {
		return err
	}

	proxyConfig, err := n.pki.kubeconfig("kube-proxy", n.apiServer, n.pki.adminToken)
	if err != nil {
		return err
	}
	proxyHealthz := freePort()
	cfg = filepath.Join(n.dir, "kube-proxy-config.yaml")
	if err := writeFile(cfg, n.kubeProxyConfig(proxyConfig, proxyHealthz, freePort())); err != nil {
		return err
	}
	proxy, err := n.start("kube-proxy", filepath.Join(n.Bin, "kube-proxy"), "--config="+cfg)
	if err != nil {
		return err
	}
	return proxy.waitFor(time.Minute, httpOK(fmt.Sprintf("http://127.0.0.1:%d/livez", proxyHealthz), ""))
}

// waitReady waits for the node to be Ready with no taint, and for the
// default namespace's ServiceAccount and root CA ConfigMap, which every pod
// needs.
func (n *Node) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		last = n.notReady(ctx)
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready after %s: %s; kubelet log tail:\n%s", NodeName, timeout, last, cluster.TailFile(filepath.Join(n.LogDir, "kubelet.log"), 30))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (n *Node) notReady(ctx context.Context) string {
	node, err := n.Clientset.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return "the node is not Ready"
	}
	if len(node.Spec.Taints) > 0 {
		return fmt.Sprintf("the node has taints %v", node.Spec.Taints)
	}
	if _, err := n.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		return err.Error()
	}
	if _, err := n.Clientset.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err != nil {
		return err.Error()
	}
	return ""
}

// Stop stops every component, removes the pods' containers, mounts,
// cgroups, iptables chains and the bridge, and the node's state; the logs
// stay. Safe to call more than once.
func (n *Node) Stop() error {
	// The kubelet first, so that it restarts nothing; containerd's
	// containers are removed by clean through runc.
	for i := len(n.procs) - 1; i >= 0; i-- {
		n.procs[i].stop(15 * time.Second)
	}
	n.procs = nil
	err := clean(n.dir, n.Bin)
	if n.lock != nil {
		_ = n.lock.Close()
		n.lock = nil
	}
	return err
}

// ContainerLog is a container's log as the kubelet wrote it, read from the
// node's disk (what `kubectl logs` serves).
func (n *Node) ContainerLog(namespace, pod, container string) string {
	matches, _ := filepath.Glob(filepath.Join(n.dir, "pod-logs", namespace+"_"+pod+"_*", container, "*.log"))
	var b strings.Builder
	for _, m := range matches {
		data, _ := os.ReadFile(m)
		b.Write(data)
	}
	return b.String()
}

func httpOK(url, token string) func() error {
	hc := &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // health endpoints of local test processes
	}
	return func() error {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
