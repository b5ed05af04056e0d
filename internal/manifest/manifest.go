// Package manifest is the commit record of an artifact: manifest.json, written
// last, next to the data object. A backup without a manifest is not a backup.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// FormatVersion is the version of the manifest format this code writes.
const FormatVersion = 1

// FileName is the manifest's object name inside an artifact directory.
const FileName = "manifest.json"

// DataPrefix is how the data object's name starts ("data.sql.zst.age").
const DataPrefix = "data"

// Manifest describes one artifact. It never holds a key or a secret.
type Manifest struct {
	// FormatVersion is the manifest format version.
	FormatVersion int `json:"formatVersion"`
	// Engine is the engine that made the dump: postgres, mysql or files.
	Engine string `json:"engine"`
	// EngineVersion describes the server and dump tool.
	EngineVersion string `json:"engineVersion,omitempty"`
	// CreatedAt is when the backup started; CompletedAt when the data was stored.
	CreatedAt   time.Time `json:"createdAt"`
	CompletedAt time.Time `json:"completedAt"`
	// Compression of the dump.
	Compression Compression `json:"compression"`
	// Encryption of the compressed dump.
	Encryption Encryption `json:"encryption"`
	// DataObject is the data object's name, relative to the manifest.
	DataObject string `json:"dataObject"`
	// StoredSize is the size in bytes of the data object.
	StoredSize int64 `json:"storedSize"`
	// PlaintextSize is the size in bytes of the dump.
	PlaintextSize int64 `json:"plaintextSize"`
	// SHA256 is the hex SHA-256 of the data object (the stored bytes).
	SHA256 string `json:"sha256"`
	// PlaintextSHA256 is the hex SHA-256 of the dump.
	PlaintextSHA256 string `json:"plaintextSha256"`
	// ContentSHA256 is the dump's content digest: the hex SHA-256 of the
	// dump without the lines a dump tool makes different in every run over
	// the same data, so that backups of equal data have equal digests.
	// Left out are, for postgres, the first line "\restrict KEY" and the
	// line "\unrestrict KEY" with the same KEY (pg_dump's random key); for
	// mysql, every line that starts with "-- Dump completed" (mariadb-dump's
	// completion line, which may carry the date). For files nothing is left
	// out: it is the SHA-256 of the archive. Absent in artifacts of earlier
	// versions.
	ContentSHA256 string `json:"contentSha256,omitempty"`
	// BackstopVersion is the version of the agent that wrote the artifact.
	BackstopVersion string `json:"backstopVersion"`
	// DumpCheck says how the dump was found complete before this manifest
	// was written; absent in artifacts of earlier versions, and for engines
	// without a check.
	DumpCheck *DumpCheck `json:"dumpCheck,omitempty"`
	// Inventory is what the backup counted in its dump as it streamed: the
	// tables and their rows, or the files. A restore drill checks the
	// restored data against it. Absent in artifacts of earlier versions.
	Inventory *Inventory `json:"inventory,omitempty"`
}

// Inventory is what a dump holds, counted from the dump itself while it
// streamed (not by querying the source again).
type Inventory struct {
	// Tables of a postgres or mysql dump, in dump order, each with the
	// rows its data section held (0 for a table without data).
	Tables []TableRows `json:"tables,omitempty"`
	// Files of a files archive.
	Files *FileTree `json:"files,omitempty"`
}

// TableRows is one table of a dump and the rows the dump held for it.
type TableRows struct {
	// Database of the table (mysql); empty for postgres, whose dump is of
	// one database.
	Database string `json:"database,omitempty"`
	// Schema of the table (postgres).
	Schema string `json:"schema,omitempty"`
	// Name of the table.
	Name string `json:"name"`
	// Rows in the dump.
	Rows int64 `json:"rows"`
}

