package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// measurement is one timed process run.
type measurement struct {
	// Group is the data set ("postgres 1 GiB", "files 2 GiB", ...).
	Group string
	// Name says what ran ("pg_dump > /dev/null", "agent backup -> MinIO", ...).
	Name string
	// Bytes is the plaintext (dump or tar stream) size the run moved.
	Bytes int64
	// Stored is the size of what was written (object or file), when known.
	Stored int64
	Wall   time.Duration
	// CPU is user+system time of the process and its waited-for children.
	CPU time.Duration
	// MachineCPU is the CPU time every process of the machine used during
	// the run (from /proc/stat): the database server and MinIO included.
	// The run cannot have taken less than MachineCPU / Cores.
	MachineCPU time.Duration
	Cores      int
	// MaxRSS is ru_maxrss from wait4: the peak RSS of the process or of its
	// largest waited-for descendant (pg_dump, psql, gzip, age), whichever is
	// larger, and at least Floor. It is the number the targets are checked
	// against.
	MaxRSS int64
	// OwnHWM is the process's own VmHWM, sampled from /proc every 20 ms
	// (growth in its last 20 ms can be missed); 0 when not sampled. RssAnon
	// and RssFile are the largest sampled values of those parts of its RSS.
	OwnHWM, RssAnon, RssFile int64
	// Floor is the launcher's own peak RSS, a lower bound of MaxRSS.
	Floor int64
	// Agent marks runs of the backstop agent (the RSS targets apply to them).
	Agent bool
	// Rep numbers repeated runs (1..n); 0 for single runs.
	Rep int

	Stdout, Stderr string
}

func (m measurement) mibps() float64 {
	if m.Wall <= 0 || m.Bytes <= 0 {
		return 0
	}
	return float64(m.Bytes) / (1 << 20) / m.Wall.Seconds()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// stdoutMode says where a measured process writes its standard output.
type stdoutMode int

const (
	// capture keeps stdout in memory (the agent's one-line JSON result).
	capture stdoutMode = iota
	// devNull connects stdout to /dev/null.
	devNull
	// drain makes stdout a pipe the benchmark reads and throws away (unlike
	// /dev/null, which GNU tar detects and then skips reading file contents).
	drain
)

// countingWriter counts and discards.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// run starts cmd through the launcher (see launch), waits for it (killing
// its process group after limit) and measures it. It fails the test when the
// process fails. For drain, Bytes is the number of bytes drained.
func run(t *testing.T, limit time.Duration, group, name string, cmd *exec.Cmd, out stdoutMode, sampleHWM bool) measurement {
	t.Helper()
	var stdout bytes.Buffer
	var counted countingWriter
	stderr := &tailBuffer{max: 8192}
	resultFile := filepath.Join(t.TempDir(), "rusage.json")
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	env = append(env[:len(env):len(env)], launchEnv+"="+resultFile)
	if sampleHWM {
		env = append(env, launchSampleEnv+"=1")
	}
	l := exec.Command(os.Args[0], append([]string{cmd.Path}, cmd.Args[1:]...)...)
	l.Env, l.Dir, l.Stdin = env, cmd.Dir, cmd.Stdin
	switch out {
	case capture:
		l.Stdout = &stdout
	case devNull:
		l.Stdout = nil // os/exec connects /dev/null
	case drain:
		l.Stdout = &counted
	}
	l.Stderr = stderr
	l.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	busyBefore := machineBusy(t)
	if err := l.Start(); err != nil {
		t.Fatalf("%s / %s: starting: %v", group, name, err)
	}
	pid := l.Process.Pid
	var killed atomic.Bool
	timer := time.AfterFunc(limit, func() { killed.Store(true); _ = syscall.Kill(-pid, syscall.SIGKILL) })
	err := l.Wait()
	timer.Stop()
	busy := machineBusy(t) - busyBefore
	if err != nil {
		if killed.Load() {
			t.Fatalf("%s / %s: killed at the limit of %s: %v\nstderr: %s", group, name, limit, err, stderr)
		}
		t.Fatalf("%s / %s: %v\nstdout: %s\nstderr: %s", group, name, err, strings.TrimSpace(stdout.String()), stderr)
	}
	raw, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatalf("%s / %s: no launcher report: %v", group, name, err)
	}
	var lr launchReport
	if err := json.Unmarshal(raw, &lr); err != nil {
		t.Fatalf("%s / %s: launcher report %q: %v", group, name, raw, err)
	}
	m := measurement{Group: group, Name: name, Wall: time.Duration(lr.WallNs), CPU: time.Duration(lr.CPUNs),
		MaxRSS: lr.MaxRSSKiB << 10, OwnHWM: lr.HWM, RssAnon: lr.RssAnon, RssFile: lr.RssFile, Floor: lr.Floor,
		MachineCPU: busy, Cores: runtime.NumCPU(),
		Stdout: stdout.String(), Stderr: stderr.String()}
	if out == drain {
		m.Bytes = counted.n
	}
	return m
}

