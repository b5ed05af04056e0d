// Package reference renders the API reference (docs/reference.md) from the
// generated CustomResourceDefinitions. The CRDs' OpenAPI v3 schemas carry
// everything the reference shows: the Go doc comments as descriptions, enums,
// defaults, bounds, patterns, required fields and the CEL validation rules
// with their messages. The output depends only on the CRDs, so it is
// deterministic.
package reference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// KindOrder is the order the kinds appear in: where data goes, what is
// backed up, when, the runs, the restores. Kinds not listed follow, by name.
var KindOrder = []string{"BackupStore", "BackupTarget", "BackupSchedule", "Backup", "BackupDrill", "Restore"}

// CoreType is an embedded Kubernetes type that the reference names and links
// to instead of expanding its (large) schema.
type CoreType struct {
	// Name as shown, e.g. "core/v1 Affinity".
	Name string
	// URL of its documentation.
	URL string
	// Must are properties the schema must have; May are the others it may have.
	Must, May []string
}

// CoreTypes are recognized by the properties of their schema (CRD schemas
// carry no Go type names).
var CoreTypes = []CoreType{
	{
		Name: "core/v1 Affinity",
		URL:  "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling",
		Must: []string{"nodeAffinity", "podAffinity", "podAntiAffinity"},
	},
	{
		Name: "core/v1 Toleration",
		URL:  "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling",
		Must: []string{"effect", "key", "operator", "tolerationSeconds", "value"},
	},
	{
		Name: "core/v1 ResourceRequirements",
		URL:  "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#resources",
		Must: []string{"limits", "requests"},
		May:  []string{"claims"},
	},
	{
		Name: "meta/v1 Condition",
		URL:  "https://pkg.go.dev/k8s.io/apimachinery/pkg/apis/meta/v1#Condition",
		Must: []string{"lastTransitionTime", "message", "reason", "status", "type"},
		May:  []string{"observedGeneration"},
	},
}

// MatchCoreType returns the core type whose shape s has, if any.
func MatchCoreType(s *apiextv1.JSONSchemaProps) (CoreType, bool) {
	if s == nil || len(s.Properties) == 0 {
		return CoreType{}, false
	}
	for _, c := range CoreTypes {
		allowed := map[string]bool{}
		ok := true
		for _, p := range c.Must {
			allowed[p] = true
			if _, has := s.Properties[p]; !has {
				ok = false
			}
		}
		for _, p := range c.May {
			allowed[p] = true
		}
		for p := range s.Properties {
			if !allowed[p] {
				ok = false
			}
		}
		if ok {
			return c, true
		}
	}
	return CoreType{}, false
}

// Load reads every CustomResourceDefinition in the YAML files of dir.
func Load(dir string) ([]apiextv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var crds []apiextv1.CustomResourceDefinition
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, doc := range splitYAML(b) {
			var crd apiextv1.CustomResourceDefinition
			if err := yaml.UnmarshalStrict(doc, &crd); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue
			}
			crds = append(crds, crd)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinitions in %s", dir)
	}
	rank := func(kind string) int {
		for i, k := range KindOrder {
			if k == kind {
				return i
			}
		}
		return len(KindOrder)
	}
	sort.SliceStable(crds, func(i, j int) bool {
		a, b := crds[i].Spec.Names.Kind, crds[j].Spec.Names.Kind
		if rank(a) != rank(b) {
			return rank(a) < rank(b)
		}
		return a < b
	})
	return crds, nil
}

func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// Generate renders the reference for the CRDs in dir.
func Generate(dir string) ([]byte, error) {
	crds, err := Load(dir)
	if err != nil {
		return nil, err
	}
	return Render(crds), nil
}

// Render renders the reference for crds, in the order given.
func Render(crds []apiextv1.CustomResourceDefinition) []byte {
	w := &bytes.Buffer{}
	w.WriteString("# API reference\n\n")
	w.WriteString("<!-- Generated from config/crd/bases by `make docs` (go run ./hack/gen-reference). Do not edit by hand. -->\n\n")
	groups := map[string]bool{}
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			groups[crd.Spec.Group+"/"+v.Name] = true
		}
	}
	gv := sortedKeys(groups)
	fmt.Fprintf(w, "Every field of every Backstop kind (%s), as the API server validates it. ", codeList(gv))
	w.WriteString("Descriptions come from the Go types in `api/`; types, defaults and constraints from the generated CRDs. ")
	w.WriteString("Fields that hold a standard Kubernetes type link to the Kubernetes API reference. ")
	w.WriteString("The validation rules of each kind are CEL expressions the API server evaluates (`self` is the object at the field; `oldSelf` its value before an update).\n\n")
	w.WriteString("| Kind | Short names | Scope | What it is |\n| --- | --- | --- | --- |\n")
	for _, crd := range crds {
		k := crd.Spec.Names.Kind
		desc := ""
		if len(crd.Spec.Versions) > 0 && crd.Spec.Versions[0].Schema != nil && crd.Spec.Versions[0].Schema.OpenAPIV3Schema != nil {
			desc = firstSentence(crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Description)
		}
		fmt.Fprintf(w, "| [%s](#%s) | %s | %s | %s |\n", k, anchor(k), codeList(crd.Spec.Names.ShortNames), crd.Spec.Scope, cell(desc))
	}
	w.WriteString("\n")
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			renderVersion(w, &crd, &v, len(crd.Spec.Versions) > 1)
		}
	}
	return append(bytes.TrimRight(w.Bytes(), "\n"), '\n')
}

