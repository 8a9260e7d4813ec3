package rotate

import "time"

// clock is the time the manager schedules and validates by. The daemon
// uses the system's; tests use one they move by hand (as autocert's
// nowFunc), so a backoff of an hour is checked without waiting an hour.
type clock interface {
	Now() time.Time
	// After delivers once d has passed; stop releases it early.
	After(d time.Duration) (c <-chan time.Time, stop func())
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}
