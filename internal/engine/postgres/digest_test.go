package postgres

import (
	"bytes"
	"strings"
	"testing"
)

// The content filter leaves out exactly pg_dump's \restrict line and the
// \unrestrict line with the same key, however the dump is cut into writes.
func TestContentFilter_LeavesOutTheRestrictKeyLines(t *testing.T) {
	dump := "--\n-- PostgreSQL database dump\n--\n\n\\restrict Abc123\n\nSET x = 0;\n" +
		"COPY public.t (a) FROM stdin;\n\\\\restrict Abc123\n\\restrict Abc123\n\\unrestrict Other1\n" + strings.Repeat("y", 1000) + "\n\\.\n\n" +
		"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict Abc123\n\n"
	want := strings.NewReplacer("\\restrict Abc123\n\nSET", "\nSET", "\n\\unrestrict Abc123\n", "\n").Replace(dump)
	for _, size := range []int{1, 2, 7, 64, len(dump)} {
		var out bytes.Buffer
		f := NewContentFilter(&out)
		for off := 0; off < len(dump); off += size {
			if _, err := f.Write([]byte(dump[off:min(off+size, len(dump))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("writes of %d bytes:\n%q\nwant\n%q", size, out.String(), want)
		}
	}
}
