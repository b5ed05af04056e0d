package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/backstop-io/backstop/test/install"
)

// grafanaVariables stand in for the variables Grafana expands in a query
// before it reaches Prometheus.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$__range", "1h",
	"$namespace", ".*",
)

type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// renderDashboard renders the chart with the dashboard on and returns the
// dashboard's JSON, checking the ConfigMap the Grafana sidecar loads.
func renderDashboard(t *testing.T) []byte {
	t.Helper()
	helm := install.Tool(t, install.Helm3)
	if cms := install.Filter(install.RenderChart(t, helm, "backstop", "backstop-system"), "ConfigMap"); len(cms) != 0 {
		t.Fatalf("the chart renders %d ConfigMaps by default; the dashboard is opt-in", len(cms))
	}
	cms := install.Filter(install.RenderChart(t, helm, "backstop", "backstop-system",
		"--set", "dashboard.enabled=true", "--set", "dashboard.namespace=monitoring", "--set", "dashboard.annotations.grafana_folder=Backups"), "ConfigMap")
	if len(cms) != 1 {
		t.Fatalf("dashboard.enabled=true rendered %d ConfigMaps", len(cms))
	}
	cm := cms[0]
	if cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetNamespace() != "monitoring" || cm.GetAnnotations()["grafana_folder"] != "Backups" {
		t.Errorf("the dashboard ConfigMap has labels %v, annotations %v, namespace %q", cm.GetLabels(), cm.GetAnnotations(), cm.GetNamespace())
	}
	data, ok := cm.Object["data"].(map[string]any)
	if !ok || len(data) != 1 {
		t.Fatalf("the dashboard ConfigMap holds %v", cm.Object["data"])
	}
	for _, v := range data {
		return []byte(v.(string))
	}
	return nil
}

// TestDashboard_QueriesParse checks the Grafana dashboard: valid JSON, every
// panel has queries, and every query parses as PromQL (promtool checks a rule
// file made of them) after Grafana's variables are expanded.
func TestDashboard_QueriesParse(t *testing.T) {
	promtool := Promtool(t)
	raw := renderDashboard(t)
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("the dashboard has title %q, uid %q, %d panels", d.Title, d.UID, len(d.Panels))
	}
	var rules []map[string]any
	for i, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for j, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q: query %d is empty", p.Title, j)
				continue
			}
			rules = append(rules, map[string]any{
				"record": fmt.Sprintf("dashboard:panel%d:query%d", i+1, j+1),
				"expr":   grafanaVariables.Replace(q.Expr),
			})
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("the dashboard's queries do not parse: %v\n%s\n%s", err, out, data)
	}
}

// TestDashboard_Panels checks that the dashboard shows what the chart's
// values promise.
func TestDashboard_Panels(t *testing.T) {
	raw := renderDashboard(t)
	for _, metric := range []string{
		"backstop_backups_total", "backstop_schedule_last_success_timestamp_seconds",
		"backstop_backup_duration_seconds_bucket", "backstop_backup_stored_bytes",
		"backstop_schedule_next_run_timestamp_seconds", "backstop_store_ready", "backstop_restores_total",
		"backstop_drills_total", "backstop_drill_duration_seconds_bucket", "backstop_backup_verified_timestamp_seconds",
	} {
		if !strings.Contains(string(raw), metric) {
			t.Errorf("the dashboard does not show %s", metric)
		}
	}
}
