package install

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/backstop-io/backstop/test/cluster"
)

// secretWriteVerbs are the verbs the operator must never hold on Secrets.
var secretWriteVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}

// roleRules returns the rules of a Role or ClusterRole, or ok=false for other kinds.
func roleRules(t testing.TB, o *unstructured.Unstructured) (rules []rbacv1.PolicyRule, ok bool) {
	t.Helper()
	switch o.GetKind() {
	case "ClusterRole":
		var cr rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cr); err != nil {
			t.Fatalf("ClusterRole %s: %v", o.GetName(), err)
		}
		return cr.Rules, true
	case "Role":
		var r rbacv1.Role
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
			t.Fatalf("Role %s: %v", o.GetName(), err)
		}
		return r.Rules, true
	}
	return nil, false
}

// rbacViolations lists what the policy forbids in the roles and bindings of
// objs: a wildcard ("*") anywhere in a rule, a write verb on Secrets, and a
// binding to a role that objs do not define (cluster-admin, say).
func rbacViolations(t testing.TB, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var out []string
	roles := map[string]bool{}
	for _, o := range objs {
		rules, ok := roleRules(t, o)
		if !ok {
			continue
		}
		roles[o.GetKind()+"/"+o.GetName()] = true
		where := fmt.Sprintf("%s %s", o.GetKind(), o.GetName())
		for i, r := range rules {
			for field, values := range map[string][]string{
				"apiGroups":       r.APIGroups,
				"resources":       r.Resources,
				"verbs":           r.Verbs,
				"nonResourceURLs": r.NonResourceURLs,
			} {
				for _, v := range values {
					if strings.Contains(v, "*") {
						out = append(out, fmt.Sprintf("%s rule %d: wildcard %q in %s", where, i, v, field))
					}
				}
			}
			coreGroup := slices.Contains(r.APIGroups, "") || slices.Contains(r.APIGroups, "*")
			secrets := slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*")
			if coreGroup && secrets {
				for _, v := range r.Verbs {
					if slices.Contains(secretWriteVerbs, v) || v == "*" {
						out = append(out, fmt.Sprintf("%s rule %d: %s on secrets", where, i, v))
					}
				}
			}
		}
	}
	for _, o := range objs {
		if o.GetKind() != "ClusterRoleBinding" && o.GetKind() != "RoleBinding" {
			continue
		}
		kind, _, _ := unstructured.NestedString(o.Object, "roleRef", "kind")
		name, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
		if !roles[kind+"/"+name] {
			out = append(out, fmt.Sprintf("%s %s binds %s %s, which the install does not define", o.GetKind(), o.GetName(), kind, name))
		}
	}
	return out
}

func TestRBACPolicy_CatchesViolations(t *testing.T) {
	role := func(kind string, rules ...rbacv1.PolicyRule) *unstructured.Unstructured {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&rbacv1.ClusterRole{Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetAPIVersion("rbac.authorization.k8s.io/v1")
		u.SetKind(kind)
		u.SetName("r")
		return u
	}
	binding := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": "b"},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
	}}
	tests := []struct {
		name string
		objs []*unstructured.Unstructured
		want int
	}{
		{"read secrets", []*unstructured.Unstructured{role("ClusterRole", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}})}, 0},
		{"wildcard verb", []*unstructured.Unstructured{role("ClusterRole", rbacv1.PolicyRule{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"*"}})}, 1},
		{"wildcard resource", []*unstructured.Unstructured{role("Role", rbacv1.PolicyRule{APIGroups: []string{"backstop.io"}, Resources: []string{"*"}, Verbs: []string{"get"}})}, 1},
		{"wildcard group", []*unstructured.Unstructured{role("Role", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"pods"}, Verbs: []string{"get"}})}, 1},
		{"create secrets", []*unstructured.Unstructured{role("Role", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods", "secrets"}, Verbs: []string{"get", "create"}})}, 1},
		{"every secret write", []*unstructured.Unstructured{role("ClusterRole", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: secretWriteVerbs})}, len(secretWriteVerbs)},
		{"subresource wildcard", []*unstructured.Unstructured{role("ClusterRole", rbacv1.PolicyRule{APIGroups: []string{"backstop.io"}, Resources: []string{"backups/*"}, Verbs: []string{"update"}})}, 1},
		{"binding to cluster-admin", []*unstructured.Unstructured{binding}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rbacViolations(t, tt.objs); len(got) != tt.want {
				t.Errorf("violations = %q, want %d", got, tt.want)
			}
		})
	}
}

