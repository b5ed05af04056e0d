package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

const (
	// MaxBackupNameLength is the longest name BackupName returns. It leaves
	// room for an 11-character suffix (such as "-backup" on a Job) inside the
	// 63 characters of a label value, as the CronJob controller does.
	MaxBackupNameLength = 52

	// timeLayout is the scheduled time in UTC, to the second (@every
	// schedules may fire more than once a minute).
	timeLayout = "20060102150405"
	// hashLength is how many hex digits of the schedule name's hash are kept
	// when the name has to be shortened.
	hashLength = 8
	// maxPrefix is the room left for the schedule part of a Backup name.
	maxPrefix = MaxBackupNameLength - 1 - len(timeLayout)
)

// BackupName returns the name of the Backup a schedule creates for a due
// time: "<schedule>-<yyyymmddhhmmss>" with the time in UTC. The same inputs
// always give the same name, so a retried create finds the Backup it made
// before instead of making a second one.
//
// scheduleName must be a valid object name (a DNS-1123 subdomain). The result
// is one too, at most MaxBackupNameLength characters long: a schedule name
// longer than 37 characters is cut to 28 and followed by "-" and 8 hex digits
// of its SHA-256, so two long names never share their Backups.
func BackupName(scheduleName string, scheduled time.Time) string {
	return shortName(scheduleName) + "-" + scheduled.UTC().Format(timeLayout)
}

// shortName returns name if it fits the prefix room, or a cut of it followed
// by a hash of the whole name.
func shortName(name string) string {
	if len(name) <= maxPrefix {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:])[:hashLength]
	cut := strings.TrimRight(name[:maxPrefix-1-hashLength], "-.")
	return cut + "-" + hash
}
