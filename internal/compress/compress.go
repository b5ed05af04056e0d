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

// parallelWindow is the window of the fast levels (1 to 5), which compress
// in two parallel jobs, as zstd -T2 does: the jobs are four windows long,
// so a small window keeps the jobs' buffers small (about 12 MiB in all).
// On database dumps and file trees it costs no measurable ratio; the
// slower levels, chosen for ratio, keep the long window in one stream.
const parallelWindow = 128 << 10

// maxParallelLevel is the highest zstd level compressed in parallel jobs.
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
			// Two: the fast levels compress two jobs at once; the slow
			// ones compress a block while the next one fills, so the dump
			// is read while compressing, not in turns.
			zstd.WithEncoderConcurrency(2),
			zstd.WithEncoderCRC(true),
		}
		if level <= maxParallelLevel {
			opts = append(opts, zstd.WithWindowSize(parallelWindow), zstd.WithConcurrentBlocks(true))
		} else {
			opts = append(opts, zstd.WithWindowSize(zstdWindow))
		}
		return zstd.NewWriter(w, opts...)
	case Gzip:
		return gzip.NewWriterLevel(w, level)
	default:
		return nopWriteCloser{w}, nil
	}
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
