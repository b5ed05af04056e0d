package pipeline

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backstop-io/backstop/internal/humanize"
)

// counter counts bytes written through it.
type counter struct{ n atomic.Int64 }

func (c *counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// progress prints a line to w every interval until stop is called, and a
// last line then.
type progress struct {
	stop func()
}

func startProgress(w io.Writer, interval time.Duration, line func(elapsed time.Duration) string) *progress {
	if w == nil || interval <= 0 {
		return &progress{stop: func() {}}
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fmt.Fprintln(w, line(time.Since(start)))
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return &progress{stop: func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			fmt.Fprintln(w, line(time.Since(start)))
		})
	}}
}

// humanBytes formats n with a binary unit: 512B, 3.6KiB.
func humanBytes(n int64) string { return humanize.Bytes(n) + "B" }

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanBytes(int64(float64(n)/d.Seconds())) + "/s"
}
