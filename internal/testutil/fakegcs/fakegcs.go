// Package fakegcs starts a real fake-gcs-server (a Google Cloud Storage
// emulator) for tests: plain HTTP on 127.0.0.1, a free port and a temporary
// data directory, with one bucket created; it stops at t.Cleanup. The server
// is built from the Go module proxy by hack/fake-gcs.sh (and cached outside
// the clone) the first time it is needed, so `go test ./...` works on a
// fresh machine. When it cannot be built the test fails.
//
// fake-gcs-server does not check credentials: any request is allowed.
package fakegcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/testutil/assets"
)

// Server is a running fake-gcs-server.
type Server struct {
	// Endpoint is http://127.0.0.1:<port>, for Config.Endpoint of the gcs store.
	Endpoint string
	// Bucket exists and is empty at start.
	Bucket string
}

var (
	buildOnce sync.Once
	bin       string
	buildErr  error
)

// Binary returns the path of the fake-gcs-server binary, building it if
// needed (env BACKSTOP_FAKE_GCS overrides).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BACKSTOP_FAKE_GCS"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root, err := assets.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		var out, errb bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(root, "hack", "fake-gcs.sh"))
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("hack/fake-gcs.sh: %v\n%s", err, errb.String())
			return
		}
		bin = strings.TrimSpace(out.String())
	})
	if buildErr != nil {
		// Never a silent skip: make test builds it (hack/setup.sh).
		t.Fatalf("building fake-gcs-server (hack/fake-gcs.sh): %v", buildErr)
	}
	return bin
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a fake-gcs-server with a fresh bucket.
func Start(t testing.TB) *Server {
	t.Helper()
	b := Binary(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, b)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("starting fake-gcs-server: %v", lastErr)
	return nil
}

// syncBuffer is a bytes.Buffer safe for the server's output goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t testing.TB, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir := t.TempDir()
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), Bucket: "backstop-test"}
	var logs syncBuffer
	cmd := exec.Command(bin,
		"-scheme", "http",
		"-host", "127.0.0.1",
		"-port", fmt.Sprint(port),
		"-external-url", s.Endpoint,
		"-public-host", fmt.Sprintf("127.0.0.1:%d", port),
		"-backend", "filesystem",
		"-filesystem-root", filepath.Join(dataDir, "storage"),
		"-log-level", "warn",
	)
	cmd.Dir = dataDir
	cmd.Env = append(os.Environ(), "HOME="+dataDir)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	deadline := time.Now().Add(30 * time.Second)
	ready := false
	for time.Now().Before(deadline) && !ready {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("fake-gcs-server exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get(s.Endpoint + "/storage/v1/b?project=test")
		if err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if !ready {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !ready {
		stop()
		return nil, fmt.Errorf("fake-gcs-server not ready after 30s\n%s", logs.String())
	}
	t.Cleanup(stop)
	if err := s.CreateBucket(s.Bucket); err != nil {
		return nil, err
	}
	return s, nil
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(name string) error {
	body, _ := json.Marshal(map[string]string{"name": name})
	resp, err := http.Post(s.Endpoint+"/storage/v1/b?project=test", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("creating bucket %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("creating bucket %s: HTTP %d", name, resp.StatusCode)
	}
	return nil
}

// Keys lists every object name in the bucket under prefix, sorted.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	token := ""
	for {
		q := url.Values{"prefix": {prefix}}
		if token != "" {
			q.Set("pageToken", token)
		}
		resp, err := http.Get(s.Endpoint + "/storage/v1/b/" + url.PathEscape(s.Bucket) + "/o?" + q.Encode())
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		var page struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
			NextPageToken string `json:"nextPageToken"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("listing %s: HTTP %d %v", prefix, resp.StatusCode, err)
		}
		for _, it := range page.Items {
			keys = append(keys, it.Name)
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	sort.Strings(keys)
	return keys
}
