// Package monitoring tests what the chart gives Prometheus and Grafana: the
// alerts of its PrometheusRule (with Prometheus's own rule tester, promtool,
// built by hack/promtool.sh) and its Grafana dashboard.
package monitoring

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	promtoolOnce sync.Once
	promtoolPath string
	promtoolErr  error
)

// Promtool returns the path of promtool, building it on first use (minutes on
// a cold cache). A missing promtool fails the test: the alerts are not tested
// without it.
func Promtool(t testing.TB) string {
	t.Helper()
	promtoolOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(), "hack", "promtool.sh"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			promtoolErr = fmt.Errorf("hack/promtool.sh: %w\n%s", err, stderr.String())
			return
		}
		promtoolPath = strings.TrimSpace(stdout.String())
		if promtoolPath == "" {
			promtoolErr = fmt.Errorf("hack/promtool.sh printed no path")
		}
	})
	if promtoolErr != nil {
		t.Fatal(promtoolErr)
	}
	return promtoolPath
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// metricName matches the names of Backstop's metrics in PromQL.
var metricName = regexp.MustCompile(`\bbackstop_[a-z_]+`)

// MetricFamilies returns the metric families (a histogram's _bucket, _sum and
// _count are its family) that the texts use, sorted.
func MetricFamilies(texts ...string) []string {
	seen := map[string]bool{}
	for _, text := range texts {
		for _, name := range metricName.FindAllString(text, -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(name, "_seconds"+suffix) || strings.HasSuffix(name, "_bytes"+suffix) {
					name = strings.TrimSuffix(name, suffix)
				}
			}
			seen[name] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
