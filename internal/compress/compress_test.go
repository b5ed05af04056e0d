package compress

import (
	"bytes"
	"errors"
	"io"
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