// machineBusy is the CPU time all processes of the machine have used since
// boot: the user, nice, system, irq and softirq columns of /proc/stat's cpu
// line (idle, iowait and steal are not work).
func machineBusy(t *testing.T) time.Duration {
	t.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		t.Fatalf("unexpected /proc/stat: %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			t.Fatalf("/proc/stat: %v", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTicks)
}

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// The launcher. ru_maxrss of a process started straight from the test
// binary is useless: Go starts children with vfork (CLONE_VM), and exec
// records the high-water mark of the parent's memory (this test process,
// hundreds of MiB) as the child's maxrss. So every measured command is
// started by a fresh copy of the test binary (small: its heap is empty),
// which runs the command, samples its /proc status, waits for it and writes a
// launchReport. Its own peak RSS is the floor under every ru_maxrss it
// reports (Floor).
const (
	launchEnv       = "BACKSTOP_BENCH_LAUNCH_REPORT"
	launchSampleEnv = "BACKSTOP_BENCH_LAUNCH_SAMPLE"
)

type launchReport struct {
	WallNs    int64 `json:"wallNs"`
	CPUNs     int64 `json:"cpuNs"`
	MaxRSSKiB int64 `json:"maxRSSKiB"`
	HWM       int64 `json:"hwm"`
	RssAnon   int64 `json:"rssAnon"`
	RssFile   int64 `json:"rssFile"`
	Floor     int64 `json:"floor"`
}

func TestMain(m *testing.M) {
	if report := os.Getenv(launchEnv); report != "" {
		os.Exit(launch(report, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// launch runs args, reports to the file report, and returns the exit code.
func launch(report string, args []string) int {
	sample := os.Getenv(launchSampleEnv) == "1"
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, launchEnv+"=") && !strings.HasPrefix(kv, launchSampleEnv+"=") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	floor := readStatus(os.Getpid())["VmHWM"]
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "launcher: %v\n", err)
		return 127
	}
	var lr launchReport
	lr.Floor = floor
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		if !sample {
			return
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			st := readStatus(cmd.Process.Pid)
			lr.HWM = max(lr.HWM, st["VmHWM"])
			lr.RssAnon = max(lr.RssAnon, st["RssAnon"])
			lr.RssFile = max(lr.RssFile, st["RssFile"])
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	err := cmd.Wait()
	lr.WallNs = int64(time.Since(start))
	close(stop)
	<-sampled
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		lr.MaxRSSKiB = ru.Maxrss // KiB on Linux
		lr.CPUNs = ru.Utime.Nano() + ru.Stime.Nano()
	}
	b, _ := json.Marshal(lr)
	if werr := os.WriteFile(report, b, 0o644); werr != nil {
		fmt.Fprintf(os.Stderr, "launcher: %v\n", werr)
		return 125
	}
	if err != nil {
		if code := cmd.ProcessState.ExitCode(); code > 0 {
			return code
		}
		return 126
	}
	return 0
}

// readStatus returns the kB fields of /proc/<pid>/status, in bytes.
func readStatus(pid int) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || !strings.HasSuffix(v, "kB") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
		if err == nil {
			out[k] = kb << 10
		}
	}
	return out
}
