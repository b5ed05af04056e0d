package engine

import (
	"bytes"
	"io"
)

// A content filter passes a dump on without the lines that differ from
// one run of the dump tool to the next over the same data (pg_dump's
// random \restrict key, a dump date), so that the SHA-256 of what it
// passes on, the content digest, is equal for equal data. Engines whose
// dumps have no such lines register none: their content digest is the
// SHA-256 of the dump.
var filters = map[string]func(w io.Writer) ContentFilter{}

// ContentFilter is an io.Writer that passes a dump to another writer,
// leaving out the per-run lines. Close passes on what it still holds.
type ContentFilter interface {
	io.WriteCloser
}

// RegisterContentFilter registers the content filter of an engine's dumps.
func RegisterContentFilter(name string, f func(w io.Writer) ContentFilter) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := filters[name]; ok {
		panic("content filter " + name + " registered twice")
	}
	filters[name] = f
}

// NewContentFilter returns the content filter of engine name writing to
// w, or nil when the engine has none.
func NewContentFilter(name string, w io.Writer) ContentFilter {
	registryMu.RLock()
	f := filters[name]
	registryMu.RUnlock()
	if f == nil {
		return nil
	}
	return f(w)
}

// LineFilter passes lines to W and leaves out those that Drop is true
// for. Only lines that start with First and are at most MaxLine bytes
// long (with their line break) are offered to Drop; every other line
// passes without being held, so the filter costs little more than
// finding the line breaks.
type LineFilter struct {
	W       io.Writer
	First   byte
	MaxLine int
	Drop    func(line []byte) bool

	midLine bool   // the last byte written was not a line break
	holding bool   // a candidate line is being held in held
	held    []byte // the candidate line so far
}

// Write implements io.Writer.
func (f *LineFilter) Write(p []byte) (int, error) {
	n := len(p)
	start, i := 0, 0
	for i < len(p) {
		if f.holding {
			j := bytes.IndexByte(p[i:], '\n')
			end := len(p)
			if j >= 0 {
				end = i + j + 1
			}
			f.held = append(f.held, p[i:end]...)
			i, start = end, end
			switch {
			case j >= 0:
				f.holding, f.midLine = false, false
				if !f.Drop(f.held) {
					if _, err := f.W.Write(f.held); err != nil {
						return 0, err
					}
				}
				f.held = f.held[:0]
			case len(f.held) > f.MaxLine:
				// Too long to be dropped: pass it on, and the rest of the line.
				f.holding, f.midLine = false, true
				if _, err := f.W.Write(f.held); err != nil {
					return 0, err
				}
				f.held = f.held[:0]
			}
			continue
		}
		if !f.midLine && p[i] == f.First {
			if i > start {
				if _, err := f.W.Write(p[start:i]); err != nil {
					return 0, err
				}
			}
			f.holding, start = true, i
			continue
		}
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			i, f.midLine = len(p), true
			break
		}
		i, f.midLine = i+j+1, false
	}
	if i > start {
		if _, err := f.W.Write(p[start:i]); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Close passes on a last line without a line break, offering it to Drop.
func (f *LineFilter) Close() error {
	if f.holding && len(f.held) > 0 {
		f.holding = false
		if !f.Drop(f.held) {
			_, err := f.W.Write(f.held)
			f.held = f.held[:0]
			return err
		}
	}
	return nil
}
