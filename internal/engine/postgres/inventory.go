package postgres

import (
	"bytes"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
)

// Inventory counts the tables of a pg_dump plain dump and the rows of each,
// from the dump alone, as it streams:
//
//   - A table is a statement "CREATE TABLE" or "CREATE UNLOGGED TABLE"
//     (also a partition, a partitioned table and a typed table). Views,
//     materialized views, foreign tables and sequences are not tables here:
//     pg_dump writes no rows for them. A table whose data pg_dump writes
//     without creating it (an extension's configuration table) is added
//     when its data starts.
//   - Its rows are the lines of its data block: pg_dump writes
//     `COPY "schema"."table" (columns) FROM stdin;`, then one line per row
//     (COPY's text format escapes line breaks inside values), then the line
//     `\.`. A table without a data block has 0 rows.
//   - COPY TO, which pg_dump runs per table, reads only the table itself,
//     never its partitions or inheritance children. So a partitioned table
//     is recorded with 0 rows and each partition with its own, and every
//     count equals `SELECT count(*) FROM ONLY "schema"."table"` on the
//     restored database; a count without ONLY of a parent also sees its
//     children's rows.
//
// Statements are found only at the start of a line outside string
// literals, quoted identifiers, dollar quotes and comments, so a function
// body or a comment that holds such a line is not mistaken for one. Memory
// is constant: the data lines are only searched for line breaks, and of
// other lines only the first maxInventoryLine bytes and the last few are
// kept.
type Inventory struct {
	tables []manifest.TableRows
	index  map[[2]string]int

	// Data block.
	inData bool
	cur    int // the table whose rows are streaming
	dstate int // dStart, dMid, dBackslash, dDot

	// Header (everything outside data blocks).
	capture bool   // the current line started outside literals and comments
	line    []byte // its first bytes
	tail    []byte // its last bytes
	lex     sqlLexer
}

// maxInventoryLine bounds the start of a line the inventory keeps: enough
// for two quoted identifiers of 63 bytes with every character a doubled
// quote, and the keywords before them.
const maxInventoryLine = 512

const (
	dStart     = iota // at the start of a data line
	dMid              // inside a data line
	dBackslash        // after a line-starting backslash
	dDot              // after a line-starting `\.`
)

// NewInventory returns an inventory counter for pg_dump plain dumps.
func NewInventory() *Inventory {
	return &Inventory{index: map[[2]string]int{}, capture: true}
}

// Write implements engine.Inventory.
func (c *Inventory) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.inData {
			switch c.dstate {
			case dMid:
				i := bytes.IndexByte(p, '\n')
				if i < 0 {
					return n, nil
				}
				c.tables[c.cur].Rows++
				p = p[i+1:]
				c.dstate = dStart
				continue
			case dStart:
				if p[0] != '\\' {
					c.dstate = dMid
					continue
				}
				c.dstate = dBackslash
			case dBackslash:
				if p[0] != '.' {
					c.dstate = dMid
					continue
				}
				c.dstate = dDot
			case dDot:
				if p[0] != '\n' {
					c.dstate = dMid
					continue
				}
				// `\.`: the end of the data block.
				c.inData = false
				c.startLine()
			}
			p = p[1:]
			continue
		}
		// Header: line by line, through the lexer.
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i+1]
		}
		if c.capture {
			if room := maxInventoryLine - len(c.line); room > 0 {
				c.line = append(c.line, part[:min(room, len(part))]...)
			}
			c.tail = append(c.tail, part...)
			if len(c.tail) > 64 {
				c.tail = append(c.tail[:0], c.tail[len(c.tail)-32:]...)
			}
		}
		c.lex.scan(part)
		p = p[len(part):]
		if i >= 0 {
			c.endLine()
		}
	}
	return n, nil
}

// startLine prepares for a header line.
func (c *Inventory) startLine() {
	c.capture = c.lex.state == lexNormal
	c.line, c.tail = c.line[:0], c.tail[:0]
}

// endLine handles a complete header line (with its line break).
func (c *Inventory) endLine() {
	if c.capture {
		line := c.line
		switch {
		case bytes.HasPrefix(line, []byte("COPY ")):
			tail := bytes.TrimSuffix(bytes.TrimSuffix(c.tail, []byte("\n")), []byte("\r"))
			if bytes.HasSuffix(tail, []byte(" FROM stdin;")) {
				if s, t, ok := qualifiedName(line[len("COPY "):]); ok {
					c.cur = c.table(s, t)
					c.inData, c.dstate = true, dStart
				}
			}
		case bytes.HasPrefix(line, []byte("CREATE TABLE ")):
			if s, t, ok := qualifiedName(line[len("CREATE TABLE "):]); ok {
				c.table(s, t)
			}
		case bytes.HasPrefix(line, []byte("CREATE UNLOGGED TABLE ")):
			if s, t, ok := qualifiedName(line[len("CREATE UNLOGGED TABLE "):]); ok {
				c.table(s, t)
			}
		}
	}
	c.startLine()
}

