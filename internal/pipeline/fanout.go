package pipeline

import (
	"io"
	"sync"
	"sync/atomic"
)

// fanOut passes every byte it is given to groups of writers, each group on
// its own goroutine. The checks a verify runs over the plaintext (SHA-256,
// the content digest's filter and SHA-256, the inventory) each want a core;
// one after another they left the second core idle while the first did all
// the work. The bytes are copied into a few fixed chunks, so memory does
// not grow with the data: a write waits while every chunk is in use.
type fanOut struct {
	groups []chan *fanChunk
	free   chan *fanChunk
	err    firstError
	wg     sync.WaitGroup
}

type fanChunk struct {
	b    []byte
	refs atomic.Int32 // groups still to write it
}

const (
	fanChunkSize = 256 << 10
	fanChunks    = 4
)

// newFanOut starts one goroutine per group. Close must be called.
func newFanOut(groups ...[]io.Writer) *fanOut {
	f := &fanOut{free: make(chan *fanChunk, fanChunks)}
	for range fanChunks {
		f.free <- &fanChunk{b: make([]byte, 0, fanChunkSize)}
	}
	for _, g := range groups {
		ch := make(chan *fanChunk, fanChunks)
		f.groups = append(f.groups, ch)
		w := io.MultiWriter(g...)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			failed := false
			for c := range ch {
				if !failed {
					if _, err := w.Write(c.b); err != nil {
						f.err.set(err)
						failed = true
					}
				}
				f.release(c)
			}
		}()
	}
	return f
}

func (f *fanOut) release(c *fanChunk) {
	if c.refs.Add(-1) == 0 {
		f.free <- c
	}
}

func (f *fanOut) send(c *fanChunk) {
	c.refs.Store(int32(len(f.groups)))
	for _, g := range f.groups {
		g <- c
	}
}

// Write copies p into chunks and hands them to every group. It returns the
// first error a group met, once that group has met it.
func (f *fanOut) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if err := f.err.get(); err != nil {
			return n - len(p), err
		}
		c := <-f.free
		k := min(len(p), cap(c.b))
		c.b = append(c.b[:0], p[:k]...)
		f.send(c)
		p = p[k:]
	}
	return n, nil
}

// ReadFrom reads r straight into the chunks, whole chunks at a time, which
// spares io.Copy's own buffer and copy.
func (f *fanOut) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if err := f.err.get(); err != nil {
			return total, err
		}
		c := <-f.free
		n, err := io.ReadFull(r, c.b[:cap(c.b)])
		if n > 0 {
			c.b = c.b[:n]
			total += int64(n)
			f.send(c)
		} else {
			f.free <- c
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return total, nil
		default:
			return total, err
		}
	}
}

// Close waits until every group has written everything, and returns the
// first error a group met.
func (f *fanOut) Close() error {
	for _, g := range f.groups {
		close(g)
	}
	f.wg.Wait()
	return f.err.get()
}
