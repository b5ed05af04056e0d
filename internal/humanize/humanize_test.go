package humanize

import "testing"

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0",
		512:           "512",
		1023:          "1023",
		1024:          "1Ki",
		3726:          "3.6Ki",
		4096:          "4Ki",
		1<<20 - 1:     "1024Ki", // rounds up at one decimal, stays in Ki
		5 << 20:       "5Mi",
		1288490188:    "1.2Gi",
		3 << 40:       "3Ti",
		-2048:         "-2Ki",
		1<<62 + 1<<61: "6Ei",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
