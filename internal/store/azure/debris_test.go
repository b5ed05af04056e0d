package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"

	"github.com/backstop-io/backstop/internal/pipeline"
	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/testutil/azurite"
)

// stage stages blocks of the given sizes at the blob name and commits
// nothing, as an upload killed outright (kill -9, a lost node) leaves them.
// The IDs have the form Put gives its own, with a prefix of their own.
func stage(t *testing.T, srv *azurite.Server, name string, sizes ...int) []string {
	t.Helper()
	var run [16]byte
	_, _ = rand.Read(run[:])
	var ids []string
	for i, size := range sizes {
		id := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%s-%08d", hex.EncodeToString(run[:]), i)))
		if _, err := srv.Client.NewBlockBlobClient(name).StageBlock(context.Background(), id,
			streaming.NopCloser(bytes.NewReader(make([]byte, size))), nil); err != nil {
			t.Fatalf("staging a block at %s: %v", name, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// etag is the ETag of the committed blob name.
func etag(t *testing.T, srv *azurite.Server, name string) azcore.ETag {
	t.Helper()
	p, err := srv.Client.NewBlobClient(name).GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatalf("properties of %s: %v", name, err)
	}
	return *p.ETag
}

func read(t *testing.T, s *Store, key string) string {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b)
}

// neighbours are blobs next to the artifacts a test clears, which must come
// through untouched: a killed upload at a path that starts with the same
// letters, and a committed artifact that a killed run staged blocks on.
type neighbours struct {
	srv           *azurite.Server
	killed        []string
	artifactETag  azcore.ETag
	artifactStage []string
}

const (
	neighbourKilled   = "cluster-a/ns/t/b10/data.sql.zst.age"
	neighbourArtifact = "cluster-a/ns/t/b2/data.sql.zst.age"
)

func addNeighbours(t *testing.T, srv *azurite.Server, s *Store) *neighbours {
	t.Helper()
	n := &neighbours{srv: srv}
	n.killed = stage(t, srv, neighbourKilled, 1000, 1000)
	if err := s.Put(context.Background(), "ns/t/b2/data.sql.zst.age", strings.NewReader("artifact b2")); err != nil {
		t.Fatal(err)
	}
	n.artifactETag = etag(t, srv, neighbourArtifact)
	n.artifactStage = stage(t, srv, neighbourArtifact, 1000)
	return n
}

func (n *neighbours) check(t *testing.T, s *Store) {
	t.Helper()
	if got := n.srv.Uncommitted(t, neighbourKilled); !slices.Equal(got, n.killed) {
		t.Errorf("the killed upload at %s holds blocks %v, want %v untouched", neighbourKilled, got, n.killed)
	}
	if got := etag(t, n.srv, neighbourArtifact); got != n.artifactETag {
		t.Errorf("the committed blob %s changed (ETag %s, was %s)", neighbourArtifact, got, n.artifactETag)
	}
	if got := read(t, s, "ns/t/b2/data.sql.zst.age"); got != "artifact b2" {
		t.Errorf("the committed blob %s reads %q", neighbourArtifact, got)
	}
	if got := n.srv.Uncommitted(t, neighbourArtifact); !slices.Equal(got, n.artifactStage) {
		t.Errorf("the blocks staged on %s are %v, want %v untouched", neighbourArtifact, got, n.artifactStage)
	}
}

// pausingReader serves data and, once pauseAt bytes are read, waits for
// resume before it serves the rest: the test looks at the store while the
// upload is under way.
type pausingReader struct {
	r       io.Reader
	off     int64
	pauseAt int64
	paused  chan struct{}
	resume  chan struct{}
}

func (p *pausingReader) Read(b []byte) (int, error) {
	if p.off == p.pauseAt && p.paused != nil {
		close(p.paused)
		p.paused = nil
		<-p.resume
	}
	if p.off < p.pauseAt && int64(len(b)) > p.pauseAt-p.off {
		b = b[:p.pauseAt-p.off]
	}
	n, err := p.r.Read(b)
	p.off += int64(n)
	return n, err
}

// A run killed mid-upload left uncommitted blocks at its key. The next run
// of the same key discards them before it stages its own, so even while it
// runs (and if it fails too) they are gone; it ends with the new blob and
// nothing else there. Neighbouring blobs are untouched.
func TestAzure_RetryClearsKilledRun(t *testing.T) {
	srv := azurite.Start(t)
	s := newStore(t, srv, func(c *Config) { c.BlockSize = 1 << 20 })
	ctx := context.Background()
	const key = "ns/t/b1/data.sql.zst.age"
	full := "cluster-a/" + key
	killed := stage(t, srv, full, 1<<20, 1<<20, 1<<20)
	n := addNeighbours(t, srv, s)

	const size = 3<<20 + 5
	r := &pausingReader{r: newData(size), pauseAt: 1<<20 + 10, paused: make(chan struct{}), resume: make(chan struct{})}
	paused := r.paused
	done := make(chan error, 1)
	go func() { done <- s.Put(ctx, key, r) }()
	select {
	case <-paused:
	case err := <-done:
		t.Fatalf("put ended before the pause: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the upload did not read its first block in a minute")
	}
	during := srv.Uncommitted(t, full)
	close(r.resume)
	if err := <-done; err != nil {
		t.Fatalf("put: %v", err)
	}
	for _, id := range killed {
		if slices.Contains(during, id) {
			t.Fatalf("while the new run uploads, the killed run's blocks are still staged: %v", during)
		}
	}

	want := []string{neighbourKilled, full, neighbourArtifact}
	slices.Sort(want)
	if got := srv.KeysWithUncommitted(t, "cluster-a/"); !slices.Equal(got, want) {
		t.Fatalf("the container holds %v, want %v", got, want)
	}
	if left := srv.Uncommitted(t, full); len(left) != 0 {
		t.Fatalf("uncommitted blocks left at the new blob: %v", left)
	}
	rc, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, m := digest(t, rc)
	rc.Close()
	if wantSum, _ := digest(t, newData(size)); got != wantSum || m != size {
		t.Fatalf("the new blob reads %d bytes, digest match %v", m, got == wantSum)
	}
	n.check(t, s)

	// A retry that fails too leaves nothing of either run.
	const key2 = "ns/t/b3/data.sql.zst.age"
	stage(t, srv, "cluster-a/"+key2, 1<<20, 1<<20)
	d := newData(3 << 20)
	d.failAt, d.failErr = 2<<20+100, io.ErrClosedPipe
	if err := s.Put(ctx, key2, d); err == nil {
		t.Fatal("put of a failing reader succeeded")
	}
	if got := srv.KeysWithUncommitted(t, "cluster-a/ns/t/b3/"); len(got) != 0 {
		t.Fatalf("after a killed run and a failed retry the path holds %v", got)
	}
	n.check(t, s)
}

// Deleting an artifact clears what killed runs left under its path: a
// blob that was never committed, and blocks staged on a committed one.
// Neighbouring blobs are untouched.
func TestAzure_DeleteClearsKilledRuns(t *testing.T) {
	srv := azurite.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	n := addNeighbours(t, srv, s)

	// b1: the only run was killed mid-upload; nothing was committed.
	stage(t, srv, "cluster-a/ns/t/b1/data.sql.zst.age", 1000, 2000)
	// b3: a complete artifact, then a run of the same path killed mid-upload.
	for _, k := range []string{"ns/t/b3/data.sql.zst.age", "ns/t/b3/manifest.json"} {
		if err := s.Put(ctx, k, strings.NewReader("content of "+k)); err != nil {
			t.Fatal(err)
		}
	}
	stage(t, srv, "cluster-a/ns/t/b3/data.sql.zst.age", 1000)

	for _, path := range []string{"ns/t/b1", "ns/t/b3"} {
		if err := pipeline.DeleteArtifact(ctx, s, path); err != nil {
			t.Fatalf("delete %s: %v", path, err)
		}
		if got := srv.KeysWithUncommitted(t, "cluster-a/"+path+"/"); len(got) != 0 {
			t.Fatalf("after deleting %s the path holds %v", path, got)
		}
	}
	want := []string{neighbourKilled, neighbourArtifact}
	if got := srv.KeysWithUncommitted(t, ""); !slices.Equal(got, want) {
		t.Fatalf("the container holds %v, want %v", got, want)
	}
	n.check(t, s)

	// Delete of one key clears a killed upload of that key.
	stage(t, srv, "cluster-a/ns/t/b4/data", 1000)
	if err := s.Delete(ctx, "ns/t/b4/data"); err != nil {
		t.Fatal(err)
	}
	if got := srv.KeysWithUncommitted(t, "cluster-a/ns/t/b4/"); len(got) != 0 {
		t.Fatalf("after Delete the key holds %v", got)
	}
	n.check(t, s)
}

// The store's probe counts the blobs under its prefix that killed uploads
// left uncommitted, and the bytes of their blocks: not committed blobs, not
// blobs outside the prefix. Past 100 such blobs the bytes are a lower
// bound.
func TestAzure_Debris(t *testing.T) {
	srv := azurite.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	want := func(s *Store, objects, size int64, partial bool) {
		t.Helper()
		d, err := s.Debris(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d != (store.Debris{Objects: objects, Bytes: size, Partial: partial}) {
			t.Fatalf("debris %+v, want %d objects, %d bytes, partial %v", d, objects, size, partial)
		}
	}
	want(s, 0, 0, false)
	n := addNeighbours(t, srv, s)
	stage(t, srv, "cluster-ab/ns/t/b1/data", 1000) // another store's prefix
	stage(t, srv, "other", 1000)
	want(s, 1, 2000, false) // the neighbour's two blocks of 1000

	stage(t, srv, "cluster-a/ns/t/b1/data.sql.zst.age", 1000, 2345)
	want(s, 2, 5345, false)
	// A store without a prefix counts the whole container.
	want(newStore(t, srv, func(c *Config) { c.Prefix = "" }), 4, 7345, false)

	if err := s.ClearDebris(ctx, "ns/t/b1/"); err != nil {
		t.Fatal(err)
	}
	want(s, 1, 2000, false)
	n.check(t, s)

	for i := 0; i < maxSizedBlobs+1; i++ {
		stage(t, srv, fmt.Sprintf("cluster-a/many/%03d", i), 10)
	}
	want(s, maxSizedBlobs+2, maxSizedBlobs*10, true) // the first 100 in name order: many/000 to 099

	if err := s.ClearDebris(ctx, ""); err != nil {
		t.Fatal(err)
	}
	want(s, 0, 0, false)
	if got := srv.KeysWithUncommitted(t, "cluster-a/"); !slices.Equal(got, []string{neighbourArtifact}) {
		t.Fatalf("after clearing the prefix it holds %v", got)
	}
	if got := read(t, s, "ns/t/b2/data.sql.zst.age"); got != "artifact b2" {
		t.Fatalf("the committed blob reads %q", got)
	}
	if got := srv.KeysWithUncommitted(t, ""); !slices.Contains(got, "other") || !slices.Contains(got, "cluster-ab/ns/t/b1/data") {
		t.Fatalf("clearing the store's prefix cleared outside it: %v", got)
	}
}

// A run cut off on a lost node fails at last, after the Job's next run
// cleared its blocks and staged its own: the failed run discards only
// while blocks of its own are there, so the next run's stay.
func TestAzure_FailedRunLeavesItsSuccessorsBlocks(t *testing.T) {
	srv := azurite.Start(t)
	s := newStore(t, srv, func(c *Config) { c.BlockSize = 1 << 20 })
	ctx := context.Background()
	const key = "ns/t/b1/data.sql.zst.age"
	full := "cluster-a/" + key

	d := newData(3 << 20)
	d.failAt, d.failErr = 1<<20+10, io.ErrClosedPipe
	r := &pausingReader{r: d, pauseAt: 1<<20 + 10, paused: make(chan struct{}), resume: make(chan struct{})}
	paused := r.paused
	done := make(chan error, 1)
	go func() { done <- s.Put(ctx, key, r) }()
	<-paused
	deadline := time.Now().Add(time.Minute)
	for len(srv.Uncommitted(t, full)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first block was not staged in a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The next run clears the blocks and stages its own.
	if err := s.clearUncommitted(ctx, full); err != nil {
		t.Fatal(err)
	}
	next := stage(t, srv, full, 1000, 1000)
	close(r.resume)
	if err := <-done; err == nil {
		t.Fatal("put of a failing reader succeeded")
	}
	if got := srv.Uncommitted(t, full); !slices.Equal(got, next) {
		t.Fatalf("after the earlier run failed the blob holds blocks %v, want the next run's %v", got, next)
	}
}
