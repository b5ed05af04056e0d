package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/backstop-io/backstop/internal/testutil/assets"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestManager_ServesProbesAndGuardsMetrics starts the manager against a real
// API server: it must take the leader Lease, answer its probes, and serve
// metrics only to callers the API server authenticates and authorises.
func TestManager_ServesProbesAndGuardsMetrics(t *testing.T) {
	dir, err := assets.ControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := assets.RepoRoot()
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfigPath)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	metricsPort, probePort := freePort(t), freePort(t)
	var logs bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runManager(ctx, []string{
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
			fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
			"--leader-election-namespace=default",
		}, &logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the manager did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
		}
	})

	waitFor(t, "the readiness probe", func() error {
		return expectStatus(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort), "", http.StatusOK)
	})
	if err := expectStatus(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", probePort), "", http.StatusOK); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the leader Lease", func() error {
		var lease *coordinationv1.Lease
		lease, err := cs.CoordinationV1().Leases("default").Get(ctx, "backstop.backstop.io", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("the Lease has no holder")
		}
		return nil
	})

	// A ServiceAccount allowed to read /metrics, and one that is not.
	reader := serviceAccountToken(t, cs, "metrics-reader")
	other := serviceAccountToken(t, cs, "someone-else")
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "backstop-metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "backstop-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "backstop-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "metrics-reader", Namespace: "default"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The endpoint serves a self-signed certificate.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", metricsPort)
	waitFor(t, "metrics for the authorised reader", func() error { return expectStatus(insecure, url, reader, http.StatusOK) })
	if err := expectStatus(insecure, url, "", http.StatusUnauthorized); err != nil {
		t.Errorf("anonymous: %v", err)
	}
	if err := expectStatus(insecure, url, "not-a-token", http.StatusUnauthorized); err != nil {
		t.Errorf("bad token: %v", err)
	}
	if err := expectStatus(insecure, url, other, http.StatusForbidden); err != nil {
		t.Errorf("unauthorised ServiceAccount: %v", err)
	}
}

func serviceAccountToken(t *testing.T, cs kubernetes.Interface, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func expectStatus(c *http.Client, url, token string, want int) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, want)
	}
	return nil
}

func waitFor(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
