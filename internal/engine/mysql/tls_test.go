package mysql

import (
	"slices"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
)

// What each TLS mode asks of the MariaDB client. verify-ca cannot be
// asked without the host name check, so it gets both: a certificate the
// client did not verify is never trusted.
func TestConnArgs_TLSModes(t *testing.T) {
	for mode, want := range map[string][]string{
		"disable":     {"--skip-ssl"},
		"prefer":      nil,
		"require":     {"--ssl"},
		"verify-ca":   {"--ssl", "--ssl-verify-server-cert"},
		"verify-full": {"--ssl", "--ssl-verify-server-cert"},
	} {
		e, err := New(engine.Options{Host: "db", TLSMode: mode, Databases: []string{"shop"}})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		var got []string
		for _, a := range e.connArgs() {
			if a == "--ssl" || a == "--skip-ssl" || a == "--ssl-verify-server-cert" {
				got = append(got, a)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: TLS arguments %q, want %q", mode, got, want)
		}
	}
}

// The target's CA bundle reaches the client where it verifies the server.
func TestConnArgs_CAFile(t *testing.T) {
	for mode, want := range map[string]bool{"require": false, "verify-ca": true, "verify-full": true} {
		e, err := New(engine.Options{Host: "db", TLSMode: mode, CAFile: "/var/run/backstop/db-ca/ca.crt", Databases: []string{"shop"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(e.connArgs(), "--ssl-ca=/var/run/backstop/db-ca/ca.crt"); got != want {
			t.Errorf("%s: --ssl-ca given = %v, want %v", mode, got, want)
		}
	}
}
