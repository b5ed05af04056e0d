package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/engine"
)

func TestMain(m *testing.M) {
	crypto.ScryptWorkFactor = 10
	os.Exit(m.Run())
}

// fakeEngine dumps fixed bytes and records what a restore received.
type fakeEngine struct {
	name string
	data []byte
	// failAfter >= 0 makes Dump fail after writing that many bytes.
	failAfter int
	checkErr  error
	// checkHangs makes Check wait until its context ends.
	checkHangs bool
	// version is what Version reports ("fake 1.0" when empty).
	version string
	// restoreErr, when set, is what Restore returns once it has read the dump.
	restoreErr error

	mu            sync.Mutex
	dumpCalled    bool
	restoreCalled bool
	restored      []byte
}

func newFake(name string, data []byte) *fakeEngine {
	return &fakeEngine{name: name, data: data, failAfter: -1}
}

func (f *fakeEngine) Name() string { return f.name }

// Ext names the data object as a SQL dump's: the fake is not one of the
// registered engines, whose dumps are checked for completeness.
func (f *fakeEngine) Ext() string { return ".sql" }

func (f *fakeEngine) Check(ctx context.Context) error {
	if f.checkHangs {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.checkErr
}

func (f *fakeEngine) Version(ctx context.Context) (string, error) {
	if f.version != "" {
		return f.version, nil
	}
	return "fake 1.0", nil
}

func (f *fakeEngine) Dump(ctx context.Context, w io.Writer) error {
	f.mu.Lock()
	f.dumpCalled = true
	f.mu.Unlock()
	data := f.data
	if f.failAfter >= 0 {
		data = data[:f.failAfter]
	}
	for len(data) > 0 {
		n := min(len(data), 32<<10)
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	if f.failAfter >= 0 {
		return engine.Errorf(engine.ReasonDumpFailed, "pg_dump: connection lost")
	}
	return nil
}

func (f *fakeEngine) Restore(ctx context.Context, r io.Reader) error {
	f.mu.Lock()
	f.restoreCalled = true
	f.mu.Unlock()
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.restored = b
	f.mu.Unlock()
	return f.restoreErr
}

// touched tells whether the target was written to. Its check only reads,
// and runs while the artifact downloads.
func (f *fakeEngine) touched() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restoreCalled
}

// testData returns n bytes: half compressible text, half random.
func testData(n int) []byte {
	var b bytes.Buffer
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Len() < n/2 {
		b.WriteString("INSERT INTO t VALUES (42, 'backstop');\n")
	}
	for b.Len() < n {
		var x [8]byte
		v := rng.Uint64()
		for i := range x {
			x[i] = byte(v >> (8 * i))
		}
		b.Write(x[:])
	}
	return b.Bytes()[:n]
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got none")
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error is not a *pipeline.Error: %v", err)
	}
	return pe.Reason
}
