// Package enginetest holds checks that the database engines' tests run
// alike against their real servers.
package enginetest

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
)

// Refusal is a tlsMode, with a CA file, that must fail with Reason and
// an error that says Says.
type Refusal struct {
	Mode, CAFile, Reason, Says string
}

// CheckTLSModes runs engine name against a server that requires TLS and
// serves a certificate of rightCA's CA for base.Host: prefer, require,
// and verify-ca and verify-full with rightCA connect and dump base's
// databases (hasRows checks the dump); each refusal fails as it says, and
// no error reveals base.Password.
func CheckTLSModes(t *testing.T, name string, base engine.Options, rightCA string, hasRows func(dump string) bool, refusals []Refusal) {
	t.Helper()
	dump := func(mode, caFile string) (string, error) {
		o := base
		o.TLSMode, o.CAFile = mode, caFile
		if err := newEngine(t, name, o).Check(context.Background()); err != nil {
			return "", err
		}
		return Dump(t, name, o)
	}
	for _, c := range []struct{ mode, caFile string }{
		{"prefer", ""},
		{"require", ""},
		{"verify-ca", rightCA},
		{"verify-full", rightCA},
	} {
		out, err := dump(c.mode, c.caFile)
		if err != nil {
			t.Errorf("%s: %v", c.mode, err)
			continue
		}
		if !hasRows(out) {
			t.Errorf("%s: the dump has not the test's rows", c.mode)
		}
	}
	for _, c := range refusals {
		_, err := dump(c.Mode, c.CAFile)
		if got := engine.ReasonOf(err); got != c.Reason || err == nil || !strings.Contains(err.Error(), c.Says) {
			ca := "none"
			if c.CAFile != "" {
				ca = filepath.Base(c.CAFile)
			}
			t.Errorf("%s, CA %s: reason %q, error %v; want %s saying %q", c.Mode, ca, got, err, c.Reason, c.Says)
		}
		if err != nil && strings.Contains(err.Error(), base.Password) {
			t.Errorf("%s: the error reveals the password", c.Mode)
		}
	}
}

// Dump makes engine name with o and returns what it dumps.
func Dump(t *testing.T, name string, o engine.Options) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := newEngine(t, name, o).Dump(context.Background(), &out)
	return out.String(), err
}

func newEngine(t *testing.T, name string, o engine.Options) engine.Engine {
	t.Helper()
	e, err := engine.New(name, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
