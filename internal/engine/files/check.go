package files

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/backstop-io/backstop/internal/engine"
)

// CheckMethod is how a dump is found complete, as the manifest records it.
const CheckMethod = "tar end-of-archive, entries and file bytes"

// maxPAXHeader bounds the PAX extended header data the check reads.
const maxPAXHeader = 1 << 20

// DumpCheck walks a tar stream block by block, as it is written, without
// keeping the files' data: every header must carry a valid checksum, the
// data of each entry must be there in full, the archive must end with
// tar's two zero blocks (followed by nothing but zero padding), and it
// counts the entries (PAX extended headers are not entries) and the bytes
// of regular files. A backup compares the counts with what the engine
// wrote; the manifest records them so that a verify compares them too.
type DumpCheck struct {
	block   [512]byte
	fill    int
	offset  int64 // of the block being filled
	skip    int64 // data bytes still to pass, in whole blocks
	pax     []byte
	inPAX   bool
	paxLeft int64 // bytes of PAX blocks still to read
	paxData int64 // bytes of PAX records still to keep
	paxSize int64 // size from a PAX header for the next entry; -1 for none
	zeroes  int   // zero blocks in a row where a header was due
	ended   bool
	entries int64
	bytes   int64
	err     error
}

func newDumpCheck() *DumpCheck { return &DumpCheck{paxSize: -1} }

// Write implements engine.DumpCheck.
func (c *DumpCheck) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.err == nil {
		if c.ended {
			if bytes.ContainsFunc(p, func(r rune) bool { return r != 0 }) {
				c.err = fmt.Errorf("data follows the end of the archive")
			}
			break
		}
		if c.skip > 0 && c.fill == 0 && !c.inPAX {
			k := min(int64(len(p)), c.skip)
			c.skip -= k
			c.offset += k
			p = p[k:]
			continue
		}
		k := copy(c.block[c.fill:], p)
		c.fill += k
		p = p[k:]
		if c.fill == len(c.block) {
			c.fill = 0
			c.onBlock()
			c.offset += 512
		}
	}
	return n, nil
}

func (c *DumpCheck) onBlock() {
	if c.inPAX {
		k := min(c.paxData, 512)
		if int64(len(c.pax))+k <= maxPAXHeader {
			c.pax = append(c.pax, c.block[:k]...)
		}
		c.paxData -= k
		c.paxLeft -= 512
		if c.paxLeft == 0 {
			c.inPAX = false
			c.paxSize = paxSize(c.pax)
		}
		return
	}
	b := c.block[:]
	if isZero(b) {
		c.zeroes++
		if c.zeroes == 2 {
			c.ended = true
		}
		return
	}
	if c.zeroes > 0 {
		c.err = fmt.Errorf("a zero block inside the archive at byte %d", c.offset-512)
		return
	}
	if !validChecksum(b) {
		c.err = fmt.Errorf("no valid tar header at byte %d", c.offset)
		return
	}
	size, ok := parseNumeric(b[124:136])
	if !ok || size < 0 {
		c.err = fmt.Errorf("invalid size in the tar header at byte %d", c.offset)
		return
	}
	switch typ := b[156]; typ {
	case 'x', 'g':
		if typ == 'x' && size > 0 {
			// The records are read block by block, for a "size" record.
			c.inPAX, c.paxLeft, c.paxData, c.pax = true, pad(size), size, c.pax[:0]
			return
		}
		c.skip = pad(size)
	case 'L', 'K':
		c.skip = pad(size)
	default:
		if c.paxSize >= 0 {
			size, c.paxSize = c.paxSize, -1
		}
		c.entries++
		switch typ {
		case '1', '2', '3', '4', '5', '6':
			size = 0 // header-only entries
		case '0', 0, '7':
			c.bytes += size
		}
		c.skip = pad(size)
	}
}

// Complete implements engine.DumpCheck.
func (c *DumpCheck) Complete() (engine.Completeness, error) {
	switch {
	case c.err != nil:
	case !c.ended:
		c.err = fmt.Errorf("the archive ends without tar's end-of-archive blocks, after %d entries", c.entries)
	}
	if c.err != nil {
		return engine.Completeness{}, engine.Errorf(engine.ReasonDumpIncomplete, "files: %v: it was cut short", c.err)
	}
	entries, n := c.entries, c.bytes
	return engine.Completeness{Method: CheckMethod, Entries: &entries, Bytes: &n}, nil
}

func pad(n int64) int64 { return (n + 511) &^ 511 }

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// validChecksum checks a header's checksum: the sum of its bytes with the
// checksum field counted as spaces (unsigned, or signed as old tars did).
func validChecksum(b []byte) bool {
	want, ok := parseNumeric(b[148:156])
	if !ok {
		return false
	}
	var unsigned, signed int64
	for i, x := range b {
		if i >= 148 && i < 156 {
			x = ' '
		}
		unsigned += int64(x)
		signed += int64(int8(x))
	}
	return want == unsigned || want == signed
}

// parseNumeric reads a tar number field: octal text, or base-256 when the
// first byte has its high bit set.
func parseNumeric(f []byte) (int64, bool) {
	if len(f) > 0 && f[0]&0x80 != 0 {
		if f[0]&0x40 != 0 {
			return 0, false // negative
		}
		var v int64
		for i, x := range f {
			if i == 0 {
				x &= 0x7f
			}
			if v>>55 != 0 {
				return 0, false
			}
			v = v<<8 | int64(x)
		}
		return v, true
	}
	s := string(bytes.Trim(f, " \x00"))
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseInt(s, 8, 64)
	return v, err == nil
}

// paxSize returns the "size" record of PAX extended header data, or -1.
func paxSize(data []byte) int64 {
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp <= 0 {
			return -1
		}
		n, err := strconv.Atoi(string(data[:sp]))
		if err != nil || n <= sp || n > len(data) {
			return -1
		}
		rec := data[sp+1 : n]
		data = data[n:]
		if k, v, ok := bytes.Cut(bytes.TrimSuffix(rec, []byte("\n")), []byte("=")); ok && string(k) == "size" {
			if s, err := strconv.ParseInt(string(v), 10, 64); err == nil && s >= 0 {
				return s
			}
			return -1
		}
	}
	return -1
}
