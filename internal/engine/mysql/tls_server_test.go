package mysql

import (
	"net"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/engine/enginetest"
	"github.com/backstop-io/backstop/internal/testutil/mariadbserver"
	"github.com/backstop-io/backstop/internal/testutil/testtls"
)

// A real server that refuses connections without TLS, and serves a
// certificate of a test CA for 127.0.0.1: each tlsMode connects or fails
// as its documentation says, and a failure has a reason and says why.
func TestMariaDB_TLSAgainstARealServer(t *testing.T) {
	s := mariadbserver.Start(t)
	ca := testtls.Serve(t, s, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	s.MustQuery(t, "", "CREATE DATABASE shop; CREATE TABLE shop.orders (id int PRIMARY KEY); INSERT INTO shop.orders VALUES (1), (2), (3)")

	rightCA, otherCA := ca.File(t), testtls.NewCA(t, "another-ca").File(t)
	base := engine.Options{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password,
		Databases: []string{"shop"}, ScratchDir: t.TempDir()}
	enginetest.CheckTLSModes(t, Name, base, rightCA, func(dump string) bool {
		return strings.Contains(dump, "INSERT INTO `orders` VALUES")
	}, []enginetest.Refusal{
		// The server refuses a connection without TLS.
		{Mode: "disable", Reason: engine.ReasonTargetAuthenticationFailed, Says: "require_secure_transport"},
		// A server whose certificate another CA signed.
		{Mode: "verify-ca", CAFile: otherCA, Reason: engine.ReasonTargetUnreachable, Says: "certificate"},
		{Mode: "verify-full", CAFile: otherCA, Reason: engine.ReasonTargetUnreachable, Says: "certificate"},
	})
}

// A certificate of the right CA but for another name is refused by
// verify-ca as well as verify-full: the MariaDB client cannot check one
// without the other.
func TestMariaDB_TLSChecksTheHostName(t *testing.T) {
	s := mariadbserver.Start(t)
	ca := testtls.Serve(t, s, []string{"db.elsewhere.example"}, nil)
	o := engine.Options{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password,
		Databases: []string{"mysql"}, CAFile: ca.File(t)}
	for _, mode := range []string{"verify-ca", "verify-full"} {
		o.TLSMode = mode
		_, err := enginetest.Dump(t, Name, o)
		if got := engine.ReasonOf(err); got != engine.ReasonTargetUnreachable || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s, certificate for another name: reason %q, error %v; want %s naming the certificate", mode, got, err, engine.ReasonTargetUnreachable)
		}
	}
	// require encrypts without checking the certificate.
	o.TLSMode, o.CAFile = "require", ""
	if _, err := enginetest.Dump(t, Name, o); err != nil {
		t.Errorf("require: %v", err)
	}
}
