package azure

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/testutil/azurite"
)

// dataReader yields n deterministic pseudo-random bytes through a plain
// io.Reader, failing with failErr after failAt bytes when failAt >= 0.
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

func newStore(t *testing.T, srv *azurite.Server, mod func(*Config)) *Store {
	t.Helper()
	c := Config{Endpoint: srv.Endpoint, Account: srv.Account, AccountKey: srv.Key, Container: srv.Container, Prefix: "cluster-a", MaxRetries: 1}
	if mod != nil {
		mod(&c)
	}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantReason(t *testing.T, what string, err error, reason string) {
	t.Helper()
	if got := store.ReasonOf(err); got != reason {
		t.Fatalf("%s: reason %q (%v), want %s", what, got, err, reason)
	}
}

// containerSAS signs a SAS for srv's container (or another name) with the
// account key.
func containerSAS(t *testing.T, srv *azurite.Server, containerName string) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(srv.Account, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}).String(),
		ContainerName: containerName,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

func TestAzure_StreamedRoundTrip(t *testing.T) {
	srv := azurite.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	const size = 20<<20 + 12345 // three blocks of 8 MiB, the last one partial
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
	// Exactly one block, and more concurrency than blocks.
	s4 := newStore(t, srv, func(c *Config) { c.BlockSize = 1 << 20; c.Concurrency = 4 })
	for _, size := range []int64{1 << 20, 1<<20 + 1, 3 << 20} {
		if err := s4.Put(ctx, "edge", newData(size)); err != nil {
			t.Fatalf("put %d: %v", size, err)
		}
		rc, err := s4.Get(ctx, "edge")
		if err != nil {
			t.Fatal(err)
		}
		got, n := digest(t, rc)
		rc.Close()
		if want, _ := digest(t, newData(size)); n != size || got != want {
			t.Fatalf("size %d: read back %d bytes, digest match %v", size, n, got == want)
		}
	}
}

func TestAzure_FailedPutLeavesNothing(t *testing.T) {
	srv := azurite.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	boom := errors.New("dump died")
	for _, tc := range []struct {
		name   string
		failAt int64
	}{
		{"after two blocks", 17 << 20},
		{"inside the first block", 100 << 10},
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
			if keys := srv.KeysWithUncommitted(t, ""); len(keys) != 0 {
				t.Fatalf("a failed put left %v (uncommitted blobs included)", keys)
			}
		})
	}
	// A failed put does not touch an existing blob at the key, nor does
	// its clearing of uncommitted blocks.
	if err := s.Put(ctx, "ns/t/b4/data", strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	before := etag(t, srv, "cluster-a/ns/t/b4/data")
	d := newData(30 << 20)
	d.failAt, d.failErr = 17<<20, boom
	if err := s.Put(ctx, "ns/t/b4/data", d); !errors.Is(err, boom) {
		t.Fatalf("put: %v", err)
	}
	if oi, err := s.Stat(ctx, "ns/t/b4/data"); err != nil || oi.Size != 3 {
		t.Fatalf("the existing blob changed: %+v %v", oi, err)
	}
	if got := etag(t, srv, "cluster-a/ns/t/b4/data"); got != before || read(t, s, "ns/t/b4/data") != "old" {
		t.Fatalf("the existing blob was rewritten (ETag %s, was %s)", got, before)
	}
}

