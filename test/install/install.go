// Package install renders and applies Backstop's install manifests (the Helm
// chart in charts/backstop, the kustomization in config/default) for tests,
// with Helm 3, Helm 4 and kustomize built by hack/helm.sh.
//
// Other suites use ApplyChartRBAC to run the operator with exactly the
// permissions the chart grants.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backstop-io/backstop/test/cluster"
)

// FieldOwner is the server-side apply field manager of everything applied here.
const FieldOwner = "backstop-test"

// ChartDir is the chart's directory, relative to the repository root.
const ChartDir = "charts/backstop"

// Tools hack/helm.sh builds.
const (
	Helm3     = "v3"
	Helm4     = "v4"
	Kustomize = "kustomize"
)

var (
	toolsMu sync.Mutex
	tools   = map[string]string{}
)

// Tool returns the path of a binary hack/helm.sh builds (Helm3, Helm4 or
// Kustomize), building it on first use (minutes on a cold cache) and caching
// it outside the clone.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := toolPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func toolPath(name string) (string, error) {
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if p, ok := tools[name]; ok {
		return p, nil
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "helm.sh"), name)
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/helm.sh %s: %w\n%s", name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if p == "" {
		return "", fmt.Errorf("hack/helm.sh %s printed no path", name)
	}
	tools[name] = p
	return p, nil
}

// Run runs a tool from the repository root and returns its standard output.
func Run(t testing.TB, bin string, args ...string) []byte {
	t.Helper()
	out, err := RunErr(bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunErr runs a tool from the repository root; the error carries its stderr.
func RunErr(bin string, args ...string) ([]byte, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// Helm keeps its state out of the user's home.
	cmd.Env = append(cmd.Environ(), "HELM_CACHE_HOME="+filepath.Join(root, ".cache", "helm"), "HELM_CONFIG_HOME="+filepath.Join(root, ".cache", "helm-config"), "HELM_DATA_HOME="+filepath.Join(root, ".cache", "helm-data"))
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// RenderChart runs `helm template <release> charts/backstop --namespace
// <namespace> <args...>` and returns the rendered objects.
func RenderChart(t testing.TB, helm, release, namespace string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	all := append([]string{"template", release, ChartDir, "--namespace", namespace}, args...)
	objs, err := Decode(Run(t, helm, all...))
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return objs
}

// BuildKustomization runs `kustomize build <dir>` (dir relative to the
// repository root) and returns the objects.
func BuildKustomization(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Decode(Run(t, Tool(t, Kustomize), "build", dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return objs
}

// Decode splits a multi-document YAML stream into objects, skipping empty
// documents.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("a document without kind or apiVersion: %v", m)
		}
		objs = append(objs, u)
	}
}

// Filter returns the objects whose kind is one of kinds.
func Filter(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		for _, k := range kinds {
			if o.GetKind() == k {
				out = append(out, o)
				break
			}
		}
	}
	return out
}

// Find returns the object of a kind and name, or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// ServerVersion is the API server's version ("v1.36.3"), for `helm template
// --kube-version`.
func ServerVersion(cfg *rest.Config) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// Apply applies objects by server-side apply (field owner FieldOwner,
// forcing ownership): Namespaces and CRDs first, then, once the CRDs are
// established, the rest. Objects of a kind the server does not serve are
// an error.
func Apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	var first, rest []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			first = append(first, o)
		default:
			rest = append(rest, o)
		}
	}
	if err := applyAll(ctx, c, first); err != nil {
		return err
	}
	for _, o := range first {
		if o.GetKind() == "CustomResourceDefinition" {
			if err := waitEstablished(ctx, c, o.GetName()); err != nil {
				return err
			}
		}
	}
	return applyAll(ctx, c, rest)
}

func applyAll(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		u := o.DeepCopy()
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, c client.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, ci := range conds {
			cm, _ := ci.(map[string]any)
			if cm["type"] == "Established" && cm["status"] == "True" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Served tells whether the API server serves the object's kind.
func Served(cfg *rest.Config, o *unstructured.Unstructured) (bool, error) {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return false, err
	}
	gvk := o.GroupVersionKind()
	if _, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// rbacKinds are the kinds ApplyChartRBAC takes from the chart.
var rbacKinds = []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

// ApplyChartRBAC renders the chart with Helm 3 (default values but helmArgs, release in
// namespace) and applies only its ServiceAccount, ClusterRoles, Roles and
// their bindings, creating the namespace if needed. It returns the
// ServiceAccount's user name, "system:serviceaccount:<namespace>:<name>", to
// impersonate (rest.Config.Impersonate.UserName) so that an operator run by
// the test has exactly the permissions an installed one has.
//
// Release names the cluster-wide objects (<release>-backstop-manager, ...);
// use a fresh one per API server. helmArgs set values, as a user's
// install does (--set watchNamespace=apps).
func ApplyChartRBAC(t testing.TB, cfg *rest.Config, namespace, release string, helmArgs ...string) (serviceAccount string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	version, err := ServerVersion(cfg)
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	objs := Filter(RenderChart(t, Tool(t, Helm3), release, namespace, append([]string{"--kube-version", version}, helmArgs...)...), rbacKinds...)
	sas := Filter(objs, "ServiceAccount")
	if len(sas) != 1 {
		t.Fatalf("the chart renders %d ServiceAccounts, want 1", len(sas))
	}
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(namespace)
	if err := Apply(ctx, cfg, append([]*unstructured.Unstructured{ns}, objs...)); err != nil {
		t.Fatalf("apply the chart's RBAC: %v", err)
	}
	return fmt.Sprintf("system:serviceaccount:%s:%s", namespace, sas[0].GetName())
}

// Exists reports whether the object exists on the API server.
func Exists(ctx context.Context, cfg *rest.Config, o *unstructured.Unstructured) (bool, error) {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return false, err
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(o.GroupVersionKind())
	err = c.Get(ctx, client.ObjectKeyFromObject(o), got)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Keys lists "Kind namespace/name" of objects, sorted, for comparisons.
func Keys(objs []*unstructured.Unstructured, skipKinds ...string) []string {
	var keys []string
outer:
	for _, o := range objs {
		for _, k := range skipKinds {
			if o.GetKind() == k {
				continue outer
			}
		}
		keys = append(keys, fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName()))
	}
	sort.Strings(keys)
	return keys
}
