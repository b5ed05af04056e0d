package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestReasonsAreDocumented keeps docs/reasons.md whole: every reason the
// code can put in a condition, a status or an event has a row there, and
// every row is a reason the code has.
func TestReasonsAreDocumented(t *testing.T) {
	// The store package's own reasons are turned into these before a user
	// sees them (its NotFound becomes ManifestNotFound, IntegrityMismatch or
	// StoreError), so it is left out.
	inCode := reasonsInCode(t, "internal/store", "api", "controllers", "internal")
	if len(inCode) < 40 {
		t.Fatalf("found only %d reasons in the code; the scan is broken", len(inCode))
	}
	doc, err := os.ReadFile("docs/reasons.md")
	if err != nil {
		t.Fatal(err)
	}
	inDoc := map[string]bool{}
	row := regexp.MustCompile("^\\| `([A-Za-z]+)` \\|")
	for _, line := range strings.Split(string(doc), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			if inDoc[m[1]] {
				t.Errorf("docs/reasons.md has two rows for %s", m[1])
			}
			inDoc[m[1]] = true
		}
	}
	for _, r := range slices.Sorted(maps.Keys(inCode)) {
		if !inDoc[r] {
			t.Errorf("reason %s (%s) has no row in docs/reasons.md", r, inCode[r])
		}
	}
	for _, r := range slices.Sorted(maps.Keys(inDoc)) {
		if _, ok := inCode[r]; !ok {
			t.Errorf("docs/reasons.md documents %s, which no Reason constant of the code has", r)
		}
	}
}

// reasonsInCode returns the values of the string constants named Reason...
// in the non-test Go files under dirs but not under skip, with a file that
// declares each.
// Values that are not one CamelCase word (retention's "keep" reasons) are
// not condition or event reasons.
func reasonsInCode(t *testing.T, skip string, dirs ...string) map[string]string {
	t.Helper()
	camel := regexp.MustCompile(`^[A-Z][A-Za-z]+$`)
	found := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path == skip {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
							continue
						}
						lit, ok := vs.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						v, err := strconv.Unquote(lit.Value)
						if err != nil || !camel.MatchString(v) {
							continue
						}
						if _, seen := found[v]; !seen {
							found[v] = path
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found
}
