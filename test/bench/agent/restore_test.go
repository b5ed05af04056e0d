package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// targetRestoreVsPsqlAlone is issue 12's: a verified restore through the
// agent takes at most this many times psql loading the same dump file.
const targetRestoreVsPsqlAlone = 1.1

// TestRestoreVsPsql times, alone and repeated, a verified restore through
// the agent (download, manifest and hashes, decrypt, decompress, dump
// completeness and inventory, psql in one transaction) against `psql -1 -f
// dump.sql` of the same dump already on local disk, each into a fresh
// database, best of BACKSTOP_BENCH_REPS (default 3), interleaved.
//
//	BACKSTOP_BENCH=1 go test -count=1 -v -timeout 60m -run TestRestoreVsPsql ./test/bench/agent/
func TestRestoreVsPsql(t *testing.T) {
	if os.Getenv("BACKSTOP_BENCH") != "1" || testing.Short() {
		t.Skip("a benchmark: set BACKSTOP_BENCH=1 (make bench) to run it; see docs/benchmarks.md")
	}
	scale := envFloat(t, "BACKSTOP_BENCH_SCALE", 0.5, 0.01, 4)
	reps := int(envFloat(t, "BACKSTOP_BENCH_REPS", 3, 1, 9))
	b := setup(t)
	data := genPostgres(t, b.pg, "restore_bench", int64(float64(1<<30)*scale))
	group := fmt.Sprintf("postgres %.0f MiB", mib(int64(float64(1<<30)*scale)))
	target := func(db string) []string {
		return []string{"--engine", "postgres", "--host", b.pg.Host, "--port", strconv.Itoa(b.pg.Port), "--database", db, "--tls-mode", "disable"}
	}
	bk := b.backup(t, group, nameAgentFS, target(data.DB), "fs", "bench/restore/b1", 0)
	dumpFile := filepath.Join(b.work, "dump.sql")
	writeDump(t, b, data.DB, dumpFile)

	check := func(db string) {
		if rows, sum := pgCount(t, b.pg, db); rows != data.Rows || sum != data.IDSum {
			t.Fatalf("%s: %d rows (sum %s), want %d (%s)", db, rows, sum, data.Rows, data.IDSum)
		}
		psql(t, b.pg, "postgres", "DROP DATABASE "+db, 5*time.Minute)
	}
	var agent, alone []time.Duration
	for rep := 1; rep <= reps; rep++ {
		db := fmt.Sprintf("restored_agent_%d", rep)
		psql(t, b.pg, "postgres", "CREATE DATABASE "+db, time.Minute)
		agent = append(agent, b.restore(t, group, "fs", target(db), "bench/restore/b1").Wall)
		check(db)

		db = fmt.Sprintf("restored_psql_%d", rep)
		psql(t, b.pg, "postgres", "CREATE DATABASE "+db, time.Minute)
		load := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", dumpFile)
		load.Env = b.pg.Env(db)
		alone = append(alone, run(t, runLimit, group, namePsqlRestore, load, devNull, false).Wall)
		check(db)
	}
	best := slices.Min[[]time.Duration]
	ratio := best(agent).Seconds() / best(alone).Seconds()
	t.Logf("%s: %.0f MiB of pg_dump output, %d rows, artifact %.0f MiB", group, mib(bk.Bytes), data.Rows, mib(bk.Stored))
	t.Logf("agent restore <- directory, verified: best %s of %v", best(agent).Round(10*time.Millisecond), agent)
	t.Logf("%s: best %s of %v", namePsqlRestore, best(alone).Round(10*time.Millisecond), alone)
	t.Logf("agent / psql alone: %.2fx (target at most %.1fx)", ratio, targetRestoreVsPsqlAlone)
	if ratio > targetRestoreVsPsqlAlone {
		t.Errorf("the verified restore took %.2fx psql alone; the target is at most %.1fx", ratio, targetRestoreVsPsqlAlone)
	}
}
