package agent

import (
	"encoding/json"
	"github.com/backstop-io/backstop/internal/drill"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// Phases of a Result.
const (
	PhaseSucceeded = "Succeeded"
	PhaseFailed    = "Failed"
)

// Reasons of a failed Result. Each names what a user should look at.
const (
	// ReasonStoreUnreachable: the store's endpoint cannot be reached (DNS,
	// refused connection, TLS, timeout).
	ReasonStoreUnreachable = "StoreUnreachable"
	// ReasonAuthenticationFailed: the store refused the credentials, or
	// denied access.
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonBucketNotFound: the bucket (or filesystem root) does not exist.
	ReasonBucketNotFound = "BucketNotFound"
	// ReasonStoreError: any other failure of the store.
	ReasonStoreError = "StoreError"
	// ReasonManifestNotFound: there is no manifest at the artifact path: the
	// backup does not exist or did not complete.
	ReasonManifestNotFound = "ManifestNotFound"
	// ReasonIntegrityMismatch: the artifact is damaged or incomplete (size,
	// SHA-256, age authentication or compression checksum).
	ReasonIntegrityMismatch = "IntegrityMismatch"
	// ReasonDecryptionFailed: the identity or passphrase does not open the
	// artifact.
	ReasonDecryptionFailed = "DecryptionFailed"
	// ReasonEngineMismatch: the artifact was made by another engine.
	ReasonEngineMismatch = "EngineMismatch"
	// ReasonDumpFailed: the engine's dump did not complete.
	ReasonDumpFailed = "DumpFailed"
	// ReasonDumpIncomplete: the dump tool reported success but its output
	// was cut short (no completion trailer, no end of archive, fewer
	// entries than written); a backup stores nothing, a verify or restore
	// refuses the artifact.
	ReasonDumpIncomplete = "DumpIncomplete"
	// ReasonTargetUnreachable: the data store to back up or restore cannot be
	// reached.
	ReasonTargetUnreachable = "TargetUnreachable"
	// ReasonTargetAuthenticationFailed: the data store refused the credentials.
	ReasonTargetAuthenticationFailed = "TargetAuthenticationFailed"
	// ReasonDatabaseNotFound: the database server answered, but a database
	// to back up (or, for PostgreSQL, to restore into) does not exist.
	ReasonDatabaseNotFound = "DatabaseNotFound"
	// ReasonRestoreFailed: the restore did not complete; the target is unchanged.
	ReasonRestoreFailed = "RestoreFailed"
	// ReasonTargetBusy: other sessions held the target's tables longer than
	// the restore's lock timeout; the target is unchanged.
	ReasonTargetBusy = "TargetBusy"
	// ReasonUnsafeArchive: a files archive holds an entry escaping its root.
	ReasonUnsafeArchive = "UnsafeArchive"
	// ReasonInvalidInput: flags, environment or mounted files are wrong or
	// missing.
	ReasonInvalidInput = "InvalidInput"
	// ReasonAlreadyExists: a completed backup exists at the artifact path;
	// the agent never overwrites one.
	ReasonAlreadyExists = "AlreadyExists"
	// ReasonDeadlineExceeded: the run did not finish within --timeout.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonCanceled: the run was interrupted (SIGTERM, SIGINT).
	ReasonCanceled = "Canceled"
	// ReasonCheckFailed: a drill restored the backup, but a check of what
	// arrived failed (a table or file missing or different, a user check
	// with the wrong result or a query that failed); the report names it.
	ReasonCheckFailed = drill.ReasonCheckFailed
	// ReasonScratchTooSmall: a drill's scratch space cannot hold the
	// restored data; the message names the size needed.
	ReasonScratchTooSmall = drill.ReasonScratchTooSmall
	// ReasonDrillServerFailed: a drill's throwaway server did not start, or
	// no server binary of a major at least the backup's is in the image;
	// the message carries the server's log tail.
	ReasonDrillServerFailed = drill.ReasonDrillServerFailed
)

// Result is what one agent run reports: a single-line JSON object written to
// the termination log and to stdout. It stays under 4 KiB, the kubelet's
// limit for a termination message, and never holds a secret.
type Result struct {
	// Phase is Succeeded or Failed.
	Phase string `json:"phase"`
	// Reason is one of the Reason* constants when Phase is Failed.
	Reason string `json:"reason,omitempty"`
	// Message says what happened, for humans.
	Message string `json:"message,omitempty"`
	// Warning, on a restore that Succeeded, says what did not go as planned
	// once the data was in place (an old tree left on the volume).
	Warning string `json:"warning,omitempty"`
	// Engine is postgres, mysql or files.
	Engine string `json:"engine,omitempty"`
	// ArtifactPath is <namespace>/<target>/<backup-name>.
	ArtifactPath string `json:"artifactPath,omitempty"`
	// DataObject is the data object's name, e.g. data.sql.zst.age.
	DataObject string `json:"dataObject,omitempty"`
	// StoredBytes is the size of the data object.
	StoredBytes int64 `json:"storedBytes,omitempty"`
	// PlaintextBytes is the size of the dump.
	PlaintextBytes int64 `json:"plaintextBytes,omitempty"`
	// SHA256 is the hex SHA-256 of the data object.
	SHA256 string `json:"sha256,omitempty"`
	// PlaintextSHA256 is the hex SHA-256 of the dump.
	PlaintextSHA256 string `json:"plaintextSha256,omitempty"`
	// ContentSHA256 is the dump's content digest (manifest.Manifest's
	// ContentSHA256): equal for backups of equal data.
	ContentSHA256 string `json:"contentSha256,omitempty"`
	// StartTime and CompletionTime are RFC 3339 timestamps.
	StartTime      string `json:"startTime,omitempty"`
	CompletionTime string `json:"completionTime,omitempty"`
	// Drill is what a drill found; only drills set it.
	Drill *DrillReport `json:"drill,omitempty"`
}

// DrillReport is what a drill found (see package drill).
type DrillReport = drill.Report

// CheckResult is one check of a drill.
type CheckResult = drill.CheckResult

// MaxResultSize bounds the encoded Result (the kubelet keeps 4096 bytes).
const MaxResultSize = 4000

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// Encode returns the result as one line of JSON, shortened to fit MaxResultSize.
func (r Result) Encode() []byte {
	r.Message = strings.Join(strings.Fields(r.Message), " ")
	r.Message = truncate(r.Message, 2048)
	r.Warning = truncate(strings.Join(strings.Fields(r.Warning), " "), 1024)
	r.ArtifactPath = truncate(r.ArtifactPath, 512)
	for {
		b, err := json.Marshal(r)
		if err != nil {
			return []byte(`{"phase":"Failed","reason":"InvalidInput","message":"cannot encode the result"}`)
		}
		if len(b) <= MaxResultSize || r.Message == "" {
			return b
		}
		r.Message = truncate(r.Message, len(r.Message)/2)
	}
}

// ParseResult decodes a termination message. The controller uses it.
func ParseResult(b []byte) (Result, error) {
	var r Result
	err := json.Unmarshal(b, &r)
	return r, err
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// writeTerminationLog writes the result to path when the path's directory
// exists; errors are ignored (it is best effort; stdout has the result too).
func writeTerminationLog(path string, b []byte) {
	if path == "" {
		return
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return
	}
	_ = os.WriteFile(path, b, 0o644)
}
