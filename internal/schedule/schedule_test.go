package schedule

import (
	"math/rand"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func ptr[T any](v T) *T { return &v }

func mustParse(t *testing.T, expr string, tz *string) Schedule {
	t.Helper()
	s, err := Parse(expr, tz)
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	return s
}

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

func TestParse(t *testing.T) {
	from := utc(2026, time.May, 14, 10, 17, 30) // a Thursday
	tests := []struct {
		name    string
		expr    string
		tz      *string
		wantErr string
		next    time.Time // Next(from), when no error
	}{
		{name: "five fields", expr: "0 3 * * *", next: utc(2026, time.May, 15, 3, 0, 0)},
		{name: "five fields with spaces around", expr: "  */15 * * * *  ", next: utc(2026, time.May, 14, 10, 30, 0)},
		{name: "day of week names", expr: "0 1 * * SUN", next: utc(2026, time.May, 17, 1, 0, 0)},
		{name: "daily", expr: "@daily", next: utc(2026, time.May, 15, 0, 0, 0)},
		{name: "midnight", expr: "@midnight", next: utc(2026, time.May, 15, 0, 0, 0)},
		{name: "hourly", expr: "@hourly", next: utc(2026, time.May, 14, 11, 0, 0)},
		{name: "weekly", expr: "@weekly", next: utc(2026, time.May, 17, 0, 0, 0)},
		{name: "monthly", expr: "@monthly", next: utc(2026, time.June, 1, 0, 0, 0)},
		{name: "yearly", expr: "@yearly", next: utc(2027, time.January, 1, 0, 0, 0)},
		{name: "every 6h", expr: "@every 6h", next: utc(2026, time.May, 14, 16, 17, 30)},
		{name: "every 1m", expr: "@every 1m", next: utc(2026, time.May, 14, 10, 18, 30)},
		{name: "leap day", expr: "0 0 29 2 *", next: utc(2028, time.February, 29, 0, 0, 0)},
		{name: "nil time zone is UTC", expr: "0 3 * * *", tz: nil, next: utc(2026, time.May, 15, 3, 0, 0)},
		{name: "empty time zone is UTC", expr: "0 3 * * *", tz: ptr(""), next: utc(2026, time.May, 15, 3, 0, 0)},
		{name: "UTC", expr: "0 3 * * *", tz: ptr("UTC"), next: utc(2026, time.May, 15, 3, 0, 0)},
		{
			name: "time zone", expr: "0 3 * * *", tz: ptr("Europe/Paris"),
			next: utc(2026, time.May, 15, 1, 0, 0), // 03:00 CEST
		},
		{
			name: "time zone with a half-hour offset", expr: "0 3 * * *", tz: ptr("Asia/Kolkata"),
			next: utc(2026, time.May, 14, 21, 30, 0), // 03:00 IST on the 15th
		},

		{name: "minute out of range", expr: "61 * * * *", wantErr: `invalid schedule "61 * * * *": end of range (61) above maximum (59): 61`},
		{name: "four fields", expr: "* * * *", wantErr: `invalid schedule "* * * *": expected exactly 5 fields, found 4: [* * * *]`},
		{name: "six fields", expr: "0 0 3 * * *", wantErr: `invalid schedule "0 0 3 * * *": expected exactly 5 fields, found 6: [0 0 3 * * *]`},
		{name: "bad day of week", expr: "0 3 * * FUNDAY", wantErr: `invalid schedule "0 3 * * FUNDAY": failed to parse int from FUNDAY: strconv.Atoi: parsing "FUNDAY": invalid syntax`},
		{name: "unknown descriptor", expr: "@fortnightly", wantErr: `invalid schedule "@fortnightly": unrecognized descriptor: @fortnightly`},
		{name: "bad every", expr: "@every soon", wantErr: `invalid schedule "@every soon": failed to parse duration @every soon: time: invalid duration "soon"`},
		{name: "every below ten seconds", expr: "@every 5s", wantErr: `invalid schedule "@every 5s": interval 5s is shorter than 10s`},
		{name: "every zero", expr: "@every 0s", wantErr: `invalid schedule "@every 0s": interval 0s is shorter than 10s`},
		{name: "every half a second", expr: "@every 500ms", wantErr: `invalid schedule "@every 500ms": interval 500ms is shorter than 10s`},
		{name: "every fraction under ten seconds", expr: "@every 9.9s", wantErr: `invalid schedule "@every 9.9s": interval 9.9s is shorter than 10s`},
		{name: "empty", expr: "", wantErr: `invalid schedule "": empty`},
		{name: "blank", expr: "   ", wantErr: `invalid schedule "   ": empty`},
		{name: "never fires", expr: "0 0 30 2 *", wantErr: `invalid schedule "0 0 30 2 *": never fires (no such date)`},
		{name: "TZ prefix", expr: "TZ=UTC 0 3 * * *", wantErr: `invalid schedule "TZ=UTC 0 3 * * *": a time zone belongs in spec.timeZone, not in the schedule`},
		{name: "CRON_TZ prefix", expr: "CRON_TZ=Europe/Paris 0 3 * * *", wantErr: `invalid schedule "CRON_TZ=Europe/Paris 0 3 * * *": a time zone belongs in spec.timeZone, not in the schedule`},
		{name: "unknown time zone", expr: "0 3 * * *", tz: ptr("Mars/Olympus"), wantErr: `invalid time zone "Mars/Olympus": unknown time zone Mars/Olympus`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.expr, tt.tz)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = nil error, want %q", tt.expr, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Fatalf("Parse(%q) error:\n got %q\nwant %q", tt.expr, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.expr, err)
			}
			if s.String() != tt.expr {
				t.Errorf("String() = %q, want %q", s.String(), tt.expr)
			}
			if got := s.Next(from); !got.Equal(tt.next) {
				t.Errorf("Next(%s) = %s, want %s", from, got.UTC(), tt.next)
			}
		})
	}
}

