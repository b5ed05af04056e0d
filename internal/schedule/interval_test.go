package schedule

import (
	"testing"
	"time"
)

func TestExpectedInterval(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	berlin := "Europe/Berlin"
	for _, tc := range []struct {
		name, expr string
		tz         *string
		now        string
		want       time.Duration
	}{
		{"hourly", "0 * * * *", nil, "2026-12-02T10:30:00Z", time.Hour},
		{"daily", "@daily", nil, "2026-12-02T10:30:00Z", 24 * time.Hour},
		{"every", "@every 90m", nil, "2026-12-02T10:30:00Z", 90 * time.Minute},
		// 2026-12-04 is a Friday.
		{"weekday on Saturday", "0 2 * * 1-5", nil, "2026-12-05T12:00:00Z", 72 * time.Hour},
		{"weekday on Monday after the run", "0 2 * * 1-5", nil, "2026-12-07T02:05:00Z", 72 * time.Hour},
		{"weekday on Tuesday after the run", "0 2 * * 1-5", nil, "2026-12-08T02:05:00Z", 24 * time.Hour},
		{"monthly", "0 3 1 * *", nil, "2026-12-15T00:00:00Z", 31 * 24 * time.Hour},
		{"twice a day, uneven", "0 6,9 * * *", nil, "2026-12-02T10:00:00Z", 21 * time.Hour},
		// The night the clocks go back in Berlin (2026-10-25) lasts 25 hours.
		{"daily across a DST change", "0 12 * * *", &berlin, "2026-10-25T20:00:00Z", 25 * time.Hour},
		{"yearly", "0 0 1 1 *", nil, "2026-06-01T00:00:00Z", 365 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.expr, tc.tz)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.ExpectedInterval(utc(tc.now)); got != tc.want {
				t.Errorf("ExpectedInterval(%s) of %q = %s, want %s", tc.now, tc.expr, got, tc.want)
			}
		})
	}
}
