package install

import (
	"context"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/backstop-io/backstop/test/cluster"
)

// TestApplyChartRBAC runs as the chart's ServiceAccount (impersonated) and
// checks what it may and may not do.
func TestApplyChartRBAC(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := clusterWithNamespaces(t, ctx, "team-a", "other")

	sa := ApplyChartRBAC(t, c.Config, "backstop-e2e", "e2e")
	if want := "system:serviceaccount:backstop-e2e:e2e-backstop"; sa != want {
		t.Fatalf("ApplyChartRBAC = %q, want %q", sa, want)
	}
	cfg, cs := impersonating(t, c.Config, sa)

	tests := []struct {
		verb, group, resource, subresource, namespace string
		allowed                                       bool
	}{
		{"list", "backstop.io", "backups", "", "", true},
		{"watch", "backstop.io", "backupschedules", "", "", true},
		{"create", "backstop.io", "backups", "", "team-a", true},
		{"update", "backstop.io", "backups", "status", "team-a", true},
		{"update", "backstop.io", "restores", "finalizers", "team-a", true},
		{"create", "batch", "jobs", "", "team-a", true},
		{"update", "batch", "jobs", "", "team-a", false},
		{"list", "", "pods", "", "", true},
		{"create", "", "pods", "", "team-a", false},
		{"get", "", "secrets", "", "team-a", true},
		{"list", "", "secrets", "", "", true},
		{"create", "", "secrets", "", "team-a", false},
		{"update", "", "secrets", "", "team-a", false},
		{"patch", "", "secrets", "", "team-a", false},
		{"delete", "", "secrets", "", "team-a", false},
		{"deletecollection", "", "secrets", "", "team-a", false},
		{"create", "", "events", "", "team-a", true},
		{"create", "coordination.k8s.io", "leases", "", "backstop-e2e", true},
		{"create", "coordination.k8s.io", "leases", "", "other", false},
		{"create", "authentication.k8s.io", "tokenreviews", "", "", true},
		{"create", "authorization.k8s.io", "subjectaccessreviews", "", "", true},
		{"get", "", "configmaps", "", "team-a", false},
		// A Backup's finalizer lets go when its namespace is being deleted.
		{"get", "", "namespaces", "", "", true},
		{"delete", "", "namespaces", "", "", false},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", false},
	}
	for _, tt := range tests {
		name := tt.verb + " " + tt.resource
		if tt.subresource != "" {
			name += "/" + tt.subresource
		}
		if tt.namespace != "" {
			name += " in " + tt.namespace
		}
		t.Run(name, func(t *testing.T) {
			review, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: tt.verb, Group: tt.group, Resource: tt.resource, Subresource: tt.subresource, Namespace: tt.namespace,
				}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if review.Status.Allowed != tt.allowed {
				t.Errorf("allowed = %v, want %v (%s)", review.Status.Allowed, tt.allowed, review.Status.Reason)
			}
		})
	}

	// And real calls, not just the authorizer's opinion.
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Resource(schema.GroupVersionResource{Group: "backstop.io", Version: "v1alpha1", Resource: "backups"}).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list backups in every namespace as %s: %v", sa, err)
	}
	_, err = cs.CoreV1().Secrets("team-a").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "nope"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("create a Secret as %s: err = %v, want Forbidden", sa, err)
	}
}

// With watchNamespace, the operator's rules are a Role in that namespace.
// It may still read its own Namespace (a Backup's finalizer lets go when
// the namespace is being deleted), and no other.
func TestApplyChartRBAC_WatchNamespace(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := clusterWithNamespaces(t, ctx, "apps", "other")
	sa := ApplyChartRBAC(t, c.Config, "backstop-system", "one", "--set", "watchNamespace=apps")
	_, cs := impersonating(t, c.Config, sa)
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "apps", metav1.GetOptions{}); err != nil {
		t.Errorf("get the watched Namespace as %s: %v", sa, err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("get another Namespace as %s: err = %v, want Forbidden", sa, err)
	}
	if _, err := cs.CoreV1().Secrets("apps").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list Secrets in the watched namespace as %s: %v", sa, err)
	}
	if _, err := cs.CoreV1().Secrets("other").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list Secrets outside the watched namespace as %s: err = %v, want Forbidden", sa, err)
	}
}

// clusterWithNamespaces starts an API server with the CRDs and creates the
// namespaces.
func clusterWithNamespaces(t *testing.T, ctx context.Context, namespaces ...string) *cluster.Cluster {
	t.Helper()
	c := cluster.Start(t, cluster.Options{CRDDirectoryPaths: []string{"config/crd/bases"}})
	for _, ns := range namespaces {
		if _, err := c.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// impersonating returns a config and a clientset that act as user.
func impersonating(t *testing.T, cfg *rest.Config, user string) (*rest.Config, *kubernetes.Clientset) {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, cs
}
