// Package cluster starts a real Kubernetes control plane for tests: etcd and
// kube-apiserver through controller-runtime's envtest, plus (on request)
// kube-controller-manager as a separate process, so that the real Job
// controller, garbage collector and TTL-after-finished controller act on the
// objects a test creates.
//
// The binaries come from KUBEBUILDER_ASSETS, or, when that is unset, from the
// directory printed by hack/control-plane.sh (which builds them once and
// caches them).
//
// No kubelet and no scheduler run here: pods stay Pending until something
// binds and runs them (see package test/podrunner).
package cluster

import (
	"bufio"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/backstop-io/backstop/internal/testutil/assets"
)

// DefaultControllers are the kube-controller-manager controllers started when
// Options.Controllers is empty.
var DefaultControllers = []string{
	"job-controller",
	"garbage-collector-controller",
	"ttl-after-finished-controller",
}

// Options configures a Cluster.
type Options struct {
	// CRDDirectoryPaths are directories (or files) of CRD manifests to
	// install. Relative paths are taken from the repository root (the
	// directory holding go.mod), e.g. "config/crd/bases".
	CRDDirectoryPaths []string
	// IgnoreMissingCRDPaths makes a CRD path that does not exist a no-op
	// instead of an error.
	IgnoreMissingCRDPaths bool
	// ControllerManager starts kube-controller-manager against the API server.
	ControllerManager bool
	// Controllers is the --controllers list for kube-controller-manager.
	// Empty means DefaultControllers.
	Controllers []string
	// ControllerManagerArgs are extra kube-controller-manager flags
	// ("--flag=value").
	ControllerManagerArgs []string
	// Scheme is the scheme of Cluster.Client. Nil means client-go's scheme
	// (built-in kinds only); add the Backstop API to a scheme to get typed
	// access to its kinds.
	Scheme *runtime.Scheme
	// LogDir receives the control plane's logs (kube-controller-manager.log).
	// Empty means a new temporary directory.
	LogDir string
	// StartTimeout bounds the start of each component. Zero means 2 minutes.
	StartTimeout time.Duration
}

// Cluster is a running control plane.
type Cluster struct {
	// Config is an admin (system:masters) REST config for the API server.
	Config *rest.Config
	// Client is a controller-runtime client built from Config and
	// Options.Scheme.
	Client client.Client
	// Clientset is a client-go clientset built from Config.
	Clientset kubernetes.Interface
	// KubeconfigPath is a kubeconfig file for the same admin user.
	KubeconfigPath string
	// Env is the underlying envtest environment.
	Env *envtest.Environment
	// RepoRoot is the directory holding go.mod.
	RepoRoot string
	// LogDir holds the logs of the processes started here.
	LogDir string

	dir      string
	ownsDir  bool
	kcm      *exec.Cmd
	kcmDone  chan struct{}
	kcmLog   *os.File
	stopOnce sync.Once
	stopErr  error
}

// Start starts a Cluster and stops it when the test ends. On a failed test
// it logs the tail of the kube-controller-manager log.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatalf("start test cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && c.kcm != nil {
			t.Logf("kube-controller-manager log tail (%s):\n%s", c.ControllerManagerLogPath(), TailFile(c.ControllerManagerLogPath(), 60))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop test cluster: %v", err)
		}
	})
	return c
}

