package scale

import (
	"math"
	"strings"
	"testing"
)

// The benchmark's numbers are only as good as its reading of the metrics.
func TestParseMetricsAndQuantile(t *testing.T) {
	text := `# HELP controller_runtime_reconcile_time_seconds Length of time per reconciliation per controller
# TYPE controller_runtime_reconcile_time_seconds histogram
controller_runtime_reconcile_time_seconds_bucket{controller="backup",le="0.1"} 90
controller_runtime_reconcile_time_seconds_bucket{controller="backup",le="0.2"} 99
controller_runtime_reconcile_time_seconds_bucket{controller="backup",le="0.4"} 100
controller_runtime_reconcile_time_seconds_bucket{controller="backup",le="+Inf"} 100
controller_runtime_reconcile_time_seconds_sum{controller="backup"} 5
controller_runtime_reconcile_time_seconds_count{controller="backup"} 100
rest_client_requests_total{code="409",host="127.0.0.1:1",method="POST"} 3
rest_client_requests_total{code="201",host="127.0.0.1:1",method="POST"} 7
odd{msg="a \"quoted\" value, with comma"} 1
workqueue_depth 4
`
	sc, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.sum("rest_client_requests_total", map[string]string{"code": "409"}); got != 3 {
		t.Errorf("409s = %v, want 3", got)
	}
	if got := sc.sum("rest_client_requests_total", nil); got != 10 {
		t.Errorf("requests = %v, want 10", got)
	}
	if got := sc.sum("workqueue_depth", nil); got != 4 {
		t.Errorf("depth = %v, want 4", got)
	}
	if got := sc.values("odd", "msg"); len(got) != 1 || got[0] != `a "quoted" value, with comma` {
		t.Errorf("label = %q", got)
	}
	h := sc.histogramOf("controller_runtime_reconcile_time_seconds", map[string]string{"controller": "backup"})
	if est, upper := h.quantile(0.99); math.Abs(est-0.2) > 1e-9 || upper != 0.2 {
		t.Errorf("p99 = %v (<= %v), want 0.2", est, upper)
	}
	if est, _ := h.quantile(0.5); math.Abs(est-0.1*50/90) > 1e-9 {
		t.Errorf("p50 = %v", est)
	}
	if f := h.fractionAtMost(0.2); f != 0.99 {
		t.Errorf("fraction = %v", f)
	}
	d := h.minus(histogram{count: 50, buckets: []bucket{{0.1, 50}, {0.2, 50}, {0.4, 50}, {math.Inf(1), 50}}})
	if est, upper := d.quantile(0.99); upper != 0.4 || est <= 0.2 {
		t.Errorf("p99 of the difference = %v (<= %v)", est, upper)
	}
}
