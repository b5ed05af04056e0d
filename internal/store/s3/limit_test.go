package s3

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// The limit reader lets exactly the limit through and fails only when the
// source holds more.
func TestPartLimitReader(t *testing.T) {
	tooLarge := errors.New("too large")
	for _, tc := range []struct {
		size, limit int64
		wantErr     error
	}{
		{size: 0, limit: 10},
		{size: 9, limit: 10},
		{size: 10, limit: 10},
		{size: 11, limit: 10, wantErr: tooLarge},
		{size: 1000, limit: 10, wantErr: tooLarge},
	} {
		r := &partLimitReader{r: bytes.NewReader(make([]byte, tc.size)), left: tc.limit, err: tooLarge}
		n, err := io.Copy(io.Discard, r)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%d bytes, limit %d: error %v, want %v", tc.size, tc.limit, err, tc.wantErr)
		}
		if want := min(tc.size, tc.limit); n != want {
			t.Errorf("%d bytes, limit %d: read %d, want %d", tc.size, tc.limit, n, want)
		}
	}
}