func renderVersion(w *bytes.Buffer, crd *apiextv1.CustomResourceDefinition, v *apiextv1.CustomResourceDefinitionVersion, multi bool) {
	kind := crd.Spec.Names.Kind
	title := kind
	if multi {
		title += " " + v.Name
	}
	prefix := strings.ToLower(kind)
	if multi {
		prefix += "-" + v.Name
	}
	fmt.Fprintf(w, "## %s\n\n", title)
	var root *apiextv1.JSONSchemaProps
	if v.Schema != nil {
		root = v.Schema.OpenAPIV3Schema
	}
	if root != nil && root.Description != "" {
		w.WriteString(text(root.Description) + "\n\n")
	}
	n := crd.Spec.Names
	w.WriteString("| | |\n| --- | --- |\n")
	fmt.Fprintf(w, "| API version | `%s/%s` |\n", crd.Spec.Group, v.Name)
	fmt.Fprintf(w, "| Kind | `%s` (list: `%s`) |\n", n.Kind, n.ListKind)
	fmt.Fprintf(w, "| Resource | `%s` (singular `%s`) |\n", n.Plural, n.Singular)
	fmt.Fprintf(w, "| Short names | %s |\n", orDash(codeList(n.ShortNames)))
	fmt.Fprintf(w, "| Categories | %s |\n", orDash(codeList(n.Categories)))
	fmt.Fprintf(w, "| Scope | %s |\n", crd.Spec.Scope)
	var sub []string
	if v.Subresources != nil {
		if v.Subresources.Status != nil {
			sub = append(sub, "`status`")
		}
		if v.Subresources.Scale != nil {
			sub = append(sub, "`scale`")
		}
	}
	fmt.Fprintf(w, "| Subresources | %s |\n", orDash(strings.Join(sub, ", ")))
	fmt.Fprintf(w, "| Served / storage | %t / %t |\n", v.Served, v.Storage)
	if v.Deprecated {
		msg := "yes"
		if v.DeprecationWarning != nil {
			msg = cell(*v.DeprecationWarning)
		}
		fmt.Fprintf(w, "| Deprecated | %s |\n", msg)
	}
	w.WriteString("\n")

	if len(v.AdditionalPrinterColumns) > 0 {
		fmt.Fprintf(w, "### %s printer columns\n\n", title)
		fmt.Fprintf(w, "What `kubectl get %s` shows (columns with priority above 0 only with `-o wide`).\n\n", n.Plural)
		w.WriteString("| Column | Type | JSONPath | Priority | Description |\n| --- | --- | --- | --- | --- |\n")
		for _, c := range v.AdditionalPrinterColumns {
			typ := c.Type
			if c.Format != "" {
				typ += " (" + c.Format + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d | %s |\n", cell(c.Name), typ, code(c.JSONPath), c.Priority, cell(c.Description))
		}
		w.WriteString("\n")
	}
	if root == nil {
		return
	}

	// Validation rules, anywhere in the schema outside core types.
	var rules []ruleRow
	collectRules(root, "", &rules)
	if len(rules) > 0 {
		fmt.Fprintf(w, "<a id=\"%s-rules\"></a>\n\n### %s validation rules\n\n", prefix, title)
		w.WriteString("| Field | Message | Rule |\n| --- | --- | --- |\n")
		for _, r := range rules {
			p := r.path
			if p == "" {
				p = "(object)"
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", code(p), cell(r.rule.Message), code(r.rule.Rule))
		}
		w.WriteString("\n")
	}

	fmt.Fprintf(w, "### %s fields\n\n", title)
	w.WriteString("Every object also has the standard `apiVersion`, `kind` and `metadata` ([meta/v1 ObjectMeta](https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/)).\n\n")
	for _, top := range []string{"spec", "status"} {
		s, ok := root.Properties[top]
		if !ok {
			continue
		}
		renderObjects(w, prefix, title, top, &s, contains(root.Required, top))
	}
}

type ruleRow struct {
	path string
	rule apiextv1.ValidationRule
}

func collectRules(s *apiextv1.JSONSchemaProps, path string, out *[]ruleRow) {
	if s == nil {
		return
	}
	if _, core := MatchCoreType(s); core {
		return
	}
	for _, r := range s.XValidations {
		*out = append(*out, ruleRow{path, r})
	}
	for _, k := range propNames(s) {
		p := s.Properties[k]
		collectRules(&p, join(path, k), out)
	}
	if s.Items != nil && s.Items.Schema != nil {
		collectRules(s.Items.Schema, path+"[]", out)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		collectRules(s.AdditionalProperties.Schema, path+"[*]", out)
	}
}

// object is one object type to render as a table.
type object struct {
	path   string
	schema *apiextv1.JSONSchemaProps
}

// renderObjects writes a table for the object at path and, depth first, for
// every object type inside it.
func renderObjects(w *bytes.Buffer, prefix, title, path string, s *apiextv1.JSONSchemaProps, required bool) {
	queue := []object{{path, s}}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		var nested []object
		fmt.Fprintf(w, "<a id=\"%s\"></a>\n\n#### %s `%s`\n\n", anchorFor(prefix, o.path), title, o.path)
		if o.schema.Description != "" {
			w.WriteString(text(o.schema.Description) + "\n\n")
		}
		if o.path == path && required {
			fmt.Fprintf(w, "`%s` is required.\n\n", path)
		}
		if len(o.schema.Properties) == 0 {
			w.WriteString("No fields.\n\n")
		} else {
			w.WriteString("| Field | Type | Required | Default | Constraints | Description |\n| --- | --- | --- | --- | --- | --- |\n")
			for _, name := range propNames(o.schema) {
				p := o.schema.Properties[name]
				fp := join(o.path, name)
				typ, child := typeOf(prefix, fp, &p)
				if child != nil {
					nested = append(nested, *child)
				}
				req := "optional"
				if contains(o.schema.Required, name) {
					req = "**required**"
				}
				fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | %s |\n", fp, typ, req, defaultOf(&p), constraints(prefix, &p), cell(p.Description))
			}
			w.WriteString("\n")
		}
		// Depth first: the children of this object come right after it.
		queue = append(nested, queue...)
	}
}

// typeOf describes the type of the field at path and returns the object type
// to render for it, if it has one.
func typeOf(prefix, path string, s *apiextv1.JSONSchemaProps) (string, *object) {
	if c, ok := MatchCoreType(s); ok {
		return fmt.Sprintf("[%s](%s)", c.Name, c.URL), nil
	}
	switch {
	case s.XIntOrString:
		return "int or string", nil
	case s.Type == "object" && len(s.Properties) > 0:
		return fmt.Sprintf("[object](#%s)", anchorFor(prefix, path)), &object{path, s}
	case s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil:
		t, child := typeOf(prefix, path+"[*]", s.AdditionalProperties.Schema)
		return "map[string]" + t, child
	case s.Type == "object" && s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields:
		return "object (free-form)", nil
	case s.Type == "object":
		return "object", nil
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil:
		if c, ok := MatchCoreType(s.Items.Schema); ok {
			return fmt.Sprintf("[][%s](%s)", c.Name, c.URL), nil
		}
		t, child := typeOf(prefix, path+"[]", s.Items.Schema)
		return "[]" + t, child
	case s.Type == "array":
		return "array", nil
	}
	t := s.Type
	if t == "" {
		t = "any"
	}
	if s.Format != "" {
		t += " (" + s.Format + ")"
	}
	return t, nil
}

func defaultOf(s *apiextv1.JSONSchemaProps) string {
	if s.Default == nil || len(s.Default.Raw) == 0 {
		return ""
	}
	var v interface{}
	if err := json.Unmarshal(s.Default.Raw, &v); err != nil {
		return code(string(s.Default.Raw))
	}
	if str, ok := v.(string); ok {
		return code(str)
	}
	b, _ := json.Marshal(v) // map keys sorted: deterministic
	return code(string(b))
}

func constraints(prefix string, s *apiextv1.JSONSchemaProps) string {
	var c []string
	c = append(c, scalarConstraints(s)...)
	if s.MinItems != nil {
		c = append(c, fmt.Sprintf("minItems %d", *s.MinItems))
	}
	if s.MaxItems != nil {
		c = append(c, fmt.Sprintf("maxItems %d", *s.MaxItems))
	}
	if s.UniqueItems {
		c = append(c, "unique items")
	}
	if s.MinProperties != nil {
		c = append(c, fmt.Sprintf("minProperties %d", *s.MinProperties))
	}
	if s.MaxProperties != nil {
		c = append(c, fmt.Sprintf("maxProperties %d", *s.MaxProperties))
	}
	if s.XListType != nil {
		switch *s.XListType {
		case "set":
			c = append(c, "list type set (unique items)")
		case "map":
			keys := make([]string, len(s.XListMapKeys))
			for i, k := range s.XListMapKeys {
				keys[i] = code(k)
			}
			c = append(c, "list type map (keyed by "+strings.Join(keys, ", ")+")")
		}
	}
	if s.Nullable {
		c = append(c, "nullable")
	}
	if len(s.XValidations) > 0 {
		c = append(c, fmt.Sprintf("[validation rules](#%s-rules)", prefix))
	}
	if s.Type == "array" && s.Items != nil && s.Items.Schema != nil {
		if _, core := MatchCoreType(s.Items.Schema); !core {
			if ic := scalarConstraints(s.Items.Schema); len(ic) > 0 {
				c = append(c, "each item: "+strings.Join(ic, ", "))
			}
		}
	}
	if s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		if vc := scalarConstraints(s.AdditionalProperties.Schema); len(vc) > 0 {
			c = append(c, "each value: "+strings.Join(vc, ", "))
		}
	}
	return strings.Join(c, "<br>")
}

