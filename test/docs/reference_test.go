// Package docs tests the documentation: docs/reference.md must be what
// hack/gen-reference makes of the CRDs, and the commands of
// docs/disaster-recovery.md must restore a real backup.
package docs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/backstop-io/backstop/hack/gen-reference/reference"
)

// repoRoot is the directory with go.mod above the working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func TestReferenceIsUpToDate(t *testing.T) {
	root := repoRoot(t)
	want, err := reference.Generate(filepath.Join(root, "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := reference.Generate(filepath.Join(root, "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, again) {
		t.Fatal("gen-reference is not deterministic: two runs differ")
	}
	got, err := os.ReadFile(filepath.Join(root, "docs", "reference.md"))
	if err != nil {
		t.Fatalf("%v; run `make docs`", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("docs/reference.md is stale: run `make docs` (after `make manifests`) and commit it.\nfirst difference at line %d:\n  file:      %q\n  generated: %q", i+1, g, w)
			}
		}
	}
}

// TestReferenceCoversEveryField walks each CRD's schema on its own and checks
// that every field of spec and status has a row in the kind's section of
// docs/reference.md, except inside the standard Kubernetes types, which must
// be linked instead.
func TestReferenceCoversEveryField(t *testing.T) {
	root := repoRoot(t)
	crds, err := reference.Load(filepath.Join(root, "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "reference.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, s := range strings.Split(string(doc), "\n## ")[1:] {
		title, _, _ := strings.Cut(s, "\n")
		sections[title] = s
	}
	if len(crds) != 6 {
		t.Errorf("%d CRDs in config/crd/bases, want the 6 kinds", len(crds))
	}
	for _, crd := range crds {
		kind := crd.Spec.Names.Kind
		sec, ok := sections[kind]
		if !ok {
			t.Errorf("docs/reference.md has no section for %s", kind)
			continue
		}
		for _, want := range append([]string{"`" + crd.Spec.Group + "/" + crd.Spec.Versions[0].Name + "`", string(crd.Spec.Scope)}, codes(crd.Spec.Names.ShortNames)...) {
			if !strings.Contains(sec, want) {
				t.Errorf("%s: the section lacks %s", kind, want)
			}
		}
		for _, v := range crd.Spec.Versions {
			for _, c := range v.AdditionalPrinterColumns {
				if !strings.Contains(sec, "| "+c.Name+" |") || !strings.Contains(sec, c.JSONPath) {
					t.Errorf("%s: printer column %s (%s) missing", kind, c.Name, c.JSONPath)
				}
			}
			schema := v.Schema.OpenAPIV3Schema
			fields := 0
			for _, top := range []string{"spec", "status"} {
				s, ok := schema.Properties[top]
				if !ok {
					continue
				}
				walk(t, kind, sec, top, &s, &fields)
			}
			if fields < 3 {
				t.Errorf("%s: only %d fields found in the schema", kind, fields)
			}
		}
	}
}

// summarized are the field names that hold standard Kubernetes types.
var summarized = map[string]bool{"affinity": true, "tolerations": true, "resources": true, "conditions": true}

func walk(t *testing.T, kind, sec, path string, s *apiextv1.JSONSchemaProps, fields *int) {
	t.Helper()
	for _, r := range s.XValidations {
		if !strings.Contains(sec, r.Message) {
			t.Errorf("%s: the validation message of %s is missing: %q", kind, path, r.Message)
		}
	}
	for name, p := range s.Properties {
		p := p
		fp := path + "." + name
		*fields++
		row := rowOf(sec, fp)
		if row == "" {
			t.Errorf("%s: no row for field %s", kind, fp)
			continue
		}
		if p.Description != "" && !strings.Contains(row, firstWords(p.Description)) {
			t.Errorf("%s: the row of %s lacks its description %q:\n%s", kind, fp, firstWords(p.Description), row)
		}
		for _, e := range p.Enum {
			if !strings.Contains(row, strings.Trim(string(e.Raw), `"`)) {
				t.Errorf("%s: the row of %s lacks the enum value %s", kind, fp, e.Raw)
			}
		}
		if p.Default != nil && !strings.Contains(row, strings.Trim(string(p.Default.Raw), `"`)) {
			t.Errorf("%s: the row of %s lacks the default %s", kind, fp, p.Default.Raw)
		}
		if p.MaxLength != nil && !strings.Contains(row, fmt.Sprintf("maxLength %d", *p.MaxLength)) {
			t.Errorf("%s: the row of %s lacks maxLength", kind, fp)
		}
		// A quantity's (int or string) pattern is the API's own regular
		// expression of quantities: the generator leaves it out.
		if p.Pattern != "" && !p.XIntOrString && !strings.Contains(row, strings.ReplaceAll(p.Pattern, "|", `\|`)) {
			t.Errorf("%s: the row of %s lacks its pattern", kind, fp)
		}
		item := &p
		if p.Type == "array" && p.Items != nil && p.Items.Schema != nil {
			item = p.Items.Schema
		}
		if _, core := reference.MatchCoreType(item); core {
			if !summarized[name] {
				t.Errorf("%s: %s is summarized as a Kubernetes type but is not one of %v", kind, fp, summarized)
			}
			if !strings.Contains(row, "](https://") {
				t.Errorf("%s: the row of %s does not link the Kubernetes type", kind, fp)
			}
			continue
		}
		if summarized[name] {
			t.Errorf("%s: %s looks like a standard Kubernetes type but is expanded", kind, fp)
		}
		next := fp
		if item != &p {
			next = fp + "[]"
		}
		walk(t, kind, sec, next, item, fields)
	}
}

// rowOf returns the row of the field at path in a field table (six
// columns; the validation rules table has three).
func rowOf(sec, path string) string {
	needle := "| `" + path + "` |"
	for _, line := range strings.Split(sec, "\n") {
		if strings.HasPrefix(line, needle) && strings.Count(line, "|")-strings.Count(line, `\|`) == 7 {
			return line
		}
	}
	return ""
}

func firstWords(desc string) string {
	w := strings.Fields(desc)
	if len(w) > 4 {
		w = w[:4]
	}
	s := strings.Join(w, " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "<", "&lt;")
	return strings.ReplaceAll(s, ">", "&gt;")
}

func codes(items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = "`" + s + "`"
	}
	return out
}
