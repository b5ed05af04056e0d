package engine

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A dump that fails to load is often explained by what made it and what
// loads it: a minor release can add what an older one refuses (a new column
// option, a psql meta-command of pg_dump's), and MySQL 8 dumps hold
// collations MariaDB lacks. The versions are those Version reports, which a
// backup's manifest records as its engineVersion.

var releaseNumber = regexp.MustCompile(`^\d+(\.\d+)*`)

// ReleaseOf returns the version number in s after prefix
// ("PostgreSQL 15.20 (Debian 15.20-0+deb12u1); pg_dump ..." → "15.20"),
// or "" when there is none.
func ReleaseOf(s, prefix string) string {
	i := strings.Index(s, prefix)
	if i < 0 {
		return ""
	}
	return releaseNumber.FindString(s[i+len(prefix):])
}

// NewerRelease tells whether version a ("15.20") is a later release than b
// ("15.18"), comparing number by number; an empty one is never newer.
func NewerRelease(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x > y
		}
	}
	return len(as) > len(bs)
}

// MySQLServer names the server of a mysql engine's version string
// ("10.11.19-MariaDB-0+deb12u1 Debian 12; mariadb-dump ..." → "MariaDB
// 10.11.19", "8.0.40 MySQL Community Server - GPL; ..." → "MySQL 8.0.40"),
// or "" when it does not say.
func MySQLServer(version string) string {
	server, _, _ := strings.Cut(version, ";")
	server = strings.TrimSpace(server)
	release := releaseNumber.FindString(server)
	switch {
	case release == "":
		return ""
	case strings.Contains(server, "MariaDB"):
		return "MariaDB " + release
	}
	return "MySQL " + release
}

// LoadHint says why a dump of the engine made with backupVersion may not
// load where targetVersion restores it, or "" when the versions do not
// explain it (or do not say). Both are Version strings.
func LoadHint(engineName, backupVersion, targetVersion string) string {
	switch engineName {
	case "postgres":
		// The dump holds what the newer of the backup's server and pg_dump
		// wrote; the load needs a server and a psql that know it all.
		backup := ReleaseOf(backupVersion, "PostgreSQL ")
		if dumper := ReleaseOf(backupVersion, "pg_dump (PostgreSQL) "); NewerRelease(dumper, backup) {
			backup = dumper
		}
		server := ReleaseOf(targetVersion, "PostgreSQL ")
		client := ReleaseOf(targetVersion, "pg_dump (PostgreSQL) ")
		switch {
		case NewerRelease(backup, server):
			return fmt.Sprintf("the backup was made with PostgreSQL %s and the server restored into is an older %s, which may not load all a newer release dumps: restore into PostgreSQL %s or newer",
				backup, server, backup)
		case NewerRelease(backup, client):
			return fmt.Sprintf("the backup was made with PostgreSQL %s and the restore's psql is an older %s, which may refuse what a newer pg_dump writes: restore with an image whose PostgreSQL client is %s or newer",
				backup, client, backup)
		}
	case "mysql":
		return olderServer(MySQLServer(backupVersion), MySQLServer(targetVersion))
	}
	return ""
}

// olderServer compares servers named "<kind> <release>".
func olderServer(backup, target string) string {
	backupKind, backupRelease, _ := strings.Cut(backup, " ")
	targetKind, targetRelease, _ := strings.Cut(target, " ")
	switch {
	case backupRelease == "" || targetRelease == "":
		return ""
	case backupKind != targetKind:
		return fmt.Sprintf("the backup was made with %s and the server restored into is %s, which may not load all a %s dump holds: restore into a %s server",
			backup, target, backupKind, backupKind)
	case NewerRelease(backupRelease, targetRelease):
		return fmt.Sprintf("the backup was made with %s and the server restored into is an older %s, which may not load all a newer release dumps: restore into %s %s or newer",
			backup, targetRelease, backupKind, backupRelease)
	}
	return ""
}