func TestParse_Location(t *testing.T) {
	s := mustParse(t, "@daily", ptr("Europe/Paris"))
	if got := s.Location().String(); got != "Europe/Paris" {
		t.Errorf("Location() = %s, want Europe/Paris", got)
	}
	if got := mustParse(t, "@daily", nil).Location(); got != time.UTC {
		t.Errorf("Location() = %s, want UTC", got)
	}
	// Next answers in the caller's location, at the schedule's wall clock.
	got := s.Next(utc(2026, time.January, 10, 12, 0, 0))
	if want := time.Date(2026, time.January, 11, 0, 0, 0, 0, mustLoad(t, "Europe/Paris")); !got.Equal(want) {
		t.Errorf("Next = %s, want %s", got, want)
	}
}

func TestDue(t *testing.T) {
	created := utc(2026, time.March, 2, 9, 40, 0)
	tests := []struct {
		name     string
		expr     string
		tz       *string
		now      time.Time
		last     *time.Time
		deadline *int64
		want     Due
	}{
		{
			name: "nothing due yet after creation",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 9, 59, 59),
			want: Due{Next: utc(2026, time.March, 2, 10, 0, 0)},
		},
		{
			name: "first run after creation, on time",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 10, 0, 0),
			want: Due{Missed: utc(2026, time.March, 2, 10, 0, 0), Next: utc(2026, time.March, 2, 11, 0, 0)},
		},
		{
			name: "first run after creation, a little late, inside the deadline",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 10, 0, 42), deadline: ptr[int64](60),
			want: Due{Missed: utc(2026, time.March, 2, 10, 0, 0), Next: utc(2026, time.March, 2, 11, 0, 0)},
		},
		{
			name: "no double run: the due time already recorded as last",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 10, 0, 42), last: ptr(utc(2026, time.March, 2, 10, 0, 0)),
			want: Due{Next: utc(2026, time.March, 2, 11, 0, 0)},
		},
		{
			name: "no double run: same due time much later",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 10, 59, 59), last: ptr(utc(2026, time.March, 2, 10, 0, 0)),
			want: Due{Next: utc(2026, time.March, 2, 11, 0, 0)},
		},
		{
			name: "missed run inside the deadline",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 11, 4, 0), last: ptr(utc(2026, time.March, 2, 10, 0, 0)),
			deadline: ptr[int64](300),
			want:     Due{Missed: utc(2026, time.March, 2, 11, 0, 0), Next: utc(2026, time.March, 2, 12, 0, 0)},
		},
		{
			name: "missed run exactly at the deadline still runs",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 11, 5, 0), last: ptr(utc(2026, time.March, 2, 10, 0, 0)),
			deadline: ptr[int64](300),
			want:     Due{Missed: utc(2026, time.March, 2, 11, 0, 0), Next: utc(2026, time.March, 2, 12, 0, 0)},
		},
		{
			name: "missed run outside the deadline",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 11, 5, 1), last: ptr(utc(2026, time.March, 2, 10, 0, 0)),
			deadline: ptr[int64](300),
			want:     Due{Missed: utc(2026, time.March, 2, 11, 0, 0), Next: utc(2026, time.March, 2, 12, 0, 0), TooLate: true, Skipped: 1},
		},
		{
			name: "downtime without deadline: only the most recent runs",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 15, 30, 0), last: ptr(utc(2026, time.March, 2, 10, 0, 0)),
			want: Due{Missed: utc(2026, time.March, 2, 15, 0, 0), Next: utc(2026, time.March, 2, 16, 0, 0), Skipped: 4},
		},
		{
			name: "downtime, most recent inside the deadline",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 15, 30, 0), last: ptr(utc(2026, time.March, 2, 10, 0, 0)),
			deadline: ptr[int64](3600),
			want:     Due{Missed: utc(2026, time.March, 2, 15, 0, 0), Next: utc(2026, time.March, 2, 16, 0, 0), Skipped: 4},
		},
		{
			name: "downtime, most recent outside the deadline",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 15, 30, 0), last: ptr(utc(2026, time.March, 2, 10, 0, 0)),
			deadline: ptr[int64](600),
			want:     Due{Missed: utc(2026, time.March, 2, 15, 0, 0), Next: utc(2026, time.March, 2, 16, 0, 0), TooLate: true, Skipped: 5},
		},
		{
			name: "downtime counted from creation when nothing ran",
			expr: "@daily", now: utc(2026, time.March, 12, 8, 0, 0),
			want: Due{Missed: utc(2026, time.March, 12, 0, 0, 0), Next: utc(2026, time.March, 13, 0, 0, 0), Skipped: 9},
		},
		{
			name: "a zero last time counts as none",
			expr: "@daily", now: utc(2026, time.March, 3, 8, 0, 0), last: ptr(time.Time{}),
			want: Due{Missed: utc(2026, time.March, 3, 0, 0, 0), Next: utc(2026, time.March, 4, 0, 0, 0)},
		},
		{
			name: "clock behind the last run never repeats it",
			expr: "0 * * * *", now: utc(2026, time.March, 2, 10, 59, 0), last: ptr(utc(2026, time.March, 2, 11, 0, 0)),
			want: Due{Next: utc(2026, time.March, 2, 12, 0, 0)},
		},
		{
			name: "every 6h is anchored at creation",
			expr: "@every 6h", now: utc(2026, time.March, 2, 15, 40, 0),
			want: Due{Missed: utc(2026, time.March, 2, 15, 40, 0), Next: utc(2026, time.March, 2, 21, 40, 0)},
		},
		{
			name: "every 6h is anchored at the last run",
			expr: "@every 6h", now: utc(2026, time.March, 3, 2, 0, 0), last: ptr(utc(2026, time.March, 2, 15, 40, 0)),
			want: Due{Missed: utc(2026, time.March, 2, 21, 40, 0), Next: utc(2026, time.March, 3, 3, 40, 0)},
		},
		{
			name: "every 6h after downtime, outside the deadline",
			expr: "@every 6h", now: utc(2026, time.March, 4, 0, 0, 0), last: ptr(utc(2026, time.March, 2, 15, 40, 0)),
			deadline: ptr[int64](3600),
			want:     Due{Missed: utc(2026, time.March, 3, 21, 40, 0), Next: utc(2026, time.March, 4, 3, 40, 0), TooLate: true, Skipped: 5},
		},
		{
			name: "every 6h not yet due",
			expr: "@every 6h", now: utc(2026, time.March, 2, 15, 39, 59),
			want: Due{Next: utc(2026, time.March, 2, 15, 40, 0)},
		},
		{
			name: "time zone: 03:00 Paris is 02:00 UTC in winter",
			expr: "0 3 * * *", tz: ptr("Europe/Paris"), now: utc(2026, time.March, 3, 2, 0, 30),
			last: ptr(utc(2026, time.March, 2, 2, 0, 0)),
			want: Due{Missed: utc(2026, time.March, 3, 2, 0, 0), Next: utc(2026, time.March, 4, 2, 0, 0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.tz)
			got := s.Due(tt.now, created, tt.last, tt.deadline)
			assertDue(t, got, tt.want)
		})
	}
}

