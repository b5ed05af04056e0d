package postgres

import (
	"slices"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
)

// libpq gets the TLS mode, and the target's CA bundle when there is one.
func TestEnv_TLSModeAndCAFile(t *testing.T) {
	e, err := New(engine.Options{Host: "db", Databases: []string{"shop"}, TLSMode: "verify-full", CAFile: "/var/run/backstop/db-ca/ca.crt"})
	if err != nil {
		t.Fatal(err)
	}
	env := e.env()
	for _, want := range []string{"PGSSLMODE=verify-full", "PGSSLROOTCERT=/var/run/backstop/db-ca/ca.crt"} {
		if !slices.Contains(env, want) {
			t.Errorf("env has no %s", want)
		}
	}
	e, _ = New(engine.Options{Host: "db", Databases: []string{"shop"}})
	env = e.env()
	if !slices.Contains(env, "PGSSLMODE=prefer") || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PGSSLROOTCERT=") }) {
		t.Errorf("default env: want PGSSLMODE=prefer and no PGSSLROOTCERT")
	}
}
