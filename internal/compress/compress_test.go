package compress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

func TestRoundTripAndCorruption(t *testing.T) {
	plain := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	for _, a := range []Algorithm{Zstd, Gzip, None} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, a, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		w.Close()
		got, r, _ := Detect(bytes.NewReader(buf.Bytes()))
		if got != a {
			t.Errorf("detected %s, want %s", got, a)
		}
		d, err := NewReader(r, a)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := io.ReadAll(d); err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("%s: %v", a, err)
		}
		if a == None {
			continue
		}
		trunc := buf.Bytes()[:buf.Len()-5]
		d, err = NewReader(bytes.NewReader(trunc), a)
		if err == nil {
			_, err = io.ReadAll(d)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s truncated: %v", a, err)
		}
	}
	if _, err := Zstd.Level(23); err == nil {
		t.Error("zstd level 23 accepted")
	}
	if _, err := None.Level(3); err == nil {
		t.Error("a level for none accepted")
	}
}

// The fast levels compress in parallel jobs that are stitched into one
// frame; every level must give back the exact bytes, whatever the sizes
// of the writes, across many jobs.
func TestZstd_EveryLevelRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	plain := make([]byte, 6<<20+12345)
	for i := range plain {
		if i/4096%3 == 0 {
			plain[i] = byte(rng.Uint32()) // incompressible stretches
		} else {
			plain[i] = "INSERT INTO t VALUES (1, 'backstop');\n"[i%38]
		}
	}
	for _, level := range []int{1, 3, 5, 6, 19} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Zstd, level)
		if err != nil {
			t.Fatal(err)
		}
		for off, n := 0, 1; off < len(plain); off, n = off+n, n*3%200003+1 {
			if _, err := w.Write(plain[off:min(off+n, len(plain))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		d, err := NewReader(bytes.NewReader(buf.Bytes()), Zstd)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(d)
		if err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("level %d: %d of %d bytes back, %v", level, len(out), len(plain), err)
		}
		if ratio := float64(buf.Len()) / float64(len(plain)); ratio > 0.4 {
			t.Errorf("level %d: compressed to %.2f of the input, want about a third", level, ratio)
		}
	}
}