func assertDue(t *testing.T, got, want Due) {
	t.Helper()
	if !got.Missed.Equal(want.Missed) || !got.Next.Equal(want.Next) || got.TooLate != want.TooLate || got.Skipped != want.Skipped {
		t.Errorf("Due:\n got {Missed: %s, Next: %s, TooLate: %t, Skipped: %d}\nwant {Missed: %s, Next: %s, TooLate: %t, Skipped: %d}",
			fmtTime(got.Missed), fmtTime(got.Next), got.TooLate, got.Skipped,
			fmtTime(want.Missed), fmtTime(want.Next), want.TooLate, want.Skipped)
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.UTC().Format(time.RFC3339)
}

// TestDue_NoDoubleRun plays the controller: it records each started run as
// the last schedule time and checks that every due time runs exactly once.
func TestDue_NoDoubleRun(t *testing.T) {
	s := mustParse(t, "*/10 * * * *", nil)
	created := utc(2026, time.March, 2, 9, 3, 0)
	var last *time.Time
	started := map[time.Time]int{}
	for now := created; now.Before(created.Add(3 * time.Hour)); now = now.Add(17 * time.Second) {
		d := s.Due(now, created, last, ptr[int64](120))
		if d.Missed.IsZero() || d.TooLate {
			continue
		}
		started[d.Missed]++
		last = ptr(d.Missed)
	}
	if len(started) != 18 {
		t.Errorf("started %d runs, want 18", len(started))
	}
	for due, n := range started {
		if n != 1 {
			t.Errorf("run for %s started %d times", due, n)
		}
	}
}

// TestDue_LongDowntime: a schedule firing every minute, down for a year,
// is answered quickly, with at most one run, and an exact skipped count.
func TestDue_LongDowntime(t *testing.T) {
	created := utc(2024, time.January, 1, 0, 0, 0)
	last := utc(2025, time.February, 3, 4, 5, 0)
	now := utc(2026, time.February, 3, 4, 5, 30) // 365 days later
	minutes := int(now.Sub(last) / time.Minute)  // due times in (last, now]

	tests := []struct {
		name     string
		expr     string
		tz       *string
		deadline *int64
		want     Due
	}{
		{
			name: "every minute, no deadline", expr: "* * * * *",
			want: Due{Missed: utc(2026, time.February, 3, 4, 5, 0), Next: utc(2026, time.February, 3, 4, 6, 0), Skipped: minutes - 1},
		},
		{
			name: "every minute, inside the deadline", expr: "* * * * *", deadline: ptr[int64](60),
			want: Due{Missed: utc(2026, time.February, 3, 4, 5, 0), Next: utc(2026, time.February, 3, 4, 6, 0), Skipped: minutes - 1},
		},
		{
			name: "every minute, deadline of a year", expr: "* * * * *", deadline: ptr[int64](31536000),
			want: Due{Missed: utc(2026, time.February, 3, 4, 5, 0), Next: utc(2026, time.February, 3, 4, 6, 0), Skipped: minutes - 1},
		},
		{
			name: "every minute, outside the deadline", expr: "* * * * *", deadline: ptr[int64](10),
			want: Due{Missed: utc(2026, time.February, 3, 4, 5, 0), Next: utc(2026, time.February, 3, 4, 6, 0), TooLate: true, Skipped: minutes},
		},
		{
			name: "@every 1m, no deadline", expr: "@every 1m",
			want: Due{Missed: utc(2026, time.February, 3, 4, 5, 0), Next: utc(2026, time.February, 3, 4, 6, 0), Skipped: minutes - 1},
		},
		{
			name: "@every 1m, outside the deadline", expr: "@every 1m", deadline: ptr[int64](10),
			want: Due{Missed: utc(2026, time.February, 3, 4, 5, 0), Next: utc(2026, time.February, 3, 4, 6, 0), TooLate: true, Skipped: minutes},
		},
		{
			name: "every minute in Paris, across both DST changes", expr: "* * * * *", tz: ptr("Europe/Paris"),
			want: Due{Missed: utc(2026, time.February, 3, 4, 5, 0), Next: utc(2026, time.February, 3, 4, 6, 0), Skipped: minutes - 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.tz)
			start := time.Now()
			got := s.Due(now, created, &last, tt.deadline)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Due took %s", elapsed)
			}
			assertDue(t, got, tt.want)
		})
	}

	// The work is bounded by days, not by due times: count the evaluations.
	s := mustParse(t, "* * * * *", ptr("Europe/Paris"))
	spec := s.cron.(*cron.SpecSchedule)
	calls := 0
	next := func(t time.Time) time.Time { calls++; return spec.Next(t) }
	if got := count(next, spec, last, now); got != minutes {
		t.Errorf("count = %d, want %d", got, minutes)
	}
	if calls > 1000 {
		t.Errorf("count evaluated the schedule %d times for a year of minutes", calls)
	}
	calls = 0
	if got := latest(next, last, now); !got.Equal(utc(2026, time.February, 3, 4, 5, 0)) {
		t.Errorf("latest = %s", got)
	}
	if calls > 100 {
		t.Errorf("latest evaluated the schedule %d times", calls)
	}
}

