package mariadbserver

import "testing"

func TestStart(t *testing.T) {
	s := Start(t)
	if got := s.MustQuery(t, "", "SELECT 1+1"); got != "2" {
		t.Fatalf("SELECT 1+1 = %q", got)
	}
	s.CreateDatabase(t, "other")
	s.MustQuery(t, "other", "CREATE TABLE t(a int); INSERT INTO t VALUES (1)")
	if got := s.MustQuery(t, "other", "SELECT count(*) FROM t"); got != "1" {
		t.Fatalf("count = %q", got)
	}
}
