package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/store"
)

// Reasons a run fails for. The agent reports them as they are.
const (
	ReasonStoreUnreachable           = "StoreUnreachable"
	ReasonAuthenticationFailed       = "AuthenticationFailed"
	ReasonBucketNotFound             = "BucketNotFound"
	ReasonStoreError                 = "StoreError"
	ReasonManifestNotFound           = "ManifestNotFound"
	ReasonIntegrityMismatch          = "IntegrityMismatch"
	ReasonDecryptionFailed           = "DecryptionFailed"
	ReasonEngineMismatch             = "EngineMismatch"
	ReasonDumpFailed                 = "DumpFailed"
	ReasonDumpIncomplete             = "DumpIncomplete"
	ReasonTargetUnreachable          = "TargetUnreachable"
	ReasonTargetAuthenticationFailed = "TargetAuthenticationFailed"
	ReasonDatabaseNotFound           = "DatabaseNotFound"
	ReasonRestoreFailed              = "RestoreFailed"
	ReasonTargetBusy                 = "TargetBusy"
	ReasonUnsafeArchive              = "UnsafeArchive"
	ReasonInvalidInput               = "InvalidInput"
	ReasonAlreadyExists              = "AlreadyExists"
	ReasonDeadlineExceeded           = "DeadlineExceeded"
	ReasonCanceled                   = "Canceled"
)

// Error is a failed run with its reason.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// withReason attaches reason to err unless err already carries a more
// precise one (from the pipeline, an engine, a store, age or a context).
func withReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	if r := preciseReason(err); r != "" {
		return &Error{Reason: r, Err: err}
	}
	return &Error{Reason: reason, Err: err}
}

func preciseReason(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Reason
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, crypto.ErrDecryptionFailed):
		return ReasonDecryptionFailed
	case errors.Is(err, crypto.ErrIntegrity), errors.Is(err, compress.ErrCorrupt):
		return ReasonIntegrityMismatch
	}
	if r := engine.ReasonOf(err); r != "" {
		return r
	}
	switch store.ReasonOf(err) {
	case store.ReasonStoreUnreachable:
		return ReasonStoreUnreachable
	case store.ReasonAuthenticationFailed:
		return ReasonAuthenticationFailed
	case store.ReasonBucketNotFound:
		return ReasonBucketNotFound
	case store.ReasonStoreError, store.ReasonNotFound:
		return ReasonStoreError
	}
	return ""
}

// ReasonOf returns the reason for err; "" for nil.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	if r := preciseReason(err); r != "" {
		return r
	}
	return ReasonInvalidInput
}