func scalarConstraints(s *apiextv1.JSONSchemaProps) []string {
	var c []string
	if len(s.Enum) > 0 {
		vals := make([]string, 0, len(s.Enum))
		for _, e := range s.Enum {
			var v interface{}
			if err := json.Unmarshal(e.Raw, &v); err == nil {
				if str, ok := v.(string); ok {
					vals = append(vals, code(str))
					continue
				}
			}
			vals = append(vals, code(string(e.Raw)))
		}
		c = append(c, "one of "+strings.Join(vals, ", "))
	}
	if s.Minimum != nil {
		op := "minimum"
		if s.ExclusiveMinimum {
			op = "exclusive minimum"
		}
		c = append(c, op+" "+num(*s.Minimum))
	}
	if s.Maximum != nil {
		op := "maximum"
		if s.ExclusiveMaximum {
			op = "exclusive maximum"
		}
		c = append(c, op+" "+num(*s.Maximum))
	}
	if s.MultipleOf != nil {
		c = append(c, "multiple of "+num(*s.MultipleOf))
	}
	if s.MinLength != nil {
		c = append(c, fmt.Sprintf("minLength %d", *s.MinLength))
	}
	if s.MaxLength != nil {
		c = append(c, fmt.Sprintf("maxLength %d", *s.MaxLength))
	}
	if s.Pattern != "" && !s.XIntOrString {
		c = append(c, "pattern "+code(s.Pattern))
	}
	return c
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func propNames(s *apiextv1.JSONSchemaProps) []string {
	names := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func anchorFor(prefix, path string) string {
	r := strings.NewReplacer(".", "-", "[]", "-items", "[*]", "-values")
	return prefix + "-" + strings.ToLower(r.Replace(path))
}

// anchor is GitHub's anchor of a "## Kind" heading.
func anchor(kind string) string { return strings.ToLower(kind) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func codeList(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = code(s)
	}
	return strings.Join(out, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// code renders s as inline code that is safe inside a table cell.
func code(s string) string {
	if s == "" {
		return ""
	}
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return fence + pad + strings.ReplaceAll(s, "|", `\|`) + pad + fence
}

// text renders a description as Markdown paragraphs: the lines of a
// paragraph are joined, paragraphs separated by a blank line, and angle
// brackets escaped so that "<namespace>" is not taken for HTML.
func text(s string) string {
	paras := paragraphs(s)
	return strings.Join(paras, "\n\n")
}

// cell renders a description for a table cell: one line, paragraphs
// separated by <br>, pipes escaped.
func cell(s string) string {
	paras := paragraphs(s)
	for i, p := range paras {
		paras[i] = strings.ReplaceAll(p, "|", `\|`)
	}
	return strings.Join(paras, "<br><br>")
}

func paragraphs(s string) []string {
	var paras []string
	for _, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		lines := strings.Fields(strings.ReplaceAll(p, "\n", " "))
		if len(lines) == 0 {
			continue
		}
		paras = append(paras, escapeHTML(strings.Join(lines, " ")))
	}
	return paras
}

// escapeHTML escapes < and > outside inline code spans.
func escapeHTML(s string) string {
	var b strings.Builder
	inCode := false
	for _, r := range s {
		switch {
		case r == '`':
			inCode = !inCode
			b.WriteRune(r)
		case !inCode && r == '<':
			b.WriteString("&lt;")
		case !inCode && r == '>':
			b.WriteString("&gt;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}
