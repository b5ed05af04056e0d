package agent

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/compress"
)

// The memory limit of a backup counts on compressorMemory: if the
// compressor held more, the heap's soft limit would sit under the live
// memory and the collector would run without pause. This measures what a
// compressor really keeps live after compressing a few MiB of mixed data.
func TestCompressorMemory_CoversTheCompressor(t *testing.T) {
	data := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		if i%2048 < 1024 {
			data[i] = byte(rng.Uint32()) // incompressible half
		} else {
			data[i] = "backstop "[i%9]
		}
	}
	for _, tc := range []struct {
		alg   compress.Algorithm
		level int
	}{
		{compress.Zstd, 0}, {compress.Zstd, 1}, {compress.Zstd, 3}, {compress.Zstd, 7},
		{compress.Zstd, 19}, {compress.Gzip, 0}, {compress.Gzip, 9},
	} {
		// Twice: a sync.Pool (the parallel zstd jobs keep their buffers in
		// pools) lets go of its objects only at the second collection, and
		// the previous case's must not count here.
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w, err := compress.NewWriter(io.Discard, tc.alg, tc.level)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 256 << 10 {
			if _, err := w.Write(data[off : off+256<<10]); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		live := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		runtime.KeepAlive(w)
		_ = w.Close()
		if est := compressorMemory(string(tc.alg), tc.level); live > est {
			t.Errorf("%s level %d keeps %.1f MiB live, compressorMemory says %.1f MiB", tc.alg, tc.level, float64(live)/(1<<20), float64(est)/(1<<20))
		} else {
			t.Logf("%s level %d: %.1f MiB live, estimate %.0f MiB", tc.alg, tc.level, float64(live)/(1<<20), float64(est)/(1<<20))
		}
	}
}

// startupRSSLimit bounds what backstop-agent holds once its package
// initialisers have run and a backup waits on its store, before any data
// moves: the binary's pages they touched and their heap. A backup's peak is
// this plus its data path (about 30 MiB to S3 with 8 MiB parts), and the
// target is 64 MiB. Linking the official GCS client library (gRPC, xDS,
// OpenTelemetry) made it 33 MiB; without it, 13 MiB.
const startupRSSLimit = 20 << 20

// The agent binary, built as the image builds it, waits on an S3 endpoint
// that accepts connections and never answers; its resident memory then is
// what every run of every store type pays before its data path.
func TestAgentBinary_StartupMemory(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "backstop-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/backstop-agent")
	build.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	cmd := exec.Command(bin, "backup", "--engine", "files", "--path", t.TempDir(),
		"--store-type", "s3", "--s3-endpoint", "http://"+l.Addr().String(), "--s3-bucket", "backstop", "--s3-force-path-style",
		"--artifact-path", "startup", "--encryption", "none", "--progress-interval", "0")
	cmd.Env = []string{"AWS_ACCESS_KEY_ID=k", "AWS_SECRET_ACCESS_KEY=s"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	select {
	case c := <-accepted:
		defer c.Close()
	case err := <-exited:
		exited <- err
		t.Fatalf("the agent exited (%v) before it contacted the store: %s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent did not contact the store: %s", stderr.String())
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	kib := map[string]int64{}
	for _, line := range strings.Split(string(status), "\n") {
		var v int64
		if k, rest, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(rest, "kB") {
			fmt.Sscan(rest, &v)
			kib[k] = v
		}
	}
	hwm := kib["VmHWM"] << 10
	msg := fmt.Sprintf("backstop-agent waiting on its store: VmHWM %.1f MiB (RssAnon %.1f MiB, RssFile %.1f MiB)",
		float64(hwm)/(1<<20), float64(kib["RssAnon"])/1024, float64(kib["RssFile"])/1024)
	if hwm == 0 || hwm > startupRSSLimit {
		t.Fatalf("%s, want under %d MiB", msg, startupRSSLimit>>20)
	}
	t.Log(msg)
}