// TestDue_DST pins cron/v3's behaviour around daylight saving time changes
// in Europe/Paris (CET/CEST): a wall-clock time that does not exist is
// skipped, one that occurs twice runs twice.
func TestDue_DST(t *testing.T) {
	paris := mustLoad(t, "Europe/Paris")
	at := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, paris) }
	created := at(2026, time.January, 1, 0, 0)
	tests := []struct {
		name string
		expr string
		now  time.Time
		last time.Time
		want Due
	}{
		{
			// 2026-03-29 02:00 CET jumps to 03:00 CEST: there is no 02:30.
			name: "spring forward: 02:30 does not exist that day",
			expr: "30 2 * * *", last: at(2026, time.March, 28, 2, 30), now: at(2026, time.March, 29, 12, 0),
			want: Due{Next: at(2026, time.March, 30, 2, 30)},
		},
		{
			name: "spring forward: the next day runs at 02:30 CEST",
			expr: "30 2 * * *", last: at(2026, time.March, 28, 2, 30), now: at(2026, time.March, 30, 2, 31),
			want: Due{Missed: time.Date(2026, time.March, 30, 0, 30, 0, 0, time.UTC), Next: at(2026, time.March, 31, 2, 30), Skipped: 0},
		},
		{
			name: "spring forward: 03:30 comes one hour after 01:30",
			expr: "30 * * * *", last: at(2026, time.March, 29, 1, 30), now: time.Date(2026, time.March, 29, 1, 30, 0, 0, time.UTC),
			want: Due{Missed: at(2026, time.March, 29, 3, 30), Next: at(2026, time.March, 29, 4, 30)},
		},
		{
			// 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 occurs twice.
			name: "fall back: 02:30 CEST runs",
			expr: "30 2 * * *", last: at(2026, time.October, 24, 2, 30), now: time.Date(2026, time.October, 25, 0, 30, 0, 0, time.UTC),
			want: Due{Missed: time.Date(2026, time.October, 25, 0, 30, 0, 0, time.UTC), Next: time.Date(2026, time.October, 25, 1, 30, 0, 0, time.UTC)},
		},
		{
			name: "fall back: 02:30 CET runs again an hour later",
			expr: "30 2 * * *", last: time.Date(2026, time.October, 25, 0, 30, 0, 0, time.UTC), now: time.Date(2026, time.October, 25, 1, 30, 5, 0, time.UTC),
			want: Due{Missed: time.Date(2026, time.October, 25, 1, 30, 0, 0, time.UTC), Next: at(2026, time.October, 26, 2, 30)},
		},
		{
			name: "fall back: a day of downtime over the change",
			expr: "30 2 * * *", last: at(2026, time.October, 24, 2, 30), now: at(2026, time.October, 26, 1, 0),
			want: Due{Missed: time.Date(2026, time.October, 25, 1, 30, 0, 0, time.UTC), Next: at(2026, time.October, 26, 2, 30), Skipped: 1},
		},
		{
			name: "fall back: hourly runs 25 times that day",
			expr: "0 * * * *", last: at(2026, time.October, 24, 23, 0), now: at(2026, time.October, 25, 23, 0),
			want: Due{Missed: at(2026, time.October, 25, 23, 0), Next: at(2026, time.October, 26, 0, 0), Skipped: 24},
		},
		{
			name: "spring forward: hourly runs 23 times that day",
			expr: "0 * * * *", last: at(2026, time.March, 28, 23, 0), now: at(2026, time.March, 29, 23, 0),
			want: Due{Missed: at(2026, time.March, 29, 23, 0), Next: at(2026, time.March, 30, 0, 0), Skipped: 22},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, ptr("Europe/Paris"))
			assertDue(t, s.Due(tt.now, created, &tt.last, nil), tt.want)
		})
	}
}

