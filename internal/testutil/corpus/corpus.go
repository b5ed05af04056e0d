// Package corpus generates the test data that compression is measured on
// (internal/compress's ratio test and the benchmark in test/bench/agent):
// shapes of what backups hold, deterministic for a size.
package corpus

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// PgbenchDump is n bytes shaped like a pg_dump of `pgbench -i` data: the
// accounts table's rows (sequential ids, a branch id, a zero balance, 84
// spaces of filler), which compress to about 1%, and a short history of
// transactions.
func PgbenchDump(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 4096)
	rng := rand.New(rand.NewPCG(11, 12))
	b.WriteString("--\n-- PostgreSQL database dump\n--\n\nCOPY \"public\".\"pgbench_accounts\" (\"aid\", \"bid\", \"abalance\", \"filler\") FROM stdin;\n")
	filler := strings.Repeat(" ", 84)
	for aid := 1; b.Len() < n-n/32; aid++ {
		fmt.Fprintf(&b, "%d\t%d\t0\t%s\n", aid, (aid-1)/100000+1, filler)
	}
	b.WriteString("\\.\n\nCOPY \"public\".\"pgbench_history\" (\"tid\", \"bid\", \"aid\", \"delta\", \"mtime\", \"filler\") FROM stdin;\n")
	for b.Len() < n {
		fmt.Fprintf(&b, "%d\t%d\t%d\t%d\t2026-12-03 19:%02d:%02d.%06d\t\\N\n",
			rng.IntN(100)+1, rng.IntN(10)+1, rng.IntN(1000000)+1, rng.IntN(10001)-5000, rng.IntN(60), rng.IntN(60), rng.IntN(1000000))
	}
	return b.Bytes()[:n]
}

// ByteaDump is n bytes of a dump dominated by bytea values: random bytes
// written as hex (1 KB to 600 KB per value), which only entropy coding
// compresses (to about half).
func ByteaDump(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 700<<10)
	rng := rand.New(rand.NewPCG(13, 14))
	b.WriteString("COPY \"public\".\"blobs\" (\"id\", \"name\", \"data\") FROM stdin;\n")
	const digits = "0123456789abcdef"
	for id := 1; b.Len() < n; id++ {
		fmt.Fprintf(&b, "%d\tattachment-%06d.bin\t\\\\x", id, id)
		for range 1000 + rng.IntN(300000) {
			v := rng.Uint32()
			b.WriteByte(digits[v&15])
			b.WriteByte(digits[v>>4&15])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

// MixedTar is about n bytes of a tar stream of a tree of mixed files, a
// quarter each: prose, log lines, random (already compressed) bytes and
// skewed binary data, 1 KB to 400 KB per file.
func MixedTar(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Grow(n + 512<<10)
	tw := tar.NewWriter(&b)
	rng := rand.New(rand.NewPCG(15, 16))
	words := strings.Fields("the a backup of restore data volume stream server client request error " +
		"table index key value config node pod cluster schedule retention window level frame")
	var f bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		f.Reset()
		size := 1000 + rng.IntN(400000)
		switch i % 4 {
		case 0:
			for f.Len() < size {
				f.WriteString(words[rng.IntN(len(words))])
				f.WriteByte(" \n"[min(rng.IntN(12), 1)^1])
			}
		case 1:
			for f.Len() < size {
				fmt.Fprintf(&f, "2026-12-03T19:%02d:%02dZ level=info msg=%q id=%d\n", rng.IntN(60), rng.IntN(60), words[rng.IntN(len(words))], rng.IntN(100000))
			}
		case 2:
			for range size {
				f.WriteByte(byte(rng.Uint32()))
			}
		case 3:
			for range size {
				f.WriteByte(byte(rng.NormFloat64()*16 + 128))
			}
		}
		hdr := &tar.Header{Name: fmt.Sprintf("dir%d/file-%d", i%7, i), Mode: 0o644, Size: int64(f.Len()), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
