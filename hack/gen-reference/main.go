// Command gen-reference writes docs/reference.md, the reference of every field
// of every Backstop kind, from the generated CRDs in config/crd/bases.
//
//	go run ./hack/gen-reference [-crds config/crd/bases] [-out docs/reference.md]
//
// `-out -` writes to standard output. `make docs` runs it; test/docs fails
// when docs/reference.md is stale.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/backstop-io/backstop/hack/gen-reference/reference"
)

func main() {
	crds := flag.String("crds", "config/crd/bases", "directory with the CustomResourceDefinition YAML files")
	out := flag.String("out", "docs/reference.md", "where to write the reference; - for standard output")
	flag.Parse()
	b, err := reference.Generate(*crds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-reference:", err)
		os.Exit(1)
	}
	if *out == "-" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-reference:", err)
		os.Exit(1)
	}
}
