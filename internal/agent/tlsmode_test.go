package agent

import (
	"os"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Every TLS mode a BackupTarget may hold, its default included, is one the
// agent takes: the CRD's enum and default are what users' objects carry, and
// the operator passes them to --tls-mode as they are.
func TestTLSModesOfTheCRDAreAccepted(t *testing.T) {
	b, err := os.ReadFile("../../config/crd/bases/backstop.io_backuptargets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(b, crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	seen := 0
	for _, engine := range []string{"postgres", "mysql"} {
		mode, ok := spec.Properties[engine].Properties["tlsMode"]
		if !ok {
			t.Fatalf("%s has no tlsMode in the CRD", engine)
		}
		values := []string{}
		if mode.Default != nil {
			values = append(values, string(mode.Default.Raw[1:len(mode.Default.Raw)-1]))
		}
		for _, v := range mode.Enum {
			values = append(values, string(v.Raw[1:len(v.Raw)-1]))
		}
		for _, v := range values {
			seen++
			if err := checkTLSMode(v); err != nil {
				t.Errorf("%s tlsMode %q: %v", engine, v, err)
			}
		}
	}
	if seen < 12 { // a default and five modes, twice
		t.Fatalf("read %d TLS modes from the CRD, want 12", seen)
	}
}