func (c *Inventory) table(schema, name string) int {
	k := [2]string{schema, name}
	if i, ok := c.index[k]; ok {
		return i
	}
	c.tables = append(c.tables, manifest.TableRows{Schema: schema, Name: name})
	c.index[k] = len(c.tables) - 1
	return len(c.tables) - 1
}

// Result implements engine.Inventory: the tables in dump order.
func (c *Inventory) Result() (*manifest.Inventory, error) {
	return &manifest.Inventory{Tables: append([]manifest.TableRows{}, c.tables...)}, nil
}

// Close implements engine.Inventory.
func (c *Inventory) Close() error { return nil }

var _ engine.Inventory = (*Inventory)(nil)

// qualifiedName reads `"schema"."name"` (or unquoted parts, as pg_dump
// writes them without --quote-all-identifiers) from the start of s.
func qualifiedName(s []byte) (schema, name string, ok bool) {
	first, rest, ok := identifier(s)
	if !ok {
		return "", "", false
	}
	if len(rest) == 0 || rest[0] != '.' {
		return "", first, true
	}
	second, _, ok := identifier(rest[1:])
	if !ok {
		return "", "", false
	}
	return first, second, true
}

// identifier reads one identifier: double-quoted with "" for a quote, or
// unquoted up to a character that cannot be in one.
func identifier(s []byte) (string, []byte, bool) {
	if len(s) == 0 {
		return "", nil, false
	}
	if s[0] == '"' {
		var b []byte
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b = append(b, s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b = append(b, '"')
				i++
				continue
			}
			return string(b), s[i+1:], true
		}
		return "", nil, false // cut off: longer than the line kept
	}
	i := 0
	for i < len(s) && isIdentByte(s[i]) {
		i++
	}
	if i == 0 || i == len(s) {
		return "", nil, false
	}
	return string(s[:i]), s[i:], true
}

func isIdentByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '$' || b >= 0x80
}

// sqlLexer follows just enough of PostgreSQL's lexical structure to tell
// whether a position is inside a string literal, a quoted identifier, a
// dollar-quoted string or a comment.
type sqlLexer struct {
	state   int
	prev    byte
	word    int  // identifier bytes right before this one
	escapes bool // the string literal is an E'' string
	closed  bool // b closed a string literal: a quote right after reopens it
	tag     []byte
	match   int // bytes of "tag$" matched after a '$' in a dollar quote; -1 for none
	depth   int // block comment nesting
}

const (
	lexNormal = iota
	lexSingle
	lexSingleEscape // after a backslash in an E'' string
	lexDouble
	lexDollarTag // after a '$' that may open a dollar quote
	lexDollar
	lexLineComment
	lexBlockComment
)

func (l *sqlLexer) scan(p []byte) {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch l.state {
		case lexNormal:
			switch {
			case b == '\'':
				l.state = lexSingle
				if !l.closed { // '' inside a literal keeps its kind
					l.escapes = l.word == 1 && (l.prev == 'E' || l.prev == 'e')
				}
			case b == '"':
				l.state = lexDouble
			case b == '$' && l.word == 0:
				l.state, l.tag = lexDollarTag, l.tag[:0]
			case b == '-' && l.prev == '-':
				l.state = lexLineComment
			case b == '*' && l.prev == '/':
				l.state, l.depth = lexBlockComment, 1
				b = 0
			}
		case lexSingle:
			switch b {
			case '\\':
				if l.escapes {
					l.state = lexSingleEscape
				}
			case '\'':
				l.state = lexNormal
				l.closed, l.prev, l.word = true, 0, 0
				continue
			}
		case lexSingleEscape:
			l.state = lexSingle
		case lexDouble:
			if b == '"' {
				l.state = lexNormal
			}
		case lexDollarTag:
			switch {
			case b == '$':
				l.state, l.match = lexDollar, -1
				b = 0
			case isIdentByte(b) && !(len(l.tag) == 0 && '0' <= b && b <= '9') && len(l.tag) < 64:
				l.tag = append(l.tag, b)
			default:
				// Not a dollar quote ($1, a lone $): read b again as normal.
				l.state = lexNormal
				l.word = 1
				i--
				continue
			}
		case lexDollar:
			switch {
			case b == '$' && l.match == len(l.tag):
				l.state = lexNormal
				b = 0
			case b == '$':
				l.match = 0
			case l.match >= 0 && l.match < len(l.tag) && l.tag[l.match] == b:
				l.match++
			default:
				l.match = -1
			}
		case lexLineComment:
			if b == '\n' {
				l.state = lexNormal
			}
		case lexBlockComment:
			switch {
			case b == '/' && l.prev == '*':
				l.depth--
				if l.depth == 0 {
					l.state = lexNormal
				}
				b = 0
			case b == '*' && l.prev == '/':
				l.depth++
				b = 0
			}
		}
		l.closed = false
		if l.state == lexNormal && isIdentByte(b) && b != 0 {
			l.word++
		} else if l.state == lexNormal || b == 0 {
			l.word = 0
		}
		l.prev = b
	}
}
