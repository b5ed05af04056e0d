package gitops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/backstop-io/backstop/test/cluster"
	"github.com/backstop-io/backstop/test/install"
)

// TestArgoCDHealth_Documented: the argocd-cm snippet of docs/gitops.md holds
// each kind's health check exactly as charts/backstop/argocd-health has it.
func TestArgoCDHealth_Documented(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "gitops.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "charts", "backstop", "argocd-health", "*.lua"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 6 {
		t.Errorf("%d health checks, want one per kind (6)", len(files))
	}
	for _, f := range files {
		kind := strings.TrimSuffix(filepath.Base(f), ".lua")
		script, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("  resource.customizations.health.backstop.io_" + kind + ": |\n")
		for _, line := range strings.SplitAfter(string(script), "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString("    ")
			}
			b.WriteString(line)
		}
		if !strings.Contains(string(doc), b.String()) {
			t.Errorf("docs/gitops.md does not hold %s as it is; paste it under resource.customizations.health.backstop.io_%s", f[len(root)+1:], kind)
		}
	}
}

// TestGitOpsDoc_YAML: every YAML block of docs/gitops.md is a well-formed
// object, and the argocd-cm ConfigMap's health keys are the scripts.
func TestGitOpsDoc_YAML(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "gitops.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) < 5 {
		t.Fatalf("%d YAML blocks", len(blocks))
	}
	found := 0
	for i, b := range blocks {
		body := b[:strings.Index(b, "```")]
		objs, err := install.Decode([]byte(body))
		if err != nil || len(objs) == 0 {
			t.Errorf("block %d: %v\n%s", i, err, body)
			continue
		}
		for _, o := range objs {
			if o.GetKind() != "ConfigMap" || o.GetName() != "argocd-cm" {
				continue
			}
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for key, script := range data {
				kind := strings.TrimPrefix(key, "resource.customizations.health.backstop.io_")
				want, err := healthScript(root, kind)
				if err != nil {
					t.Errorf("%s: %v", key, err)
					continue
				}
				if script != want {
					t.Errorf("%s differs from charts/backstop/argocd-health/%s.lua", key, kind)
				}
				found++
			}
		}
	}
	if found != 6 {
		t.Errorf("argocd-cm holds %d health checks, want 6", found)
	}
}
