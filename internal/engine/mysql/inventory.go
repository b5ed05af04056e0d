package mysql

import (
	"bytes"

	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/manifest"
)

// Inventory counts the tables of a mariadb-dump (or mysqldump) dump and the
// rows of each, from the dump alone, as it streams:
//
//   - The database is the one named by the last "-- backstop-database:"
//     marker or "USE `db`;" line ("" in a stock dump of one database,
//     which names none).
//   - A table is a line "CREATE TABLE `t` (". A view is not: mariadb-dump
//     writes the stand-in structure of a view inside a "/*!50001 ... */"
//     comment, which does not start with CREATE, and so are sequences
//     (CREATE SEQUENCE).
//   - Its rows are the tuples of its "INSERT INTO `t` VALUES (...),(...);"
//     statements: every '(' at the statement's top level, outside string
//     literals ('...' or "..." with backslash escapes and doubled quotes),
//     starts one row; hex literals (--hex-blob) and NULL hold none of these
//     characters. A table without an INSERT has 0 rows.
//   - Everything between "DELIMITER ;;" and "DELIMITER ;" (triggers,
//     routines and events, whose bodies may hold INSERT statements) is
//     skipped.
//
// mariadb-dump escapes line breaks inside values, so outside those blocks
// every line starts a statement or a comment. Memory is constant: of each
// line only the first maxInventoryLine bytes are kept, and the values of
// INSERT statements pass through a small state machine.
type Inventory struct {
	tables []manifest.TableRows
	index  map[[2]string]int
	db     string

	state     int
	line      []byte // the start of the current line (state iLine)
	delimiter bool   // inside a DELIMITER ;; block

	// INSERT statements.
	name    []byte // the table name being read
	prefix  []byte // a name followed by '.': the database of the table
	word    []byte // the keyword being read before VALUES
	inQuote bool   // inside a backquoted name before VALUES
	cur     int    // the table whose rows are counted
	depth   int    // parentheses open
	quote   byte   // the quote of the string literal being read, or 0
	escape  bool   // after a backslash in a string literal
}

const (
	iLine       = iota // reading the start of a line
	iSkipLine          // the rest of a line is of no interest
	iName              // reading the quoted table name after INSERT INTO
	iNameQuote         // a backquote inside the name: closing, or doubled
	iBareName          // reading an unquoted table name
	iBeforeRows        // after the name: an optional column list and VALUES
	iRows              // the values
)

// maxInventoryLine bounds the start of a line the inventory keeps.
const maxInventoryLine = 1024

var insertInto = []byte("INSERT INTO ")

// NewInventory returns an inventory counter for mariadb-dump dumps.
func NewInventory() *Inventory { return &Inventory{index: map[[2]string]int{}} }

// Write implements engine.Inventory.
func (c *Inventory) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		switch c.state {
		case iLine:
			i := bytes.IndexByte(p, '\n')
			part := p
			if i >= 0 {
				part = p[:i]
			}
			room := maxInventoryLine - len(c.line)
			take := min(room, len(part))
			if !c.delimiter && len(c.line) < len(insertInto) {
				// Stop at the end of "INSERT INTO " to read the rest as one.
				take = min(take, len(insertInto)-len(c.line))
			}
			c.line = append(c.line, part[:take]...)
			if !c.delimiter && bytes.Equal(c.line, insertInto) {
				c.state, c.name, c.prefix, c.quote = iName, c.name[:0], c.prefix[:0], 0
				p = p[take:]
				continue
			}
			if take < len(part) {
				if len(c.line) >= maxInventoryLine {
					c.state = iSkipLine
				}
				p = p[take:]
				continue
			}
			if i < 0 {
				return n, nil
			}
			c.endLine()
			p = p[i+1:]
		case iSkipLine:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				return n, nil
			}
			c.endLine()
			p = p[i+1:]
		case iRows:
			p = c.rows(p)
		default:
			k := c.insertHead(p)
			p = p[k:]
		}
	}
	return n, nil
}

