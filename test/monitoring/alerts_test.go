package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/backstop-io/backstop/test/install"
)

// runbookBase is the runbook URL the rule tests render the chart with.
const runbookBase = "https://runbooks.example/backstop.md"

// renderRules renders the chart's PrometheusRule with the given --set values
// and returns it, or nil when the chart renders none.
func renderRules(t *testing.T, sets ...string) *unstructured.Unstructured {
	t.Helper()
	helm := install.Tool(t, install.Helm3)
	args := []string{}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	rules := install.Filter(install.RenderChart(t, helm, "backstop", "backstop-system", args...), "PrometheusRule")
	switch len(rules) {
	case 0:
		return nil
	case 1:
		return rules[0]
	}
	t.Fatalf("%d PrometheusRules", len(rules))
	return nil
}

// writeRuleFile writes the rule groups of a PrometheusRule as a Prometheus
// rule file.
func writeRuleFile(t *testing.T, pr *unstructured.Unstructured, path string) {
	t.Helper()
	groups, _, err := unstructured.NestedSlice(pr.Object, "spec", "groups")
	if err != nil || len(groups) == 0 {
		t.Fatalf("the PrometheusRule has no rule groups (%v)", err)
	}
	data, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func alertNames(t *testing.T, pr *unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	if pr == nil {
		return out
	}
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			rule := r.(map[string]any)
			out[rule["alert"].(string)] = rule
		}
	}
	return out
}

var allAlerts = []string{"BackstopBackupFailed", "BackstopBackupMissing", "BackstopStoreUnavailable",
	"BackstopRestoreFailed", "BackstopDrillFailed", "BackstopBackupNotVerified", "BackstopScheduleStalled", "BackstopScheduleSuspended"}

// TestAlerts_PromtoolRuleTests runs the rules the chart renders through
// promtool: each alert fires on series shaped like the operator's metrics
// when it should, with its labels and annotations, and stays silent when it
// should not (testdata/alerts.test.yaml).
func TestAlerts_PromtoolRuleTests(t *testing.T) {
	promtool := Promtool(t)
	pr := renderRules(t, "alerts.enabled=true", "alerts.scheduleSuspended.enabled=true", "alerts.runbookBaseURL="+runbookBase)
	if pr == nil {
		t.Fatal("alerts.enabled=true rendered no PrometheusRule")
	}
	dir := t.TempDir()
	writeRuleFile(t, pr, filepath.Join(dir, "rules.yaml"))
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, "rules.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	out, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, "alerts.test.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	// Every alert is tested.
	for name := range alertNames(t, pr) {
		if !strings.Contains(string(tests), "alertname: "+name+"\n") {
			t.Errorf("testdata/alerts.test.yaml does not test %s", name)
		}
	}
}

// TestAlerts_Values checks the chart's switches: no rule unless asked for,
// per-alert enable, for, severity, thresholds, labels and the runbook links.
func TestAlerts_Values(t *testing.T) {
	if pr := renderRules(t); pr != nil {
		t.Fatal("the chart renders a PrometheusRule by default; it needs the Prometheus Operator's CRDs")
	}
	defaults := alertNames(t, renderRules(t, "alerts.enabled=true"))
	for _, name := range allAlerts {
		_, on := defaults[name]
		if want := name != "BackstopScheduleSuspended"; on != want {
			t.Errorf("%s on by default = %v, want %v", name, on, want)
		}
	}
	for name, rule := range defaults {
		ann, _ := rule["annotations"].(map[string]any)
		url, _ := ann["runbook_url"].(string)
		if !strings.HasPrefix(url, "https://github.com/backstop-io/backstop/blob/main/docs/runbooks.md#"+strings.ToLower(name)) {
			t.Errorf("%s: runbook_url %q", name, url)
		}
		for _, key := range []string{"summary", "description"} {
			text, _ := ann[key].(string)
			if !strings.Contains(text, "$labels.namespace") {
				t.Errorf("%s: the %s does not name the namespace: %q", name, key, text)
			}
		}
	}

	pr := renderRules(t, "alerts.enabled=true", "alerts.labels.release=kps", "alerts.ruleLabels.team=storage",
		"alerts.backupFailed.enabled=false", "alerts.backupMissing.for=30m", "alerts.backupMissing.severity=page",
		"alerts.backupMissing.marginSeconds=7200", "alerts.restoreFailed.window=6h")
	if pr.GetLabels()["release"] != "kps" {
		t.Errorf("alerts.labels not on the PrometheusRule: %v", pr.GetLabels())
	}
	got := alertNames(t, pr)
	if _, on := got["BackstopBackupFailed"]; on {
		t.Error("alerts.backupFailed.enabled=false left the alert in")
	}
	missing := got["BackstopBackupMissing"]
	labels, _ := missing["labels"].(map[string]any)
	if missing["for"] != "30m" || labels["severity"] != "page" || labels["team"] != "storage" {
		t.Errorf("BackstopBackupMissing: for %v, labels %v", missing["for"], labels)
	}
	if expr, _ := missing["expr"].(string); !strings.Contains(expr, "backstop_schedule_expected_interval_seconds + 7200") {
		t.Errorf("BackstopBackupMissing ignores marginSeconds: %s", expr)
	}
	if expr, _ := got["BackstopRestoreFailed"]["expr"].(string); !strings.Contains(expr, "[6h]") || !strings.Contains(expr, "offset 6h") {
		t.Errorf("BackstopRestoreFailed ignores window: %s", expr)
	}

	helm := install.Tool(t, install.Helm3)
	for _, bad := range []string{"alerts.backupMissing.for=soon", "alerts.backupMissing.marginSeconds=-1", "alerts.storeUnavailable.page=true"} {
		if out, err := install.RunErr(helm, "template", "backstop", install.ChartDir, "--set", "alerts.enabled=true", "--set", bad); err == nil {
			t.Errorf("--set %s: accepted\n%.300s", bad, out)
		}
	}
}