// TestDue_MatchesBruteForce checks the bisection and the block counting
// against a walk over every due time, for random expressions, time zones
// with unusual transitions, and windows that cross them. (Australia/Lord_Howe,
// with its half-hour DST change, is left out: there cron/v3's own walk can
// skip a due time that Next from a nearby instant does find.)
func TestDue_MatchesBruteForce(t *testing.T) {
	zones := []string{"UTC", "Europe/Paris", "America/Sao_Paulo", "America/Santiago", "Asia/Kolkata", "Pacific/Apia", "America/Havana"}
	exprs := []string{
		"* * * * *", "*/7 * * * *", "0 * * * *", "30 2 * * *", "0,30 0-3 * * *", "15 */5 * * 1-5",
		"0 0 * * *", "59 23 31 * *", "0 12 1,15 * *", "*/20 1-2 * 3,10 0", "5 0 29 2 *", "0 0 * * 0",
		"*/13 22-23,0-1 * * *", "0 3 1 * 1", "@hourly", "@daily", "@weekly",
	}
	windows, span := 6, 20*24*time.Hour
	if testing.Short() {
		windows, span = 3, 10*24*time.Hour
	}
	rng := rand.New(rand.NewSource(1))
	base := utc(2025, time.January, 1, 0, 0, 0)
	checked := 0
	for _, zone := range zones {
		for _, expr := range exprs {
			s, err := Parse(expr, ptr(zone))
			if err != nil {
				continue // "L" is not cron/v3 syntax; skip what does not parse
			}
			spec := s.cron.(*cron.SpecSchedule)
			for range windows {
				after := base.Add(time.Duration(rng.Int63n(int64(2 * 365 * 24 * time.Hour)))).Truncate(time.Duration(1+rng.Intn(3)) * 30 * time.Second)
				upTo := after.Add(time.Duration(rng.Int63n(int64(span))))
				want, wantLatest := 0, time.Time{}
				for tt := spec.Next(after); !tt.IsZero() && !tt.After(upTo); tt = spec.Next(tt) {
					want++
					wantLatest = tt
				}
				if got := count(spec.Next, spec, after, upTo); got != want {
					t.Errorf("%q in %s, (%s, %s]: count = %d, want %d", expr, zone, after, upTo, got, want)
				}
				if got := latest(spec.Next, after, upTo); !got.Equal(wantLatest) {
					t.Errorf("%q in %s, (%s, %s]: latest = %s, want %s", expr, zone, after, upTo, fmtTime(got), fmtTime(wantLatest))
				}
				checked++
			}
		}
	}
	if checked < 3*len(zones)*len(exprs) {
		t.Errorf("checked only %d windows", checked)
	}
}

