package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestBackupName(t *testing.T) {
	at := utc(2026, time.March, 2, 3, 4, 59)
	paris := mustLoad(t, "Europe/Paris")
	long := "nightly-postgres-orders-production-eu-west-1" // 44 characters
	tests := []struct {
		name      string
		schedule  string
		scheduled time.Time
		want      string
	}{
		{name: "short name", schedule: "nightly", scheduled: at, want: "nightly-20260302030459"},
		{name: "time is written in UTC", schedule: "nightly", scheduled: at.In(paris), want: "nightly-20260302030459"},
		{name: "seconds are kept", schedule: "nightly", scheduled: at.Add(-59 * time.Second), want: "nightly-20260302030400"},
		{name: "dots are kept", schedule: "db.nightly", scheduled: at, want: "db.nightly-20260302030459"},
		{
			name: "37 characters fit", schedule: strings.Repeat("a", 37), scheduled: at,
			want: strings.Repeat("a", 37) + "-20260302030459",
		},
		{
			name: "38 characters are cut and hashed", schedule: strings.Repeat("a", 38), scheduled: at,
			want: strings.Repeat("a", 28) + "-" + hash8(strings.Repeat("a", 38)) + "-20260302030459",
		},
		{
			name: "long name", schedule: long, scheduled: at,
			want: "nightly-postgres-orders-prod-" + hash8(long) + "-20260302030459",
		},
		{
			name: "a cut never ends in a dash", schedule: "nightly-postgres-orders-pro-eu-west-1a", scheduled: at,
			want: "nightly-postgres-orders-pro-" + hash8("nightly-postgres-orders-pro-eu-west-1a") + "-20260302030459",
		},
		{
			name: "a cut never ends in a dot", schedule: "nightly-postgres-orders-pro.eu-west-1a", scheduled: at,
			want: "nightly-postgres-orders-pro-" + hash8("nightly-postgres-orders-pro.eu-west-1a") + "-20260302030459",
		},
		{
			name: "a cut never ends in dashes", schedule: "nightly-postgres-orders-pr--x-eu-west-1", scheduled: at,
			want: "nightly-postgres-orders-pr-" + hash8("nightly-postgres-orders-pr--x-eu-west-1") + "-20260302030459",
		},
		{
			name: "longest object name", schedule: strings.Repeat("b", 253), scheduled: at,
			want: strings.Repeat("b", 28) + "-" + hash8(strings.Repeat("b", 253)) + "-20260302030459",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BackupName(tt.schedule, tt.scheduled)
			if got != tt.want {
				t.Errorf("BackupName(%q, %s) = %q, want %q", tt.schedule, tt.scheduled, got, tt.want)
			}
			if len(got) > MaxBackupNameLength {
				t.Errorf("%q is %d characters long, more than %d", got, len(got), MaxBackupNameLength)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("%q is not a valid name: %v", got, errs)
			}
			if again := BackupName(tt.schedule, tt.scheduled); again != got {
				t.Errorf("BackupName is not deterministic: %q then %q", got, again)
			}
		})
	}
}

func TestBackupName_NoCollisions(t *testing.T) {
	at := utc(2026, time.March, 2, 3, 4, 0)
	prefix := "team-a-postgres-orders-production-"
	seen := map[string]string{}
	for _, suffix := range []string{"eu-west-1", "eu-west-2", "us-east-1", "us-east-1a", "x", "y"} {
		name := BackupName(prefix+suffix, at)
		if other, ok := seen[name]; ok {
			t.Errorf("schedules %q and %q both name their Backup %q", other, prefix+suffix, name)
		}
		seen[name] = prefix + suffix
	}
	// Due times of one schedule at least a minute apart never share a name.
	s := mustParse(t, "@every 1m", nil)
	names := map[string]bool{}
	for due := at.Add(29 * time.Second); len(names) < 200; due = s.Next(due) {
		name := BackupName("nightly", due)
		if names[name] {
			t.Fatalf("due time %s repeats the name %q", due, name)
		}
		names[name] = true
	}
}

func hash8(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}