// insertHead reads the table name and what comes before the first row of
// an INSERT statement, byte by byte; it returns how many bytes it used.
func (c *Inventory) insertHead(p []byte) int {
	for i, b := range p {
		switch c.state {
		case iName:
			if len(c.name) == 0 && c.quote == 0 && b != '`' {
				c.state = iBareName
				c.name = append(c.name, b)
				continue
			}
			if c.quote == 0 {
				c.quote = '`' // the opening backquote
				continue
			}
			if b == '`' {
				c.state = iNameQuote
				continue
			}
			c.name = append(c.name, b)
		case iNameQuote:
			if b == '`' {
				c.name = append(c.name, '`')
				c.state = iName
				continue
			}
			c.quote = 0
			c.endName()
			return i // b is read again
		case iBareName:
			if isBareIdent(b) {
				c.name = append(c.name, b)
				continue
			}
			c.endName()
			return i
		case iBeforeRows:
			switch {
			case c.inQuote:
				c.inQuote = b != '`'
			case b == '`':
				c.inQuote = true
			case 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z':
				if len(c.word) < 8 {
					c.word = append(c.word, b)
				}
			case b == '.' && len(c.word) == 0 && len(c.prefix) == 0:
				// `db`.`t`: what was read is the database.
				c.prefix = append(c.prefix[:0], c.name...)
				c.name = c.name[:0]
				c.state = iName
			default:
				if b == '\n' && !bytes.EqualFold(c.word, []byte("VALUES")) {
					c.state = iLine // not an INSERT this inventory understands
					c.line = c.line[:0]
					return i + 1
				}
				if bytes.EqualFold(c.word, []byte("VALUES")) {
					db := c.db
					if len(c.prefix) > 0 {
						db = string(c.prefix)
					}
					c.cur = c.table(db, string(c.name))
					c.state, c.depth, c.quote, c.escape = iRows, 0, 0, false
					return i // b is read again, as part of the rows
				}
				c.word = c.word[:0]
			}
		}
	}
	return len(p)
}

// endName starts reading what follows the table name of an INSERT.
func (c *Inventory) endName() {
	c.state, c.word, c.inQuote = iBeforeRows, c.word[:0], false
}

// rows counts the rows of an INSERT statement's values; it returns what
// follows the statement's end, or nothing.
func (c *Inventory) rows(p []byte) []byte {
	rows := &c.tables[c.cur].Rows
	for i := 0; i < len(p); i++ {
		if c.escape {
			c.escape = false
			continue
		}
		// Skip what cannot change the state: most of the bytes.
		if c.quote != 0 {
			for i < len(p) && !inString[p[i]] {
				i++
			}
		} else {
			for i < len(p) && !inValues[p[i]] {
				i++
			}
		}
		if i == len(p) {
			break
		}
		b := p[i]
		if c.quote != 0 {
			switch {
			case b == '\\':
				c.escape = true
			case b == c.quote:
				// A doubled quote closes and reopens the same literal.
				c.quote = 0
			}
			continue
		}
		switch b {
		case '\'', '"':
			c.quote = b
		case '(':
			if c.depth == 0 {
				*rows++
			}
			c.depth++
		case ')':
			c.depth--
		case ';':
			if c.depth <= 0 {
				c.state = iSkipLine
				return p[i+1:]
			}
		}
	}
	return nil
}

// inString and inValues are the bytes that matter inside a string
// literal, and outside one in the values of an INSERT.
var inString, inValues [256]bool

func init() {
	for _, b := range []byte("'\"\\") {
		inString[b] = true
	}
	for _, b := range []byte("'\"();") {
		inValues[b] = true
	}
}

func isBareIdent(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '$' || b >= 0x80
}

// endLine handles a line that is not an INSERT statement.
func (c *Inventory) endLine() {
	line := bytes.TrimSuffix(c.line, []byte("\r"))
	c.line, c.state = c.line[:0], iLine
	if c.delimiter {
		if bytes.Equal(bytes.TrimSpace(line), []byte("DELIMITER ;")) {
			c.delimiter = false
		}
		return
	}
	switch {
	case bytes.HasPrefix(line, []byte("DELIMITER ")):
		c.delimiter = !bytes.Equal(bytes.TrimSpace(line[len("DELIMITER "):]), []byte(";"))
	case bytes.HasPrefix(line, []byte(databaseMarker)):
		c.db = string(line[len(databaseMarker):])
	case bytes.HasPrefix(line, []byte("USE ")):
		if name, _, ok := backquoted(line[len("USE "):]); ok {
			c.db = name
		}
	case bytes.HasPrefix(line, []byte("CREATE TABLE ")):
		rest := line[len("CREATE TABLE "):]
		rest = bytes.TrimPrefix(rest, []byte("IF NOT EXISTS "))
		if name, _, ok := backquoted(rest); ok {
			c.table(c.db, name)
		}
	}
}

// backquoted reads a backquoted name (a doubled backquote stands for
// one) from the start of s.
func backquoted(s []byte) (string, []byte, bool) {
	if len(s) == 0 || s[0] != '`' {
		return "", nil, false
	}
	var b []byte
	for i := 1; i < len(s); i++ {
		if s[i] != '`' {
			b = append(b, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '`' {
			b = append(b, '`')
			i++
			continue
		}
		return string(b), s[i+1:], true
	}
	return "", nil, false
}

func (c *Inventory) table(db, name string) int {
	k := [2]string{db, name}
	if i, ok := c.index[k]; ok {
		return i
	}
	c.tables = append(c.tables, manifest.TableRows{Database: db, Name: name})
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
