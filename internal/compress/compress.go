// Package compress holds the compressions an artifact may use: zstd (the
// default), gzip, or none. All are the standard formats, readable by the
// stock zstd and gzip tools.
package compress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Algorithm is a compression algorithm.
type Algorithm string

const (
	Zstd Algorithm = "zstd"
	Gzip Algorithm = "gzip"
	None Algorithm = "none"
)

// Default levels, used when the level is 0.
const (
	DefaultZstdLevel = 3
	DefaultGzipLevel = 6
)

// ErrCorrupt means the compressed stream is damaged.
var ErrCorrupt = errors.New("compressed data is corrupt")

// Parse parses an algorithm name.
func Parse(s string) (Algorithm, error) {
	switch Algorithm(s) {
	case Zstd, Gzip, None:
		return Algorithm(s), nil
	}
	return "", fmt.Errorf("unknown compression %q (want zstd, gzip or none)", s)
}

// Ext is the file-name extension the algorithm adds.
func (a Algorithm) Ext() string {
	switch a {
	case Zstd:
		return ".zst"
	case Gzip:
		return ".gz"
	}
	return ""
}

// Level returns the effective level: the default when level is 0. It
// checks the range: zstd 1..22, gzip 1..9, none 0.
func (a Algorithm) Level(level int) (int, error) {
	switch a {
	case Zstd:
		if level == 0 {
			return DefaultZstdLevel, nil
		}
		if level < 1 || level > 22 {
			return 0, fmt.Errorf("zstd level %d out of range 1..22", level)
		}
	case Gzip:
		if level == 0 {
			return DefaultGzipLevel, nil
		}
		if level < 1 || level > 9 {
			return 0, fmt.Errorf("gzip level %d out of range 1..9", level)
		}
	case None:
		if level != 0 {
			return 0, fmt.Errorf("a compression level is given but the compression is none")
		}
	default:
		return 0, fmt.Errorf("unknown compression %q", a)
	}
	return level, nil
}

// zstdWindow bounds the encoder window so memory stays small whatever the
// level: 2 MiB, what the zstd CLI uses at its default level 3 (it goes to
// 8 MiB from level 10 up). The encoder keeps about twice the window, the
// decoder about four times.
const zstdWindow = 2 << 20

// frameSize is how much input each frame of the fast levels (1 to 5)
// holds. Those levels cut the stream into chunks of frameSize bytes and
// compress each as an independent zstd frame whose window is the whole
// chunk, two chunks at once, and write the frames in order. A zstd stream
// may be any number of frames one after the other: `zstd -d`, the library's
// decoder and every other standard decoder read them as one stream.
//
// The ratio this costs is the history lost at each frame boundary: a match
// can reach back anywhere inside its frame (2 MiB, the window of `zstd -3`)
// but not into the previous one. Measured on generated data by
// TestZstd_RatioMatchesTheCLI, and on a pgbench dump, it is within about 1%
// of `zstd -3`. An earlier design compressed jobs of 512 KiB with a 128 KiB
// window inside one frame and stored up to a quarter more than `zstd -3` on
// dumps, where rows repeat from further back than 128 KiB.
const frameSize = 2 << 20

// parallelFrames is how many frames are compressed at once.
const parallelFrames = 2

// maxParallelLevel is the highest zstd level compressed in parallel frames.
const maxParallelLevel = 5

// NewWriter returns a writer that compresses to w. Close flushes the stream
// (it does not close w).
func NewWriter(w io.Writer, a Algorithm, level int) (io.WriteCloser, error) {
	level, err := a.Level(level)
	if err != nil {
		return nil, err
	}
	switch a {
	case Zstd:
		opts := []zstd.EOption{
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			// Two: the fast levels compress two frames at once; the slow
			// ones compress a block while the next one fills, so the dump
			// is read while compressing, not in turns.
			zstd.WithEncoderConcurrency(parallelFrames),
			zstd.WithEncoderCRC(true),
			// Entropy-code the literals of blocks where no match was
			// found too. The library skips that below level 6 for speed,
			// which stores hex (a bytea column in a dump) or any text
			// without repeats almost uncompressed, at twice the size
			// `zstd -1` gives.
			zstd.WithAllLitEntropyCompression(true),
		}
		if level <= maxParallelLevel {
			opts = append(opts, zstd.WithWindowSize(frameSize),
				// The encoder's history then holds the frame and one
				// block, not twice the window.
				zstd.WithLowerEncoderMem(true),
				// An empty stream is still one valid frame.
				zstd.WithZeroFrames(true))
			enc, err := zstd.NewWriter(nil, opts...)
			if err != nil {
				return nil, err
			}
			return newFrameWriter(w, enc), nil
		}
		opts = append(opts, zstd.WithWindowSize(zstdWindow))
		return zstd.NewWriter(w, opts...)
	case Gzip:
		return gzip.NewWriterLevel(w, level)
	default:
		return nopWriteCloser{w}, nil
	}
}

