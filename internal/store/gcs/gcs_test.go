package gcs

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/testutil/fakegcs"
)

// dataReader yields n deterministic pseudo-random bytes through a plain
// io.Reader (no Seek, no WriterTo), failing with failErr after failAt bytes
// when failAt >= 0.
type dataReader struct {
	rng     *mrand.ChaCha8
	n, off  int64
	failAt  int64
	failErr error
}

func newData(n int64) *dataReader {
	return &dataReader{rng: mrand.NewChaCha8([32]byte{1, 2, 3}), n: n, failAt: -1}
}

func (d *dataReader) Read(p []byte) (int, error) {
	if d.failAt >= 0 && d.off >= d.failAt {
		return 0, d.failErr
	}
	if d.off >= d.n {
		return 0, io.EOF
	}
	if rem := d.n - d.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	if d.failAt >= 0 && int64(len(p)) > d.failAt-d.off {
		p = p[:d.failAt-d.off]
	}
	_, _ = d.rng.Read(p)
	d.off += int64(len(p))
	return len(p), nil
}

func digest(t *testing.T, r io.Reader) ([32]byte, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n
}

func newStore(t *testing.T, srv *fakegcs.Server, mod func(*Config)) *Store {
	t.Helper()
	c := Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "cluster-a", MaxAttempts: 2}
	if mod != nil {
		mod(&c)
	}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wantReason(t *testing.T, what string, err error, reason string) {
	t.Helper()
	if got := store.ReasonOf(err); got != reason {
		t.Fatalf("%s: reason %q (%v), want %s", what, got, err, reason)
	}
}

func TestGCS_StreamedRoundTrip(t *testing.T) {
	srv := fakegcs.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	const size = 20<<20 + 12345 // three chunks of 8 MiB, the last one partial
	if err := s.Put(ctx, "ns/t/b1/data.tar.zst.age", newData(size)); err != nil {
		t.Fatalf("put: %v", err)
	}
	want, _ := digest(t, newData(size))
	rc, err := s.Get(ctx, "ns/t/b1/data.tar.zst.age")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, n := digest(t, rc)
	rc.Close()
	if n != size || got != want {
		t.Fatalf("read back %d bytes, digest match %v", n, got == want)
	}
	oi, err := s.Stat(ctx, "ns/t/b1/data.tar.zst.age")
	if err != nil || oi.Size != size || oi.Key != "ns/t/b1/data.tar.zst.age" || oi.LastModified.IsZero() {
		t.Fatalf("stat %+v, %v", oi, err)
	}
	if keys := srv.Keys(t, ""); strings.Join(keys, " ") != "cluster-a/ns/t/b1/data.tar.zst.age" {
		t.Fatalf("keys %v", keys)
	}
}

