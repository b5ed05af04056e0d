package postgres

import (
	"net"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/engine/enginetest"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
	"github.com/backstop-io/backstop/internal/testutil/testtls"
)

// A real server that refuses connections without TLS, and serves a
// certificate of a test CA for 127.0.0.1: each tlsMode does what libpq's
// sslmode of the same name promises, and a failure has a reason and says
// why.
func TestPostgres_TLSAgainstARealServer(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no ~/.postgresql/root.crt for libpq to fall back on
	s := pgserver.Start(t)
	ca := testtls.Serve(t, s, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	s.MustQuery(t, "postgres", "CREATE DATABASE shop")
	s.MustQuery(t, "shop", "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 10)")

	rightCA, otherCA := ca.File(t), testtls.NewCA(t, "another-ca").File(t)
	base := engine.Options{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password,
		Databases: []string{"shop"}, ScratchDir: t.TempDir()}
	enginetest.CheckTLSModes(t, Name, base, rightCA, func(dump string) bool {
		return strings.Contains(dump, "COPY \"public\".\"orders\"") && strings.Contains(dump, "\n10\n\\.\n")
	}, []enginetest.Refusal{
		// The server refuses a connection without TLS.
		{Mode: "disable", Reason: engine.ReasonTargetAuthenticationFailed, Says: "no encryption"},
		// A server whose certificate another CA signed.
		{Mode: "verify-ca", CAFile: otherCA, Reason: engine.ReasonTargetUnreachable, Says: "certificate verify failed"},
		{Mode: "verify-full", CAFile: otherCA, Reason: engine.ReasonTargetUnreachable, Says: "certificate verify failed"},
		// No CA given (no caSecretRef): libpq has nothing to verify with.
		{Mode: "verify-full", Reason: engine.ReasonTargetUnreachable, Says: "root certificate file"},
	})
}

// verify-full checks the server's name too; verify-ca does not.
func TestPostgres_TLSVerifyFullChecksTheHostName(t *testing.T) {
	s := pgserver.Start(t)
	ca := testtls.Serve(t, s, []string{"db.elsewhere.example"}, nil)
	caFile := ca.File(t)
	check := func(mode string) error {
		_, err := enginetest.Dump(t, Name, engine.Options{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password,
			Databases: []string{"postgres"}, TLSMode: mode, CAFile: caFile})
		return err
	}
	if err := check("verify-ca"); err != nil {
		t.Errorf("verify-ca: %v", err)
	}
	err := check("verify-full")
	if got := engine.ReasonOf(err); got != engine.ReasonTargetUnreachable || err == nil || !strings.Contains(err.Error(), "does not match host name") {
		t.Errorf("verify-full, certificate for another name: reason %q, error %v; want %s naming the mismatch", got, err, engine.ReasonTargetUnreachable)
	}
}