func BenchmarkDue_YearOfMinutes(b *testing.B) {
	s, err := Parse("* * * * *", ptr("Europe/Paris"))
	if err != nil {
		b.Fatal(err)
	}
	created := utc(2024, time.January, 1, 0, 0, 0)
	last := utc(2025, time.February, 3, 4, 5, 0)
	now := utc(2026, time.February, 3, 4, 5, 30)
	for b.Loop() {
		s.Due(now, created, &last, nil)
	}
}

// Passed counts every due time in (last, now], whether it runs, is too
// late, or is skipped.
func TestDue_Passed(t *testing.T) {
	s, err := Parse("0 * * * *", nil)
	if err != nil {
		t.Fatal(err)
	}
	last := utc(2026, time.March, 2, 9, 0, 0)
	sixty := int64(60)
	for _, tc := range []struct {
		now      time.Time
		deadline *int64
		want     int
	}{
		{now: utc(2026, time.March, 2, 9, 30, 0), want: 0},
		{now: utc(2026, time.March, 2, 10, 0, 0), want: 1},
		{now: utc(2026, time.March, 2, 12, 0, 30), want: 3},
		{now: utc(2026, time.March, 2, 12, 5, 0), deadline: &sixty, want: 3}, // 12:00 too late
	} {
		if got := s.Due(tc.now, last, &last, tc.deadline).Passed(); got != tc.want {
			t.Errorf("due times in (%s, %s]: Passed() = %d, want %d", last, tc.now, got, tc.want)
		}
	}
}
