package agent

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	bagent "github.com/backstop-io/backstop/internal/agent"
)

// targetDrillVsRestore is the target: a drill (throwaway server
// started, backup restored, every check run) takes at most this many times
// a plain restore of the same backup into an existing database.
const targetDrillVsRestore = 1.3

// TestDrillVsRestore times a drill of the 1 GiB PostgreSQL backup next to a
// plain restore of the same artifact, and measures the agent's peak memory
// during the drill apart from the throwaway server's.
//
//	BACKSTOP_BENCH=1 go test -count=1 -v -timeout 60m -run TestDrillVsRestore ./test/bench/agent/
func TestDrillVsRestore(t *testing.T) {
	if os.Getenv("BACKSTOP_BENCH") != "1" || testing.Short() {
		t.Skip("a benchmark: set BACKSTOP_BENCH=1 (make bench) to run it; see docs/benchmarks.md")
	}
	scale := envFloat(t, "BACKSTOP_BENCH_SCALE", 1, 0.01, 4)
	need := max(int64(float64(8<<30)*scale), 1<<30)
	if free := freeBytes(t, os.TempDir()); free < need {
		t.Skipf("skipping: %.1f GiB free in %s, the benchmark needs %.1f GiB", gib(free), os.TempDir(), gib(need))
	}
	b := setup(t)
	big := genPostgres(t, b.pg, "drill_bench", int64(float64(1<<30)*scale))
	group := fmt.Sprintf("postgres %.0f MiB", mib(int64(float64(1<<30)*scale)))
	target := func(db string) []string {
		return []string{"--engine", "postgres", "--host", b.pg.Host, "--port", strconv.Itoa(b.pg.Port), "--database", db, "--tls-mode", "disable"}
	}
	bk := b.backup(t, group, nameAgentFS, target(big.DB), "fs", "bench/drill/b1", 0)

	// The drill's scratch volume: where the throwaway server's own user can
	// reach it (the benchmark runs as root, the server as its user).
	scratch, err := os.MkdirTemp("", "drill-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratch) })
	if err := os.Chmod(scratch, 0o777); err != nil {
		t.Fatal(err)
	}

	var restores, drills []time.Duration
	var drill measurement
	var report *bagent.DrillReport
	for rep := 1; rep <= 2; rep++ {
		db := fmt.Sprintf("drill_restore_%d", rep)
		psql(t, b.pg, "postgres", "CREATE DATABASE "+db, time.Minute)
		r := b.restore(t, group, "fs", target(db), "bench/drill/b1")
		if rows, sum := pgCount(t, b.pg, db); rows != big.Rows || sum != big.IDSum {
			t.Fatalf("restore: %d rows (sum %s), want %d (%s)", rows, sum, big.Rows, big.IDSum)
		}
		psql(t, b.pg, "postgres", "DROP DATABASE "+db, 5*time.Minute)
		restores = append(restores, r.Wall)

		args := append([]string{"--engine", "postgres", "--identity-file", b.idFile, "--scratch-dir", scratch}, b.storeArgs("fs", "bench/drill/b1")...)
		drill = b.runAgent(t, group, "agent drill <- directory", "drill", args)
		res, err := bagent.ParseResult([]byte(drill.Stdout))
		if err != nil || res.Drill == nil || res.Drill.Rows != big.Rows {
			t.Fatalf("drill result %q: %v", drill.Stdout, err)
		}
		report = res.Drill
		drills = append(drills, drill.Wall)
	}
	best := func(ds []time.Duration) time.Duration { return min(ds[0], ds[1]) }
	ratio := best(drills).Seconds() / best(restores).Seconds()
	server := drill.MaxRSS // ru_maxrss: the largest of the agent and its waited-for children (the server's processes)
	t.Logf("%s, artifact %.0f MiB (%.0f MiB of pg_dump output), %d rows", group, mib(bk.Stored), mib(bk.Bytes), big.Rows)
	t.Logf("plain restore into an existing database: %s (best of 2: %v)", best(restores).Round(10*time.Millisecond), restores)
	t.Logf("drill (server start, restore, %d checks): %s (best of 2: %v); time to restore as reported: %.1f s", len(report.Checks), best(drills).Round(10*time.Millisecond), drills, report.RestoreSeconds)
	t.Logf("drill / restore: %.2fx (target at most %.1fx)", ratio, targetDrillVsRestore)
	t.Logf("agent peak RSS during the drill: %.1f MiB (VmHWM, sampled); largest process of the drill's tree (a server process): %.1f MiB", mib(drill.OwnHWM), mib(server))
	if ratio > targetDrillVsRestore {
		t.Errorf("the drill took %.2fx the plain restore; the target is at most %.1fx", ratio, targetDrillVsRestore)
	}
	if drill.OwnHWM > 64<<20 {
		t.Errorf("the agent's peak RSS during the drill was %.1f MiB; the target is under 64 MiB", mib(drill.OwnHWM))
	}
}
