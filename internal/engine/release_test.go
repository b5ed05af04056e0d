package engine

import (
	"strings"
	"testing"
)

func TestReleases(t *testing.T) {
	if v := ReleaseOf("PostgreSQL 15.20 (Debian 15.20-0+deb12u1); pg_dump (PostgreSQL) 15.18", "PostgreSQL "); v != "15.20" {
		t.Errorf("the server's release = %q, want 15.20", v)
	}
	if v := ReleaseOf("PostgreSQL 15.20 (Debian 15.20-0+deb12u1); pg_dump (PostgreSQL) 15.18", "pg_dump (PostgreSQL) "); v != "15.18" {
		t.Errorf("pg_dump's release = %q, want 15.18", v)
	}
	for _, c := range []struct {
		a, b  string
		newer bool
	}{
		{"15.20", "15.18", true}, {"15.18", "15.20", false}, {"15.18", "15.18", false},
		{"15.9", "15.10", false}, {"16.1", "15.20", true}, {"10.11.19", "10.11.6", true},
		{"15.1", "15", true}, {"", "15.18", false}, {"15.18", "", false},
	} {
		if got := NewerRelease(c.a, c.b); got != c.newer {
			t.Errorf("NewerRelease(%q, %q) = %v", c.a, c.b, got)
		}
	}
	for in, want := range map[string]string{
		"10.11.19-MariaDB-0+deb12u1 Debian 12; mariadb-dump from 10.11.19-MariaDB": "MariaDB 10.11.19",
		"8.0.40 MySQL Community Server - GPL; mysqldump  Ver 8.0.40":               "MySQL 8.0.40",
		"": "",
	} {
		if got := MySQLServer(in); got != want {
			t.Errorf("MySQLServer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadHint(t *testing.T) {
	const pg1520 = "PostgreSQL 15.20 (Debian 15.20-0+deb12u1); pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
	const maria = "10.11.19-MariaDB-0+deb12u1 Debian 12; mariadb-dump from 10.11.19-MariaDB, client 10.11.19"
	for _, c := range []struct{ engine, backup, target, want string }{
		{"postgres", pg1520, "PostgreSQL 15.18; pg_dump (PostgreSQL) 15.18",
			"the backup was made with PostgreSQL 15.20 and the server restored into is an older 15.18, which may not load all a newer release dumps: restore into PostgreSQL 15.20 or newer"},
		// The dump holds what the newer of server and pg_dump wrote.
		{"postgres", "PostgreSQL 15.18; pg_dump (PostgreSQL) 15.20", "PostgreSQL 15.18; pg_dump (PostgreSQL) 15.18",
			"the backup was made with PostgreSQL 15.20 and the server restored into is an older 15.18"},
		{"postgres", pg1520, "PostgreSQL 15.20; pg_dump (PostgreSQL) 15.13",
			"the backup was made with PostgreSQL 15.20 and the restore's psql is an older 15.13, which may refuse what a newer pg_dump writes"},
		{"postgres", pg1520, pg1520, ""},
		{"postgres", pg1520, "PostgreSQL 17.2; pg_dump (PostgreSQL) 17.2", ""},
		{"postgres", "", "PostgreSQL 15.18; pg_dump (PostgreSQL) 15.18", ""},
		{"mysql", "8.0.40 MySQL Community Server - GPL; mysqldump  Ver 8.0.40", maria,
			"the backup was made with MySQL 8.0.40 and the server restored into is MariaDB 10.11.19, which may not load all a MySQL dump holds: restore into a MySQL server"},
		{"mysql", "11.4.2-MariaDB; mariadb-dump", maria,
			"the backup was made with MariaDB 11.4.2 and the server restored into is an older 10.11.19, which may not load all a newer release dumps: restore into MariaDB 11.4.2 or newer"},
		{"mysql", "10.11.6-MariaDB; mariadb-dump", maria, ""},
		{"mysql", maria, "", ""},
		{"files", "tar", "tar", ""},
	} {
		got := LoadHint(c.engine, c.backup, c.target)
		if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
			t.Errorf("LoadHint(%q, %q, %q) = %q, want it to start with %q", c.engine, c.backup, c.target, got, c.want)
		}
	}
}