// frameWriter compresses chunks of frameSize bytes as independent frames,
// up to parallelFrames at once, and writes them to w in order. It holds at
// most parallelFrames chunks, the one being filled included.
type frameWriter struct {
	w       io.Writer
	enc     *zstd.Encoder
	filling []byte
	pending []*frameJob // in order; at most parallelFrames
	free    [][]byte    // input buffers to reuse
	freeOut [][]byte    // output buffers to reuse
	wrote   bool        // a frame was dispatched
	err     error
}

type frameJob struct {
	in, out []byte
	done    chan struct{}
}

func newFrameWriter(w io.Writer, enc *zstd.Encoder) *frameWriter {
	return &frameWriter{w: w, enc: enc}
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := len(p)
	for len(p) > 0 {
		if f.filling == nil {
			if err := f.take(); err != nil {
				return n - len(p), err
			}
		}
		k := min(len(p), frameSize-len(f.filling))
		f.filling = append(f.filling, p[:k]...)
		p = p[k:]
		if len(f.filling) == frameSize {
			if err := f.dispatch(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// take makes a buffer to fill. When parallelFrames chunks are being
// compressed, it first waits for the oldest and writes its frame, then
// fills that chunk's buffer: the writer holds parallelFrames chunks at
// most, and while it fills one the other is compressed.
func (f *frameWriter) take() error {
	if len(f.pending) == parallelFrames {
		if err := f.flushOldest(); err != nil {
			return err
		}
	}
	if k := len(f.free); k > 0 {
		f.filling = f.free[k-1][:0]
		f.free = f.free[:k-1]
		return nil
	}
	f.filling = make([]byte, 0, frameSize)
	return nil
}

// dispatch starts compressing the chunk being filled.
func (f *frameWriter) dispatch() error {
	j := &frameJob{in: f.filling, done: make(chan struct{})}
	if k := len(f.freeOut); k > 0 {
		j.out = f.freeOut[k-1][:0]
		f.freeOut = f.freeOut[:k-1]
	}
	f.filling = nil
	f.wrote = true
	f.pending = append(f.pending, j)
	go func() {
		j.out = f.enc.EncodeAll(j.in, j.out)
		close(j.done)
	}()
	return nil
}

// flushOldest waits for the oldest frame and writes it.
func (f *frameWriter) flushOldest() error {
	j := f.pending[0]
	f.pending = f.pending[1:]
	<-j.done
	if f.err == nil {
		if _, err := f.w.Write(j.out); err != nil {
			f.err = err
		}
	}
	f.free = append(f.free, j.in)
	f.freeOut = append(f.freeOut, j.out)
	return f.err
}

// Close compresses what is left and writes every frame. It does not close
// the underlying writer.
func (f *frameWriter) Close() error {
	if f.err == nil && (len(f.filling) > 0 || !f.wrote) {
		if f.filling == nil {
			f.err = f.take()
		}
		if f.err == nil {
			f.err = f.dispatch()
		}
	}
	for len(f.pending) > 0 {
		_ = f.flushOldest()
	}
	f.free, f.freeOut, f.filling = nil, nil, nil
	return f.err
}

// Reset drops whatever is buffered or under way and starts a new stream to w.
func (f *frameWriter) Reset(w io.Writer) {
	for _, j := range f.pending {
		<-j.done
	}
	f.pending = nil
	f.filling = nil
	f.w, f.err, f.wrote = w, nil, false
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// maxDecoderWindow is the largest window a stream may ask for (zstd --long=27).
const maxDecoderWindow = 128 << 20

// NewReader returns a reader of the decompressed stream r. Read errors
// caused by damaged data wrap ErrCorrupt; errors of r pass through.
func NewReader(r io.Reader, a Algorithm) (io.ReadCloser, error) {
	src := &sourceReader{r: r}
	r = src
	switch a {
	case Zstd:
		d, err := zstd.NewReader(r,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxDecoderWindow),
		)
		if err != nil {
			return nil, src.classify(err)
		}
		return &zstdReader{d: d, src: src}, nil
	case Gzip:
		g, err := gzip.NewReader(r)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, src.classify(err)
		}
		g.Multistream(true)
		return &gzipReader{g: g, src: src}, nil
	case None:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q", a)
}

// sourceReader remembers the last error of the compressed stream's source,
// so that an error of a lower layer (a store, an age integrity failure) is
// reported as itself and not as corrupt compressed data.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *sourceReader) classify(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if s.err != nil {
		return s.err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: stream truncated", ErrCorrupt)
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

type zstdReader struct {
	d   *zstd.Decoder
	src *sourceReader
}

func (z *zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	return n, z.src.classify(err)
}

func (z *zstdReader) Close() error { z.d.Close(); return nil }

type gzipReader struct {
	g   *gzip.Reader
	src *sourceReader
}

func (z *gzipReader) Read(p []byte) (int, error) {
	n, err := z.g.Read(p)
	return n, z.src.classify(err)
}

func (z *gzipReader) Close() error { return z.g.Close() }

// Detect tells the algorithm from the stream's magic bytes. It returns a
// reader that still yields every byte.
func Detect(r io.Reader) (Algorithm, io.Reader, error) {
	br := bufio.NewReaderSize(r, 64)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return "", br, err
	}
	switch {
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd, br, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip, br, nil
	}
	return None, br, nil
}
