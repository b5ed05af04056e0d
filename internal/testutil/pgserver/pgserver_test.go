package pgserver

import "testing"

func TestStart(t *testing.T) {
	s := Start(t)
	if got := s.MustQuery(t, "postgres", "SELECT 1+1"); got != "2" {
		t.Fatalf("SELECT 1+1 = %q", got)
	}
	s.CreateDatabase(t, "other", "")
	s.MustQuery(t, "other", "CREATE TABLE t(a int)")
}