// chartVariants are the value sets the chart is checked with.
var chartVariants = []struct {
	name string
	args []string
}{
	{"defaults", nil},
	{"watchNamespace", []string{"--set", "watchNamespace=apps"}},
	{"serviceMonitor and metrics readers", []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.readerSubjects[0].kind=ServiceAccount", "--set", "metrics.readerSubjects[0].name=prometheus", "--set", "metrics.readerSubjects[0].namespace=monitoring"}},
	{"metrics off, no aggregation", []string{"--set", "metrics.enabled=false", "--set", "rbac.aggregateToDefaultRoles=false"}},
}

func TestRBACPolicy_ChartAndKustomize(t *testing.T) {
	for _, h := range []string{Helm3, Helm4} {
		helm := Tool(t, h)
		for _, v := range chartVariants {
			t.Run("helm "+h+"/"+v.name, func(t *testing.T) {
				objs := RenderChart(t, helm, "backstop", "backstop-system", v.args...)
				if len(Filter(objs, "ClusterRole", "Role")) == 0 {
					t.Fatal("the chart renders no roles")
				}
				for _, msg := range rbacViolations(t, objs) {
					t.Error(msg)
				}
			})
		}
	}
	t.Run("kustomize config/default", func(t *testing.T) {
		for _, msg := range rbacViolations(t, BuildKustomization(t, "config/default")) {
			t.Error(msg)
		}
	})
	t.Run("config/rbac files", func(t *testing.T) {
		root, err := cluster.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		files, err := filepath.Glob(filepath.Join(root, "config", "rbac", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var objs []*unstructured.Unstructured
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			o, err := Decode(data)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs = append(objs, o...)
		}
		for _, msg := range rbacViolations(t, objs) {
			t.Error(msg)
		}
	})
}

// roleYAMLRules reads the rules controller-gen writes to config/rbac/role.yaml.
func roleYAMLRules(t *testing.T) ([]rbacv1.PolicyRule, []byte) {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cr rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &cr); err != nil {
		t.Fatal(err)
	}
	if len(cr.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return cr.Rules, data
}

func TestManagerRules_MatchRoleYAML(t *testing.T) {
	want, roleYAML := roleYAMLRules(t)
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile(filepath.Join(root, ChartDir, "files", "manager-role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(copied) != string(roleYAML) {
		t.Errorf("%s/files/manager-role.yaml differs from config/rbac/role.yaml; copy it: cp config/rbac/role.yaml %s/files/manager-role.yaml", ChartDir, ChartDir)
	}
	check := func(t *testing.T, objs []*unstructured.Unstructured, kind, name, namespace string) {
		t.Helper()
		o := Find(objs, kind, name)
		if o == nil {
			t.Fatalf("no %s %s in %q", kind, name, Keys(objs))
		}
		if o.GetNamespace() != namespace {
			t.Errorf("%s %s in namespace %q, want %q", kind, name, o.GetNamespace(), namespace)
		}
		got, _ := roleRules(t, o)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s rules differ from config/rbac/role.yaml:\n got %+v\nwant %+v", kind, name, got, want)
		}
	}
	for _, h := range []string{Helm3, Helm4} {
		helm := Tool(t, h)
		t.Run("helm "+h, func(t *testing.T) {
			objs := RenderChart(t, helm, "backstop", "backstop-system")
			check(t, objs, "ClusterRole", "backstop-manager", "")
			if Find(objs, "Role", "backstop-manager") != nil {
				t.Error("a namespaced manager Role without watchNamespace")
			}
		})
		t.Run("helm "+h+" watchNamespace", func(t *testing.T) {
			objs := RenderChart(t, helm, "backstop", "backstop-system", "--set", "watchNamespace=apps")
			check(t, objs, "Role", "backstop-manager", "apps")
			if Find(objs, "ClusterRole", "backstop-manager") != nil || Find(objs, "ClusterRoleBinding", "backstop-manager") != nil {
				t.Error("cluster-wide manager rules with watchNamespace")
			}
			rb := Find(objs, "RoleBinding", "backstop-manager")
			if rb == nil || rb.GetNamespace() != "apps" {
				t.Fatalf("no RoleBinding backstop-manager in apps: %v", rb)
			}
		})
	}
	t.Run("kustomize", func(t *testing.T) {
		check(t, BuildKustomization(t, "config/default"), "ClusterRole", "backstop-manager", "")
	})
}
