package pipeline

import (
	"fmt"
	"strconv"

	"github.com/backstop-io/backstop/internal/manifest"
)

// inventoryDiff describes the first difference between the inventory a
// manifest records and the one counted in the dump; "" when they are equal.
func inventoryDiff(recorded, counted *manifest.Inventory) string {
	if (recorded.Files == nil) != (counted.Files == nil) {
		return "one of them has files, the other has none"
	}
	if r, c := recorded.Files, counted.Files; r != nil && *r != *c {
		return fmt.Sprintf("the dump holds %d entries with %d bytes of files (tree digest %s), the manifest says %d entries with %d bytes (%s)",
			c.Entries, c.Bytes, c.TreeSHA256, r.Entries, r.Bytes, r.TreeSHA256)
	}
	for i := 0; i < max(len(recorded.Tables), len(counted.Tables)); i++ {
		switch {
		case i >= len(counted.Tables):
			return fmt.Sprintf("the manifest has table %s, the dump does not", tableName(recorded.Tables[i]))
		case i >= len(recorded.Tables):
			return fmt.Sprintf("the dump has table %s, the manifest does not", tableName(counted.Tables[i]))
		}
		r, c := recorded.Tables[i], counted.Tables[i]
		if tableName(r) != tableName(c) {
			return fmt.Sprintf("table %d is %s in the dump, %s in the manifest", i+1, tableName(c), tableName(r))
		}
		if r.Rows != c.Rows {
			return fmt.Sprintf("table %s has %d rows in the dump, the manifest says %d", tableName(c), c.Rows, r.Rows)
		}
	}
	return ""
}

// tableName is a table's qualified name, for messages.
func tableName(t manifest.TableRows) string {
	s := strconv.Quote(t.Name)
	if t.Schema != "" {
		s = strconv.Quote(t.Schema) + "." + s
	}
	if t.Database != "" {
		s = strconv.Quote(t.Database) + "." + s
	}
	return s
}