// FileTree sums up a files archive so that an extracted copy can be
// compared with it without holding a list of every file.
type FileTree struct {
	// Entries is the number of entries (files, directories, links).
	Entries int64 `json:"entries"`
	// Bytes is the sum of the regular files' sizes.
	Bytes int64 `json:"bytes"`
	// TreeSHA256 is an order-independent digest of the entries: the hex
	// sum, modulo 2^256, of the SHA-256 of each entry's description (its
	// type, path, size, and the SHA-256 of its content or its link
	// target); the files engine's TreeDigest defines it.
	TreeSHA256 string `json:"treeSha256"`
}

// DumpCheck records the completeness check a backup ran on its dump.
type DumpCheck struct {
	// Method names what was checked: "pg_dump completion trailer",
	// "mariadb-dump completion lines", or "tar end-of-archive, entries and
	// file bytes".
	Method string `json:"method"`
	// Entries are the entries of a files archive, or the databases of a
	// mysql dump; FileBytes the bytes of a files archive's regular files: as
	// written, and as found in the dump.
	Entries   *int64 `json:"entries,omitempty"`
	FileBytes *int64 `json:"fileBytes,omitempty"`
}

// Compression describes the compression of an artifact.
type Compression struct {
	// Algorithm is zstd, gzip or none.
	Algorithm string `json:"algorithm"`
	// Level is the compression level (0 for none).
	Level int `json:"level"`
}

// Encryption describes the encryption of an artifact.
type Encryption struct {
	// Mode is x25519, scrypt or none.
	Mode string `json:"mode"`
	// RecipientFingerprints identify the recipients (x25519): the first
	// hex characters of the SHA-256 of each recipient string.
	RecipientFingerprints []string `json:"recipientFingerprints,omitempty"`
}

var (
	hexSHA256  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	dataObject = regexp.MustCompile(`^data(\.[a-z0-9]+)+$`)
)

// Validate checks that the manifest is complete and readable by this code.
func (m *Manifest) Validate() error {
	switch {
	case m.FormatVersion < 1:
		return errors.New("manifest: missing formatVersion")
	case m.FormatVersion > FormatVersion:
		return fmt.Errorf("manifest: formatVersion %d is newer than this backstop understands (%d); upgrade backstop", m.FormatVersion, FormatVersion)
	case m.Engine == "":
		return errors.New("manifest: missing engine")
	case !dataObject.MatchString(m.DataObject):
		return fmt.Errorf("manifest: invalid dataObject %q", m.DataObject)
	case !hexSHA256.MatchString(m.SHA256):
		return errors.New("manifest: invalid sha256")
	case !hexSHA256.MatchString(m.PlaintextSHA256):
		return errors.New("manifest: invalid plaintextSha256")
	case m.ContentSHA256 != "" && !hexSHA256.MatchString(m.ContentSHA256):
		return errors.New("manifest: invalid contentSha256")
	case m.StoredSize < 0 || m.PlaintextSize < 0:
		return errors.New("manifest: negative size")
	case m.DumpCheck != nil && m.DumpCheck.Method == "":
		return errors.New("manifest: dumpCheck without a method")
	}
	switch m.Compression.Algorithm {
	case "zstd", "gzip", "none":
	default:
		return fmt.Errorf("manifest: unknown compression %q", m.Compression.Algorithm)
	}
	switch m.Encryption.Mode {
	case "x25519", "scrypt", "none":
	default:
		return fmt.Errorf("manifest: unknown encryption mode %q", m.Encryption.Mode)
	}
	return nil
}

// Marshal encodes the manifest as indented JSON. It refuses a manifest
// that Read would refuse as too large.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if len(b)+1 > maxSize {
		return nil, fmt.Errorf("manifest: %d bytes, more than the %d MiB a manifest may have", len(b)+1, maxSize>>20)
	}
	return append(b, '\n'), nil
}

// maxSize bounds what Read accepts: room for an inventory of about 70,000
// tables (an indented table entry takes about 110 bytes).
const maxSize = 8 << 20

// Read decodes and validates a manifest.
func Read(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("manifest: larger than %d MiB", maxSize>>20)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %v", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
