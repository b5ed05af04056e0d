package engine

import (
	"errors"
	"fmt"
)

// Reasons an engine attaches to its errors so the agent can report a failure
// a user can act on. They are the same strings as the agent's result reasons.
const (
	// ReasonTargetUnreachable: the data store cannot be reached (DNS, refused
	// connection, timeout, TLS handshake).
	ReasonTargetUnreachable = "TargetUnreachable"
	// ReasonTargetAuthenticationFailed: the data store refused the credentials.
	ReasonTargetAuthenticationFailed = "TargetAuthenticationFailed"
	// ReasonDatabaseNotFound: the server answered, but a database to back up
	// (or to restore into, for PostgreSQL) does not exist on it.
	ReasonDatabaseNotFound = "DatabaseNotFound"
	// ReasonDumpFailed: the dump did not complete.
	ReasonDumpFailed = "DumpFailed"
	// ReasonDumpIncomplete: the dump tool reported success but its output
	// is cut short (no completion trailer, no end of archive, fewer entries
	// than were written).
	ReasonDumpIncomplete = "DumpIncomplete"
	// ReasonRestoreFailed: the restore did not complete; the target is unchanged.
	ReasonRestoreFailed = "RestoreFailed"
	// ReasonTargetBusy: other sessions held the target's tables longer than
	// the restore's lock timeout; the target is unchanged.
	ReasonTargetBusy = "TargetBusy"
	// ReasonUnsafeArchive: an archive entry would escape the restore root
	// (absolute path, "..", or a link pointing outside).
	ReasonUnsafeArchive = "UnsafeArchive"
)

// Error is an engine error with a reason. Engines return it (or wrap it) so
// that errors.As finds the reason; the message must never hold a secret.
type Error struct {
	// Reason is one of the Reason* constants.
	Reason string
	// Err is the underlying error.
	Err error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the reason and a formatted message; %w works.
func Errorf(reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// WithReason wraps err with a reason. It returns nil for a nil err, and keeps
// an existing reason when err already carries one.
func WithReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Reason: reason, Err: err}
}

// ReasonOf returns the reason carried by err, or "" when it carries none.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Warning is what an engine's Restore returns when the new data is in place
// but something after the swap did not go as planned (an old tree left on
// the volume): the restore succeeded, and the warning goes with its result.
// It is never returned once the target may be left changed but not
// restored.
type Warning struct{ Err error }

func (w *Warning) Error() string { return w.Err.Error() }

func (w *Warning) Unwrap() error { return w.Err }

// Warnf returns a *Warning with a formatted message; %w works.
func Warnf(format string, args ...any) error {
	return &Warning{Err: fmt.Errorf(format, args...)}
}

// AsWarning returns the *Warning err is, or nil.
func AsWarning(err error) *Warning {
	var w *Warning
	if errors.As(err, &w) {
		return w
	}
	return nil
}
