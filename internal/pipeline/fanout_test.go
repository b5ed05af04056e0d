package pipeline

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestFanOut_EveryGroupGetsEveryByteInOrder(t *testing.T) {
	data := testData(3*fanChunkSize*fanChunks + 12345)
	for _, how := range []string{"Write", "ReadFrom"} {
		t.Run(how, func(t *testing.T) {
			var a, b bytes.Buffer
			h := sha256.New()
			f := newFanOut([]io.Writer{&a, h}, []io.Writer{&b})
			var err error
			if how == "Write" {
				// Writes of odd sizes, some larger than a chunk.
				for p, n := data, 1; len(p) > 0; n = n*7%(3*fanChunkSize) + 1 {
					k := min(n, len(p))
					if _, err = f.Write(p[:k]); err != nil {
						break
					}
					p = p[k:]
				}
			} else {
				// A reader that returns one byte at a time at first, then halves.
				_, err = io.Copy(f, io.MultiReader(iotest.OneByteReader(bytes.NewReader(data[:1000])), iotest.HalfReader(bytes.NewReader(data[1000:]))))
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), data) || !bytes.Equal(b.Bytes(), data) {
				t.Fatalf("groups got %d and %d bytes, want %d identical", a.Len(), b.Len(), len(data))
			}
			if got, want := h.Sum(nil), sha256.Sum256(data); !bytes.Equal(got, want[:]) {
				t.Fatal("the hash in a group saw other bytes")
			}
		})
	}
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, f.err
	}
	return len(p), nil
}

func TestFanOut_AGroupsErrorStopsTheCopy(t *testing.T) {
	boom := errors.New("boom")
	data := testData(64 * fanChunkSize)
	var other bytes.Buffer
	f := newFanOut([]io.Writer{&failAfter{n: 2 * fanChunkSize, err: boom}}, []io.Writer{&other})
	n, err := io.Copy(f, bytes.NewReader(data))
	if cerr := f.Close(); !errors.Is(cerr, boom) {
		t.Fatalf("Close: %v, want the group's error", cerr)
	}
	if !errors.Is(err, boom) {
		t.Fatalf("copy: %v after %d bytes, want the group's error", err, n)
	}
	// The copy stopped soon after the failure: at most the chunks in flight.
	if n > int64((2+2*fanChunks+1)*fanChunkSize) {
		t.Errorf("the copy went on for %d bytes after a group failed", n)
	}
}