func TestAzure_ListStatDelete(t *testing.T) {
	srv := azurite.Start(t)
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

func TestAzure_Probe(t *testing.T) {
	srv := azurite.Start(t)
	ctx := context.Background()
	s := newStore(t, srv, nil)
	if err := s.Probe(ctx); err != nil {
		t.Fatalf("probe with the account key: %v", err)
	}
	token := containerSAS(t, srv, srv.Container)
	sasStore := newStore(t, srv, func(c *Config) { c.AccountKey = ""; c.SASToken = "?" + token })
	if err := sasStore.Probe(ctx); err != nil {
		t.Fatalf("probe with a SAS token: %v", err)
	}
	if keys := srv.Keys(t, ""); len(keys) != 0 {
		t.Fatalf("probe left %v", keys)
	}
	for _, st := range []*Store{s, sasStore} {
		if got := st.String(); got != `azure container "backstop-test" in account "`+srv.Account+`" at `+srv.Endpoint {
			t.Fatalf("String() = %s", got)
		}
	}
}

func TestAzure_WrongCredentials(t *testing.T) {
	srv := azurite.Start(t)
	ctx := context.Background()
	wrongKey := "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
	s := newStore(t, srv, func(c *Config) { c.AccountKey = wrongKey })
	err := s.Probe(ctx)
	wantReason(t, "probe with a wrong key", err, store.ReasonAuthenticationFailed)
	t.Logf("wrong key: %v", err)
	_, err = s.List(ctx, "")
	wantReason(t, "list with a wrong key", err, store.ReasonAuthenticationFailed)
	_, err = s.Stat(ctx, "a")
	wantReason(t, "stat with a wrong key", err, store.ReasonAuthenticationFailed)
	_, err = s.Get(ctx, "a")
	wantReason(t, "get with a wrong key", err, store.ReasonAuthenticationFailed)
	wantReason(t, "delete with a wrong key", s.Delete(ctx, "a"), store.ReasonAuthenticationFailed)
	wantReason(t, "big put with a wrong key", s.Put(ctx, "a", newData(20<<20)), store.ReasonAuthenticationFailed)

	// A SAS whose signature does not match.
	token := containerSAS(t, srv, srv.Container)
	i := strings.Index(token, "sig=")
	bad := token[:i+4] + "AAAA" + token[i+8:]
	s2 := newStore(t, srv, func(c *Config) { c.AccountKey = ""; c.SASToken = bad })
	err = s2.Probe(ctx)
	wantReason(t, "probe with a bad SAS", err, store.ReasonAuthenticationFailed)
	for _, secret := range []string{wrongKey, srv.Key, bad[i:], token[i:]} {
		if strings.Contains(err.Error(), secret) || strings.Contains(s2.String(), secret) {
			t.Fatalf("message holds a secret: %v", err)
		}
	}
	t.Logf("bad SAS: %v", err)
	// A SAS for another container does not open this one.
	s3 := newStore(t, srv, func(c *Config) { c.AccountKey = ""; c.SASToken = containerSAS(t, srv, "other") })
	wantReason(t, "probe with another container's SAS", s3.Probe(ctx), store.ReasonAuthenticationFailed)
}

func TestAzure_MissingContainer(t *testing.T) {
	srv := azurite.Start(t)
	ctx := context.Background()
	s := newStore(t, srv, func(c *Config) { c.Container = "no-such-container" })
	wantReason(t, "probe", s.Probe(ctx), store.ReasonBucketNotFound)
	big := newData(400 << 20)
	wantReason(t, "put", s.Put(ctx, "a/big", big), store.ReasonBucketNotFound)
	if big.off > 5*DefaultBlockSize {
		t.Fatalf("put read %d MiB after its first block failed", big.off>>20)
	}
	_, err := s.Get(ctx, "a")
	wantReason(t, "get", err, store.ReasonBucketNotFound)
	_, err = s.Stat(ctx, "a")
	wantReason(t, "stat", err, store.ReasonBucketNotFound)
	_, err = s.List(ctx, "")
	wantReason(t, "list", err, store.ReasonBucketNotFound)
	wantReason(t, "delete", s.Delete(ctx, "a"), store.ReasonBucketNotFound)
	// With a SAS for that container name.
	s2 := newStore(t, srv, func(c *Config) {
		c.Container = "no-such-container"
		c.AccountKey = ""
		c.SASToken = containerSAS(t, srv, "no-such-container")
	})
	wantReason(t, "probe with a SAS", s2.Probe(ctx), store.ReasonBucketNotFound)
}

func TestAzure_Unreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := New(Config{Endpoint: "http://" + addr + "/acct", Account: "acct", Container: "c",
		SASToken: "sv=2024-01-01&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Probe(ctx)
	wantReason(t, "probe", err, store.ReasonStoreUnreachable)
	if strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "sig=") {
		t.Fatalf("message holds the SAS: %v", err)
	}
	t.Logf("unreachable: %v", err)
	_, err = s.Get(ctx, "a")
	wantReason(t, "get", err, store.ReasonStoreUnreachable)
	_, err = s.List(ctx, "")
	wantReason(t, "list", err, store.ReasonStoreUnreachable)
	wantReason(t, "put", s.Put(ctx, "a", newData(20<<20)), store.ReasonStoreUnreachable)
}

func TestAzure_Config(t *testing.T) {
	for _, c := range []Config{
		{},
		{Account: "a"},
		{Account: "a", Container: "c"},
		{Account: "a", Container: "c", AccountKey: "k", SASToken: "s"},
		{Account: "a", Container: "c", AccountKey: "not base64!"},
		{Account: "a", Container: "c", SASToken: "sig=x", Endpoint: "ftp://x"},
		{Account: "a", Container: "c", SASToken: "sig=x", Endpoint: "https://x/?sig=y"},
		{Account: "a", Container: "c", SASToken: "sig=x", BlockSize: 5000 << 20},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		} else if strings.Contains(err.Error(), "not base64!") {
			t.Errorf("message holds the key: %v", err)
		}
	}
	s, err := New(Config{Account: "acct", Container: "c", SASToken: "sig=x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != `azure container "c" in account "acct" at https://acct.blob.core.windows.net` {
		t.Fatalf("String() = %s", got)
	}
}

// A blob takes at most MaxBlocks blocks: an upload that needs more fails
// with a message naming the limit and the field that raises it, and commits
// nothing; one that fits exactly is stored whole.
func TestAzure_BlockLimit(t *testing.T) {
	srv := azurite.Start(t)
	ctx := context.Background()
	s := newStore(t, srv, func(c *Config) { c.BlockSize = 1 << 20; c.MaxBlocks = 2 })

	if err := s.Put(ctx, "a/fits", newData(2<<20)); err != nil {
		t.Fatalf("put of exactly two blocks: %v", err)
	}
	if info, err := s.Stat(ctx, "a/fits"); err != nil || info.Size != 2<<20 {
		t.Fatalf("stat of the blob that fits: %+v, %v", info, err)
	}

	err := s.Put(ctx, "a/big", newData(2<<20+1))
	wantReason(t, "put past the block limit", err, store.ReasonStoreError)
	for _, want := range []string{"larger than 2 blocks of 1 MiB (2 MiB)", "spec.azure.blockSizeMiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := s.Stat(ctx, "a/big"); !store.IsNotFound(err) {
		t.Fatalf("the blob past the limit exists after its upload failed: %v", err)
	}
}
