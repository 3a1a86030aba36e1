package connector_test

import (
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/connector"
)

func TestParseSchedule(t *testing.T) {
	// Saturday 2024-05-04 10:07:30 UTC.
	at := time.Date(2024, 5, 4, 10, 7, 30, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	tests := []struct {
		spec string
		next []time.Time // the next runs after at, in turn
	}{
		{"every 5m", []time.Time{at.Add(5 * time.Minute), at.Add(10 * time.Minute)}},
		{"every 1h30m", []time.Time{at.Add(90 * time.Minute)}},
		{"  every 10s ", []time.Time{at.Add(10 * time.Second)}},
		{"*/15 * * * *", []time.Time{
			time.Date(2024, 5, 4, 10, 15, 0, 0, time.UTC),
			time.Date(2024, 5, 4, 10, 30, 0, 0, time.UTC),
		}},
		{"0 9 * * 1-5", []time.Time{ // weekdays: Saturday's next is Monday
			time.Date(2024, 5, 6, 9, 0, 0, 0, time.UTC),
			time.Date(2024, 5, 7, 9, 0, 0, 0, time.UTC),
		}},
		{"@hourly", []time.Time{time.Date(2024, 5, 4, 11, 0, 0, 0, time.UTC)}},
		{"@every 2m", []time.Time{time.Date(2024, 5, 4, 10, 9, 30, 0, time.UTC)}},
		{"CRON_TZ=Europe/Berlin 0 9 * * *", []time.Time{
			time.Date(2024, 5, 5, 9, 0, 0, 0, berlin), // 10:07 UTC is past 9:00 in Berlin
		}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := connector.ParseSchedule(tc.spec)
			require.NoError(t, err)
			var _ river.PeriodicSchedule = s
			require.Equal(t, strings.TrimSpace(tc.spec), s.String())
			cur := at
			for _, want := range tc.next {
				cur = s.Next(cur)
				require.True(t, want.Equal(cur), "want %s, got %s", want, cur)
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct{ spec, err string }{
		{"", "empty"},
		{"every", "neither"},
		{"every 5", "not a duration"},
		{"every five minutes", "not a duration"},
		{"every 1s", "at least 10s"},
		{"every -5m", "at least 10s"},
		{"@every 1s", "at least 10s"},
		{"61 * * * *", "neither"},
		{"* * * *", "neither"},
		{"0 0 30 2 *", "never fires"},
		{"CRON_TZ=Mars/Olympus 0 9 * * *", "neither"},
		{"hourly", "neither"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := connector.ParseSchedule(tc.spec)
			require.ErrorContains(t, err, tc.err)
		})
	}
}
