package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/backstop-io/backstop/internal/testutil/corpus"
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

// The fast levels compress in parallel frames written one after the
// other; every level must give back the exact bytes, whatever the sizes
// of the writes, across many frames.
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

func cliSize(t *testing.T, data []byte, args ...string) int {
	t.Helper()
	cmd := exec.Command("zstd", append(args, "-c")...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd %v: %v", args, err)
	}
	return len(out)
}

func ourSize(t *testing.T, data []byte, level int) int {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Zstd, level)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 256 << 10 {
		if _, err := w.Write(data[off:min(off+256<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The stock CLI reads it back to the same bytes.
	cmd := exec.Command("zstd", "-d", "-c")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("zstd -d of level %d: %d of %d bytes, %v", level, len(out), len(data), err)
	}
	return buf.Len()
}

// The default level (and level 5, which compresses as level 3) stores no
// more than 3% above the stock `zstd -3`, and level 1 no more than 3% above
// `zstd -1`, on a pgbench dump, a dump of bytea values and a tree of mixed
// files; and `zstd -d` reads back the exact bytes.
func TestZstd_RatioMatchesTheCLI(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatal("the zstd CLI is not installed (Debian package zstd; make test installs it)")
	}
	const n = 24 << 20
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"pgbench dump", corpus.PgbenchDump(n)},
		{"bytea dump", corpus.ByteaDump(n)},
		{"mixed files", corpus.MixedTar(t, n)},
	} {
		for _, lv := range []struct{ ours, cli int }{{0, 3}, {1, 1}, {5, 3}} {
			ours, ref := ourSize(t, c.data, lv.ours), cliSize(t, c.data, fmt.Sprintf("-%d", lv.cli))
			ratio := float64(ours) / float64(ref)
			t.Logf("%s: level %d stores %d bytes, zstd -%d %d (%.3f)", c.name, lv.ours, ours, lv.cli, ref, ratio)
			if ratio > 1.03 {
				t.Errorf("%s: level %d stores %d bytes, %.1f%% more than zstd -%d (%d)", c.name, lv.ours, ours, 100*(ratio-1), lv.cli, ref)
			}
		}
	}
}

// An empty dump is still a zstd stream that reads back empty.
func TestZstd_EmptyStream(t *testing.T) {
	for _, level := range []int{1, 3, 7} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Zstd, level)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		alg, r, _ := Detect(bytes.NewReader(buf.Bytes()))
		if alg != Zstd {
			t.Fatalf("level %d: an empty stream is detected as %q", level, alg)
		}
		d, err := NewReader(r, Zstd)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := io.ReadAll(d); err != nil || len(out) != 0 {
			t.Fatalf("level %d: %d bytes, %v", level, len(out), err)
		}
	}
}