// New starts a Cluster. The caller must call Stop.
func New(opts Options) (c *Cluster, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	scheme := opts.Scheme
	if scheme == nil {
		scheme = clientgoscheme.Scheme
	}

	dir, err := os.MkdirTemp("", "backstop-cluster-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{RepoRoot: root, dir: dir, ownsDir: true, LogDir: opts.LogDir}
	defer func() {
		if err != nil {
			_ = c.Stop()
			c = nil
		}
	}()
	if c.LogDir == "" {
		c.LogDir = filepath.Join(dir, "logs")
	}
	if err := os.MkdirAll(c.LogDir, 0o755); err != nil {
		return c, err
	}

	var crdPaths []string
	for _, p := range opts.CRDDirectoryPaths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		if _, statErr := os.Stat(p); statErr != nil {
			if opts.IgnoreMissingCRDPaths && errors.Is(statErr, os.ErrNotExist) {
				continue
			}
			return c, fmt.Errorf("CRD path: %w", statErr)
		}
		crdPaths = append(crdPaths, p)
	}

	c.Env = &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        crdPaths,
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: timeout,
		ControlPlaneStopTimeout:  time.Minute,
	}
	c.Config, err = c.Env.Start()
	if err != nil {
		return c, fmt.Errorf("start envtest: %w", err)
	}

	c.Client, err = client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		return c, err
	}
	c.Clientset, err = kubernetes.NewForConfig(c.Config)
	if err != nil {
		return c, err
	}

	// A kubeconfig for an admin user of its own, for kubectl, the manager
	// and kube-controller-manager.
	admin, err := c.Env.AddUser(envtest.User{Name: "backstop-test-admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return c, fmt.Errorf("add admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return c, err
	}
	c.KubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.KubeconfigPath, kubeconfig, 0o600); err != nil {
		return c, err
	}

	if opts.ControllerManager {
		if err := c.startControllerManager(assets, opts, timeout); err != nil {
			return c, err
		}
	}
	return c, nil
}

// ControllerManagerLogPath is the file that receives kube-controller-manager's
// output.
func (c *Cluster) ControllerManagerLogPath() string {
	return filepath.Join(c.LogDir, "kube-controller-manager.log")
}

func (c *Cluster) startControllerManager(assets string, opts Options, timeout time.Duration) error {
	bin := filepath.Join(assets, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	controllers := opts.Controllers
	if len(controllers) == 0 {
		controllers = DefaultControllers
	}
	certDir := filepath.Join(c.dir, "kcm-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + c.KubeconfigPath,
		// No delegated authentication or authorization: the health
		// endpoints are always allowed, nothing else is used.
		"--controllers=" + strings.Join(controllers, ","),
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		// Quick reactions in tests.
		"--concurrent-job-syncs=10",
		"--concurrent-gc-syncs=10",
		"--concurrent-ttl-after-finished-syncs=10",
		"--v=1",
	}
	args = append(args, opts.ControllerManagerArgs...)

	logf, err := os.OpenFile(c.ControllerManagerLogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	c.kcmLog = logf
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Die with the test process even if it never gets to Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	c.kcm = cmd
	c.kcmDone = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(c.kcmDone)
	}()

	hc := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed serving cert of a local test process
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-c.kcmDone:
			return fmt.Errorf("kube-controller-manager exited during start; log tail:\n%s", TailFile(c.ControllerManagerLogPath(), 40))
		default:
		}
		resp, err := hc.Get(url)
		if err == nil {
			ok := resp.StatusCode == http.StatusOK
			_ = resp.Body.Close()
			if ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-controller-manager not healthy at %s after %s; log tail:\n%s", url, timeout, TailFile(c.ControllerManagerLogPath(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops kube-controller-manager (if started), then the API server and
// etcd, and removes the temporary files. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if c.kcm != nil && c.kcm.Process != nil {
			_ = syscall.Kill(-c.kcm.Process.Pid, syscall.SIGTERM)
			select {
			case <-c.kcmDone:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-c.kcm.Process.Pid, syscall.SIGKILL)
				<-c.kcmDone
			}
		}
		if c.kcmLog != nil {
			_ = c.kcmLog.Close()
		}
		if c.Env != nil {
			if err := c.Env.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop envtest: %w", err))
			}
		}
		// Keep the logs when the caller chose where they go.
		if c.ownsDir && c.dir != "" {
			if err := os.RemoveAll(c.dir); err != nil {
				errs = append(errs, err)
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// RepoRoot is the directory holding go.mod.
func RepoRoot() (string, error) { return assets.RepoRoot() }

// AssetsDir is the directory of the control-plane binaries:
// KUBEBUILDER_ASSETS, else what hack/control-plane.sh prints.
func AssetsDir() (string, error) { return assets.ControlPlane() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TailFile returns the last n lines of a file, or a note why it cannot;
// harnesses show it when a component fails.
func TailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
