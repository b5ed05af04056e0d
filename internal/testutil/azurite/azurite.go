// Package azurite starts a real Azurite blob service (the Azure Storage
// emulator) for tests: on 127.0.0.1, a free port and a temporary workspace,
// with a generated storage account and key and one container created; it
// stops at t.Cleanup. Azurite is installed from the npm registry by
// hack/azurite.sh (and cached outside the clone) the first time it is
// needed, so `go test ./...` works on a fresh machine with node and npm.
// When it cannot be installed the test fails: make test installs it first.
package azurite

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/backstop-io/backstop/internal/testutil/assets"
)

// Server is a running Azurite blob service.
type Server struct {
	// Endpoint is the blob service URL, http://127.0.0.1:<port>/<account>.
	Endpoint string
	// Account and Key are the generated storage account and its shared key.
	Account string
	Key     string
	// Container exists and is empty at start.
	Container string
	// Client is a container client with the shared key.
	Client *container.Client
}

var (
	installOnce sync.Once
	bin         string
	installErr  error
)

// Binary returns the path of the azurite-blob launcher, installing Azurite
// if needed (env BACKSTOP_AZURITE overrides).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BACKSTOP_AZURITE"); p != "" {
		return p
	}
	installOnce.Do(func() {
		if _, err := exec.LookPath("node"); err != nil {
			installErr = errors.New("node is not installed")
			return
		}
		root, err := assets.RepoRoot()
		if err != nil {
			installErr = err
			return
		}
		var out, errb bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(root, "hack", "azurite.sh"))
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			installErr = fmt.Errorf("hack/azurite.sh: %v\n%s", err, errb.String())
			return
		}
		bin = strings.TrimSpace(out.String())
	})
	if installErr != nil {
		// Never a silent skip: make test installs it (hack/setup.sh).
		t.Fatalf("installing azurite (hack/azurite.sh): %v", installErr)
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

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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

// Start starts Azurite with a fresh account and container.
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
	t.Fatalf("starting azurite: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	key := make([]byte, 64)
	_, _ = rand.Read(key)
	s := &Server{
		Account:   "backstop" + randHex(4),
		Key:       base64.StdEncoding.EncodeToString(key),
		Container: "backstop-test",
	}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d/%s", port, s.Account)
	var logs syncBuffer
	cmd := exec.Command(bin,
		"--blobHost", "127.0.0.1",
		"--blobPort", fmt.Sprint(port),
		"--location", dir,
		"--silent",
		"--skipApiVersionCheck",
		"--disableProductStyleUrl",
		"--disableTelemetry",
	)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "AZURITE_ACCOUNTS="+s.Account+":"+s.Key)
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

	cred, err := azblob.NewSharedKeyCredential(s.Account, s.Key)
	if err != nil {
		stop()
		return nil, err
	}
	s.Client, err = container.NewClientWithSharedKeyCredential(s.Endpoint+"/"+s.Container, cred, nil)
	if err != nil {
		stop()
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("azurite exited: %v\n%s", err, logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("azurite not listening after 60s\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.Create(ctx, nil); err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("creating container: HTTP %d %s\n%s", re.StatusCode, re.ErrorCode, logs.String())
		}
		return nil, fmt.Errorf("creating container: %v\n%s", err, logs.String())
	}
	return s, nil
}

// Keys lists every blob name in the container under prefix, sorted.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	return s.list(t, prefix, false)
}

// KeysWithUncommitted lists, sorted, every blob name under prefix: the
// committed blobs and those that hold only uncommitted blocks (staged by an
// upload that never committed).
func (s *Server) KeysWithUncommitted(t testing.TB, prefix string) []string {
	t.Helper()
	return s.list(t, prefix, true)
}

// Uncommitted returns the IDs of the uncommitted blocks of the blob name.
func (s *Server) Uncommitted(t testing.TB, name string) []string {
	t.Helper()
	bl, err := s.Client.NewBlockBlobClient(name).GetBlockList(context.Background(), blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.ErrorCode == "BlobNotFound" {
			return nil
		}
		t.Fatalf("block list of %s: %v", name, err)
	}
	var ids []string
	for _, b := range bl.UncommittedBlocks {
		ids = append(ids, *b.Name)
	}
	return ids
}

func (s *Server) list(t testing.TB, prefix string, uncommitted bool) []string {
	t.Helper()
	opts := &container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{UncommittedBlobs: uncommitted}}
	if prefix != "" {
		opts.Prefix = &prefix
	}
	var keys []string
	pager := s.Client.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		for _, it := range page.Segment.BlobItems {
			keys = append(keys, *it.Name)
		}
	}
	sort.Strings(keys)
	return keys
}
