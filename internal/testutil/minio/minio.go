// Package minio starts a real MinIO server for tests: on 127.0.0.1, a free
// port, a temporary data directory and generated root credentials, with one
// bucket created; it stops at t.Cleanup. The server binary is built from the
// Go module proxy by hack/minio.sh (and cached outside the clone) the first
// time it is needed, so `go test ./...` works on a fresh machine.
package minio

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/backstop-io/backstop/internal/testutil/assets"
)

// Server is a running MinIO.
type Server struct {
	// Endpoint is host:port, plain HTTP unless the server was started with
	// StartTLS (then HTTPS); URL has the scheme.
	Endpoint string
	// URL is Endpoint with its scheme.
	URL string
	// AccessKey and SecretKey are the root credentials.
	AccessKey string
	SecretKey string
	// Bucket exists and is empty at start.
	Bucket string
	// Client is a minio-go client with the root credentials.
	Client *miniogo.Client
}

var (
	buildOnce sync.Once
	minioBin  string
	ageBin    string
	buildErr  error
)

func build() {
	buildOnce.Do(func() {
		root, err := assets.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		script := filepath.Join(root, "hack", "minio.sh")
		run := func(args ...string) (string, error) {
			var out, errb bytes.Buffer
			cmd := exec.Command("bash", append([]string{script}, args...)...)
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				return "", fmt.Errorf("hack/minio.sh: %v\n%s", err, errb.String())
			}
			return strings.TrimSpace(out.String()), nil
		}
		if minioBin, buildErr = run(); buildErr != nil {
			return
		}
		ageBin, buildErr = run("--age")
	})
}

// Binary returns the path of the minio server binary, building it if needed.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BACKSTOP_MINIO"); p != "" {
		return p
	}
	build()
	if buildErr != nil {
		t.Fatalf("building minio: %v", buildErr)
	}
	return minioBin
}

// AgeBinaries returns the paths of the stock age and age-keygen CLIs,
// building them if needed.
func AgeBinaries(t testing.TB) (age, ageKeygen string) {
	t.Helper()
	build()
	if buildErr != nil {
		t.Fatalf("building age: %v", buildErr)
	}
	return ageBin, filepath.Join(filepath.Dir(ageBin), "age-keygen")
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

// Start starts a MinIO server with a fresh bucket.
func Start(t testing.TB) *Server { t.Helper(); return StartOn(t, "127.0.0.1") }

// StartOn starts a MinIO server listening on host (e.g. a real node's bridge
// address, which pods reach and this machine too) with a fresh bucket.
func StartOn(t testing.TB, host string) *Server {
	t.Helper()
	return startWith(t, host, nil)
}

// Serving is what a MinIO serving HTTPS presents: its certificate and key,
// and the CA that signed the certificate, for the test's own client.
type Serving struct {
	CertPEM, KeyPEM, CAPEM []byte
	// ServerName is the name the test's client checks the certificate
	// for, when the certificate is not for 127.0.0.1.
	ServerName string
}

// StartTLS starts a MinIO server serving HTTPS on 127.0.0.1 with cert.
func StartTLS(t testing.TB, cert Serving) *Server {
	t.Helper()
	return startWith(t, "127.0.0.1", &cert)
}

func startWith(t testing.TB, host string, cert *Serving) *Server {
	t.Helper()
	bin := Binary(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin, host, cert)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("starting minio: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, host string, cert *Serving) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir := t.TempDir()
	s := &Server{
		Endpoint:  net.JoinHostPort(host, strconv.Itoa(port)),
		AccessKey: "backstop" + randHex(6),
		SecretKey: randHex(20),
		Bucket:    "backstop-test",
	}
	args := []string{"server", "--quiet", "--address", s.Endpoint, "--console-address", fmt.Sprintf("127.0.0.1:%d", cport)}
	s.URL = "http://" + s.Endpoint
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cert != nil {
		certsDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(certsDir, "public.crt"), cert.CertPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(certsDir, "private.key"), cert.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--certs-dir", certsDir)
		s.URL = "https://" + s.Endpoint
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cert.CAPEM) {
			return nil, errors.New("minio: the CA holds no PEM certificate")
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: cert.ServerName, MinVersion: tls.VersionTLS12}
	}
	httpClient := &http.Client{Transport: transport}
	var logs bytes.Buffer
	cmd := exec.Command(bin, append(args, dataDir)...)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"HOME="+dataDir,
	)
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
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("minio exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := httpClient.Get(s.URL + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = true
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ready {
		stop()
		return nil, fmt.Errorf("minio not ready after 30s\n%s", logs.String())
	}
	t.Cleanup(stop)

	s.Client, err = miniogo.New(s.Endpoint, &miniogo.Options{
		Creds:     credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:    cert != nil,
		Transport: transport,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Client.MakeBucket(ctx, s.Bucket, miniogo.MakeBucketOptions{}); err != nil {
		return nil, fmt.Errorf("creating bucket: %v", err)
	}
	return s, nil
}

// Keys lists every object key in the bucket under prefix.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	for oi := range s.Client.ListObjects(context.Background(), s.Bucket, miniogo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			t.Fatalf("listing %s: %v", prefix, oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	return keys
}

// IncompleteUploads counts unfinished multipart uploads under prefix. It
// lists the whole bucket's and filters them: MinIO takes a non-empty
// prefix as one exact key, so a listing under "dir/" finds nothing.
func (s *Server) IncompleteUploads(t testing.TB, prefix string) int {
	t.Helper()
	n := 0
	for u := range s.Client.ListIncompleteUploads(context.Background(), s.Bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("listing uploads: %v", u.Err)
		}
		if strings.HasPrefix(u.Key, prefix) {
			n++
		}
	}
	return n
}

// FlipBit flips the lowest bit of the byte at offset at of an object.
func (s *Server) FlipBit(t testing.TB, key string, at int64) {
	t.Helper()
	ctx := context.Background()
	obj, err := s.Client.GetObject(ctx, s.Bucket, key, miniogo.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[at] ^= 0x01
	if _, err := s.Client.PutObject(ctx, s.Bucket, key, bytes.NewReader(data), int64(len(data)), miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}