// The ends of a resumable upload: an object of no bytes, one of exactly
// two chunks (the upload is finalized by a request without data), and
// chunks that GCS answers with a transient error (a 503) or keeps only in
// part (a 308 whose Range ends inside the chunk), as it may: the store sends
// again what was not kept, and the object is whole.
func TestGCS_UploadEdges(t *testing.T) {
	srv := fakegcs.Start(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var chunks, fail503, keepHalf atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.Header.Get("Content-Range") == "" {
			proxy.ServeHTTP(w, r)
			return
		}
		n := chunks.Add(1)
		if n == fail503.Load() {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var from, to int64
		if n == keepHalf.Load() && r.ContentLength > 2 {
			if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/*", &from, &to); err == nil {
				// Forward the first half as the whole request, then
				// answer as GCS does when it kept only that much.
				half := r.ContentLength / 2
				body, _ := io.ReadAll(io.LimitReader(r.Body, half))
				io.Copy(io.Discard, r.Body)
				r2 := r.Clone(r.Context())
				r2.Body, r2.ContentLength = io.NopCloser(strings.NewReader(string(body))), half
				r2.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", from, from+half-1))
				rec := httptest.NewRecorder()
				proxy.ServeHTTP(rec, r2)
				w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", from+half-1))
				w.WriteHeader(http.StatusPermanentRedirect)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer ts.Close()
	s := newStore(t, srv, func(c *Config) { c.Endpoint = ts.URL; c.ChunkSize = 1 << 20 })
	ctx := context.Background()
	for _, tc := range []struct {
		name           string
		size           int64
		fail503, keep2 int32
	}{
		{"no bytes", 0, 0, 0},
		{"exactly two chunks", 2 << 20, 0, 0},
		{"a 503 on the second chunk", 3<<20 + 5, 2, 0},
		{"half of the first chunk kept", 3<<20 + 5, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunks.Store(0)
			fail503.Store(tc.fail503)
			keepHalf.Store(tc.keep2)
			key := "edges/" + strings.ReplaceAll(tc.name, " ", "-")
			if err := s.Put(ctx, key, io.MultiReader(newData(tc.size))); err != nil {
				t.Fatalf("put: %v", err)
			}
			rc, err := s.Get(ctx, key)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			got, n := digest(t, rc)
			rc.Close()
			want, _ := digest(t, newData(tc.size))
			if n != tc.size || got != want {
				t.Fatalf("read back %d of %d bytes, digest match %v", n, tc.size, got == want)
			}
			if tc.fail503+tc.keep2 > 0 && chunks.Load() < 2 {
				t.Fatalf("the proxy saw %d chunks", chunks.Load())
			}
		})
	}
}

// A download cut short (the connection drops in the middle of the body)
// is resumed where it stopped: the restore reads the whole object.
func TestGCS_GetResumesACutDownload(t *testing.T) {
	srv := fakegcs.Start(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var cuts, resumed atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Get("alt") == "media" {
			if r.Header.Get("Range") != "" {
				resumed.Add(1)
			} else if cuts.Add(1) <= 2 {
				rec := httptest.NewRecorder()
				proxy.ServeHTTP(rec, r)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes()[:rec.Body.Len()/3])
				panic(http.ErrAbortHandler) // drop the connection mid-body
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer ts.Close()
	s := newStore(t, srv, func(c *Config) { c.Endpoint = ts.URL; c.MaxAttempts = 4 })
	ctx := context.Background()
	const size = 5<<20 + 7
	if err := s.Put(ctx, "cut/data", newData(size)); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "cut/data")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, n := digest(t, rc)
	rc.Close()
	want, _ := digest(t, newData(size))
	if n != size || got != want || resumed.Load() == 0 {
		t.Fatalf("read back %d of %d bytes, digest match %v, %d resumed requests", n, size, got == want, resumed.Load())
	}
}

func TestGCS_FailedPutLeavesNothing(t *testing.T) {
	srv := fakegcs.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	boom := errors.New("dump died")
	for _, tc := range []struct {
		name   string
		failAt int64
	}{
		{"after two chunks", 17 << 20},
		{"inside the first chunk", 100 << 10},
		{"at once", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newData(30 << 20)
			d.failAt, d.failErr = tc.failAt, boom
			err := s.Put(ctx, "ns/t/b2/data", d)
			if !errors.Is(err, boom) {
				t.Fatalf("put: %v, want the reader's error", err)
			}
			_, err = s.Stat(ctx, "ns/t/b2/data")
			wantReason(t, "stat after failed put", err, store.ReasonNotFound)
			if keys := srv.Keys(t, ""); len(keys) != 0 {
				t.Fatalf("a failed put left %v", keys)
			}
		})
	}
	// A cancelled context fails the upload the same way.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	pr, pw := io.Pipe()
	go func() {
		io.Copy(pw, io.LimitReader(newData(30<<20), 12<<20))
		<-cctx.Done()
		pw.CloseWithError(cctx.Err())
	}()
	if err := s.Put(cctx, "ns/t/b3/data", pr); err == nil {
		t.Fatal("put with a cancelled context succeeded")
	}
	time.Sleep(100 * time.Millisecond)
	if keys := srv.Keys(t, ""); len(keys) != 0 {
		t.Fatalf("a cancelled put left %v", keys)
	}
}

func TestGCS_ListStatDelete(t *testing.T) {
	srv := fakegcs.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	for _, k := range []string{"ns/b/2/manifest.json", "ns/a/1/data", "ns/a/1/manifest.json", "other/x"} {
		if err := s.Put(ctx, k, strings.NewReader("content of "+k)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	if err := s.Put(ctx, "ns/a/empty", strings.NewReader("")); err != nil {
		t.Fatalf("put empty: %v", err)
	}
	list, err := s.List(ctx, "ns/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, oi := range list {
		keys = append(keys, oi.Key)
		if oi.LastModified.IsZero() {
			t.Errorf("%s: no modification time", oi.Key)
		}
		if want := int64(len("content of " + oi.Key)); oi.Key != "ns/a/empty" && oi.Size != want {
			t.Errorf("%s: size %d, want %d", oi.Key, oi.Size, want)
		}
	}
	if got := strings.Join(keys, " "); got != "ns/a/1/data ns/a/1/manifest.json ns/a/empty ns/b/2/manifest.json" {
		t.Fatalf("list: %s", got)
	}
	if list, err := s.List(ctx, "nothing/"); err != nil || len(list) != 0 {
		t.Fatalf("list of nothing: %v, %v", list, err)
	}
	oi, err := s.Stat(ctx, "ns/a/empty")
	if err != nil || oi.Size != 0 {
		t.Fatalf("stat empty: %+v %v", oi, err)
	}
	_, err = s.Stat(ctx, "ns/a/none")
	wantReason(t, "stat missing", err, store.ReasonNotFound)
	_, err = s.Get(ctx, "ns/a/none")
	wantReason(t, "get missing", err, store.ReasonNotFound)
	if err := s.Delete(ctx, "ns/a/1/data"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "ns/a/1/data"); err != nil {
		t.Fatalf("delete of a missing object: %v", err)
	}
	_, err = s.Stat(ctx, "ns/a/1/data")
	wantReason(t, "stat deleted", err, store.ReasonNotFound)
	if err := s.Put(ctx, "../x", strings.NewReader("x")); err == nil {
		t.Fatal("put of ../x succeeded")
	}
	// Overwrite replaces.
	if err := s.Put(ctx, "other/x", strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "other/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "new" {
		t.Fatalf("overwritten object reads %q", b)
	}
}

func TestGCS_Probe(t *testing.T) {
	srv := fakegcs.Start(t)
	s := newStore(t, srv, nil)
	if err := s.Probe(context.Background()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if keys := srv.Keys(t, ""); len(keys) != 0 {
		t.Fatalf("probe left %v", keys)
	}
	if got := s.String(); got != `gcs bucket "backstop-test" at `+srv.Endpoint {
		t.Fatalf("String() = %s", got)
	}
}

func TestGCS_MissingBucket(t *testing.T) {
	srv := fakegcs.Start(t)
	s := newStore(t, srv, func(c *Config) { c.Bucket = "no-such-bucket" })
	ctx := context.Background()
	wantReason(t, "probe", s.Probe(ctx), store.ReasonBucketNotFound)
	wantReason(t, "put", s.Put(ctx, "a/big", newData(9<<20)), store.ReasonBucketNotFound)
	_, err := s.Get(ctx, "a")
	wantReason(t, "get", err, store.ReasonBucketNotFound)
	_, err = s.Stat(ctx, "a")
	wantReason(t, "stat", err, store.ReasonBucketNotFound)
	_, err = s.List(ctx, "")
	wantReason(t, "list", err, store.ReasonBucketNotFound)
	wantReason(t, "delete", s.Delete(ctx, "a"), store.ReasonBucketNotFound)
}

func TestGCS_Unreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := New(Config{Endpoint: "http://" + addr, Bucket: "b", MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Probe(ctx)
	wantReason(t, "probe", err, store.ReasonStoreUnreachable)
	t.Logf("unreachable: %v", err)
	_, err = s.Get(ctx, "a")
	wantReason(t, "get", err, store.ReasonStoreUnreachable)
	_, err = s.List(ctx, "")
	wantReason(t, "list", err, store.ReasonStoreUnreachable)
	wantReason(t, "put", s.Put(ctx, "a", newData(9<<20)), store.ReasonStoreUnreachable)
}

// serviceAccountKey writes a service-account JSON key, generated for this
// test, whose token endpoint is tokenURL.
func serviceAccountKey(t *testing.T, tokenURL string) (file string, pemKey string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pemKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "backstop-test",
		"private_key_id": "0123456789abcdef",
		"private_key":    pemKey,
		"client_email":   "backup@backstop-test.iam.gserviceaccount.com",
		"client_id":      "1234567890",
		"token_uri":      tokenURL,
	})
	file = filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, pemKey
}

// fake-gcs-server accepts any request, so refused credentials cannot come
// from it. A service-account key whose token endpoint is a local server
// exercises the real credentials path instead: the token endpoint refusing
// the key is AuthenticationFailed; granting a token lets the requests
// through to the emulator with it.
func TestGCS_ServiceAccountKey(t *testing.T) {
	srv := fakegcs.Start(t)
	var refuse atomic.Bool
	var tokens atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if refuse.Load() || r.Form.Get("assertion") == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
			return
		}
		tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"test-token","token_type":"Bearer","expires_in":3600}`)
	}))
	defer ts.Close()
	file, pemKey := serviceAccountKey(t, ts.URL+"/token")

	s := newStore(t, srv, func(c *Config) { c.CredentialsFile = file })
	if err := s.Probe(context.Background()); err != nil {
		t.Fatalf("probe with a granted token: %v", err)
	}
	if tokens.Load() == 0 {
		t.Fatal("no token was fetched")
	}

	refuse.Store(true)
	keyJSON, _ := os.ReadFile(file)
	s2 := newStore(t, srv, func(c *Config) { c.CredentialsJSON = keyJSON })
	err := s2.Probe(context.Background())
	wantReason(t, "probe with a refused key", err, store.ReasonAuthenticationFailed)
	for _, secret := range []string{pemKey, "BEGIN PRIVATE KEY", string(keyJSON)} {
		if strings.Contains(err.Error(), secret) || strings.Contains(s2.String(), secret) {
			t.Fatalf("message holds the key: %v", err)
		}
	}
	t.Logf("refused key: %v", err)
}

// A granted token does not mean access: GCS answers 401 or 403 to an
// account without the bucket's permissions. fake-gcs-server never does, so
// a proxy in front of it answers as GCS would (its JSON error body) while
// deny is set, and passes requests through otherwise.
func TestGCS_PermissionDenied(t *testing.T) {
	srv := fakegcs.Start(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var deny atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(target)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := int(deny.Load())
		if code == 0 {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"backup@backstop-test.iam.gserviceaccount.com does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).","errors":[{"message":"denied","domain":"global","reason":"forbidden"}]}}`, code)
	}))
	defer ts.Close()
	s := newStore(t, srv, func(c *Config) { c.Endpoint = ts.URL })
	ctx := context.Background()
	if err := s.Put(ctx, "kept", strings.NewReader("old")); err != nil {
		t.Fatalf("put through the proxy: %v", err)
	}

	for _, code := range []int{http.StatusForbidden, http.StatusUnauthorized} {
		deny.Store(int32(code))
		what := fmt.Sprintf("HTTP %d", code)
		err := s.Probe(ctx)
		wantReason(t, what+" probe", err, store.ReasonAuthenticationFailed)
		if !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", code)) || !strings.Contains(err.Error(), "storage.objects.create") {
			t.Errorf("%s: the error does not carry the server's answer: %v", what, err)
		}
		t.Logf("%s: %v", what, err)
		wantReason(t, what+" put", s.Put(ctx, "new", newData(9<<20)), store.ReasonAuthenticationFailed)
		_, err = s.Get(ctx, "kept")
		wantReason(t, what+" get", err, store.ReasonAuthenticationFailed)
		_, err = s.Stat(ctx, "kept")
		wantReason(t, what+" stat", err, store.ReasonAuthenticationFailed)
		_, err = s.List(ctx, "")
		wantReason(t, what+" list", err, store.ReasonAuthenticationFailed)
		wantReason(t, what+" delete", s.Delete(ctx, "kept"), store.ReasonAuthenticationFailed)
	}

	// Nothing was written or removed while access was refused.
	deny.Store(0)
	list, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !strings.HasSuffix(list[0].Key, "kept") {
		t.Errorf("objects after the refused calls: %+v, want only kept", list)
	}
}

func TestGCS_Config(t *testing.T) {
	for _, c := range []Config{
		{},
		{Bucket: "b", Endpoint: "ftp://x"},
		{Bucket: "b", Endpoint: "http://u:p@x"},
		{Bucket: "b", Endpoint: "http://x/some/path"},
		{Bucket: "b", CredentialsFile: "/nonexistent/key.json"},
		{Bucket: "b", CredentialsFile: "f", CredentialsJSON: []byte("{}")},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("message holds credentials: %v", err)
		}
	}
	if _, err := New(Config{Bucket: "b", Endpoint: "http://127.0.0.1:1", CredentialsJSON: []byte(`{"type":"authorized_user"}`)}); err == nil {
		t.Error("a key that is not a service-account key was accepted")
	}
}
