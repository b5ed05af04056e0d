package docs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestKrewManifest checks the krew manifest template: every platform
// installs the binary as kubectl-backstop, and what only a release knows is
// a placeholder, not a stale value.
func TestKrewManifest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "plugins", "krew", "backstop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Version   string `json:"version"`
			Platforms []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				URI    string `json:"uri"`
				SHA256 string `json:"sha256"`
				Bin    string `json:"bin"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "backstop" {
		t.Errorf("not the krew Plugin backstop: %s %s %s", m.APIVersion, m.Kind, m.Metadata.Name)
	}
	if m.Spec.Version != "RELEASE_VERSION" {
		t.Errorf("version %q: the release fills it in", m.Spec.Version)
	}
	if len(m.Spec.Platforms) == 0 {
		t.Fatal("no platforms")
	}
	for _, p := range m.Spec.Platforms {
		os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		suffix := strings.ToUpper(os + "_" + arch)
		if p.URI != "RELEASE_URL_"+suffix || p.SHA256 != "RELEASE_SHA256_"+suffix {
			t.Errorf("%s/%s: uri %q, sha256 %q: want the release placeholders", os, arch, p.URI, p.SHA256)
		}
		if p.Bin != "kubectl-backstop" {
			t.Errorf("%s/%s: bin %q, want kubectl-backstop (the name the binary runs as the plugin by)", os, arch, p.Bin)
		}
	}
}
