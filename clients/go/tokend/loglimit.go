package tokend

import (
	"sync"
	"time"
)

// logLimiter lets one log record through per interval and counts the rest,
// so an outage of tokend does not write one record per request.
type logLimiter struct {
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval}
}

// allow reports whether a record may be written now, and how many were
// suppressed since the last one written.
func (l *logLimiter) allow() (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.suppressed++
		return 0, false
	}
	suppressed = l.suppressed
	l.last = now
	l.suppressed = 0
	return suppressed, true
}
