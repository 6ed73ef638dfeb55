package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// results collects the timings of the completed rounds.
type results struct {
	rounds           int
	hook             []time.Duration
	revoke           []time.Duration
	fromStart        [][]time.Duration // per polled replica
	fromReturn       [][]time.Duration // per polled replica
	fromCached       [][]time.Duration // per polled replica
	slowest          []time.Duration   // slowest polled replica of each round, from the start
	firstPoll        []int             // per polled replica: rounds where the first poll returned REVOKED
	endedUnavailable []int             // per polled replica: rounds whose VALID responses ended with UNAVAILABLE
	unavailableCalls []int             // per polled replica: Validate calls that failed with UNAVAILABLE
	afterHook        []time.Duration
	revokedAfterHook [][]time.Duration // per polled replica, from the start
}

func newResults(polledReplicas int) *results {
	return &results{
		fromStart:        make([][]time.Duration, polledReplicas),
		fromReturn:       make([][]time.Duration, polledReplicas),
		fromCached:       make([][]time.Duration, polledReplicas),
		firstPoll:        make([]int, polledReplicas),
		endedUnavailable: make([]int, polledReplicas),
		unavailableCalls: make([]int, polledReplicas),
		revokedAfterHook: make([][]time.Duration, polledReplicas),
	}
}

func (r *results) add(round roundResult) {
	r.rounds++
	r.hook = append(r.hook, round.hook)
	r.revoke = append(r.revoke, round.revoke)
	r.slowest = append(r.slowest, slices.Max(round.fromStart))
	r.afterHook = append(r.afterHook, round.afterHook)
	for i := range round.fromStart {
		r.fromStart[i] = append(r.fromStart[i], round.fromStart[i])
		r.fromReturn[i] = append(r.fromReturn[i], round.fromReturn[i])
		if round.firstPoll[i] {
			r.firstPoll[i]++
		}
	}
	for i, value := range round.fromCached {
		r.fromCached[i] = append(r.fromCached[i], value)
	}
	for i, ended := range round.endedUnavailable {
		if ended {
			r.endedUnavailable[i]++
		}
	}
	for i, calls := range round.unavailableCalls {
		r.unavailableCalls[i] += calls
	}
	for i, value := range round.revokedAfterHook {
		r.revokedAfterHook[i] = append(r.revokedAfterHook[i], value)
	}
}

// summary is the printed and the JSON form of a run. Times are in
// milliseconds.
type summary struct {
	Phase           string        `json:"phase"`
	Replicas        []string      `json:"replicas"`
	RoundsRequested int           `json:"rounds_requested"`
	Rounds          int           `json:"rounds"`
	DeadlineMS      float64       `json:"deadline_ms"`
	Measurements    []measurement `json:"measurements"`
	// FirstPollRevoked counts, per polled replica from the second one on,
	// the rounds whose first Validate after the Revoke returned REVOKED.
	FirstPollRevoked []int `json:"first_poll_revoked"`
	// CountUnavailable is true when the polled replicas could end their
	// VALID responses with the error UNAVAILABLE. The next two fields are
	// only set then.
	CountUnavailable bool `json:"count_unavailable"`
	// EndedUnavailable counts, per polled replica, the rounds whose first
	// response other than VALID was UNAVAILABLE rather than REVOKED.
	EndedUnavailable []int `json:"ended_unavailable,omitempty"`
	// UnavailableCalls counts, per polled replica, the Validate calls that
	// failed with UNAVAILABLE before the -after-revoke command.
	UnavailableCalls []int         `json:"unavailable_calls,omitempty"`
	Targets          []targetCheck `json:"targets"`
	Error            string        `json:"error,omitempty"`
}

// measurement holds the percentiles of one series. They are nil when no
// round completed, so that the JSON shows null rather than 0 ms.
type measurement struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	P50MS *float64 `json:"p50_ms"`
	P90MS *float64 `json:"p90_ms"`
	P99MS *float64 `json:"p99_ms"`
	MaxMS *float64 `json:"max_ms"`
}

type targetCheck struct {
	Name       string  `json:"name"`
	LimitMS    float64 `json:"limit_ms"`
	MeasuredMS float64 `json:"measured_ms"`
	Met        bool    `json:"met"`
}

func (r *results) summarize(cfg config, failure error) summary {
	s := summary{
		Phase:            cfg.phase,
		Replicas:         cfg.replicas,
		RoundsRequested:  cfg.rounds,
		Rounds:           r.rounds,
		DeadlineMS:       milliseconds(cfg.deadline),
		FirstPollRevoked: r.firstPoll,
		CountUnavailable: cfg.countUnavailable,
		Targets:          []targetCheck{},
	}
	if failure != nil {
		s.Error = failure.Error()
	}

	// Without -count-unavailable the first response other than VALID is
	// always REVOKED, and the rows keep that shorter name.
	ending := "REVOKED"
	if cfg.countUnavailable {
		ending = "not VALID"
		s.EndedUnavailable = r.endedUnavailable
		s.UnavailableCalls = r.unavailableCalls
	}

	if cfg.beforeRevoke != "" {
		s.Measurements = append(s.Measurements, measure("-before-revoke command", r.hook))
	}
	s.Measurements = append(s.Measurements, measure("Revoke call on replica 1", r.revoke))
	for i, values := range r.fromStart {
		s.Measurements = append(s.Measurements, measure(fmt.Sprintf("replica %d %s, from t0", i+2, ending), values))
	}
	slowest := measure(fmt.Sprintf("slowest replica %s, from t0", ending), r.slowest)
	if len(r.fromStart) > 1 {
		s.Measurements = append(s.Measurements, slowest)
	}
	for i, values := range r.fromReturn {
		s.Measurements = append(s.Measurements, measure(fmt.Sprintf("replica %d %s, from Revoke return", i+2, ending), values))
	}
	// Only a replica that misses the notice keeps its entry for the whole
	// cache TTL, and this series shows how close to the TTL it came.
	if cfg.countUnavailable {
		for i, values := range r.fromCached {
			s.Measurements = append(s.Measurements, measure(fmt.Sprintf("replica %d %s, from caching", i+2, ending), values))
		}
	}
	if cfg.afterRevoke != "" {
		s.Measurements = append(s.Measurements, measure("-after-revoke command", r.afterHook))
		for i, values := range r.revokedAfterHook {
			s.Measurements = append(s.Measurements, measure(fmt.Sprintf("replica %d REVOKED after the command, from t0", i+2), values))
		}
	}

	if r.rounds > 0 && cfg.targetP99 > 0 {
		s.Targets = append(s.Targets, checkTarget(fmt.Sprintf("p99 of the slowest replica %s", ending), cfg.targetP99, *slowest.P99MS))
	}
	if r.rounds > 0 && cfg.targetMax > 0 {
		s.Targets = append(s.Targets, checkTarget(fmt.Sprintf("max of the slowest replica %s", ending), cfg.targetMax, *slowest.MaxMS))
	}
	return s
}

func checkTarget(name string, limit time.Duration, measuredMS float64) targetCheck {
	limitMS := milliseconds(limit)
	return targetCheck{Name: name, LimitMS: limitMS, MeasuredMS: measuredMS, Met: measuredMS <= limitMS}
}

// measure computes nearest-rank percentiles: the p-th percentile of n sorted
// values is the value at rank ceil(p/100 * n).
func measure(name string, values []time.Duration) measurement {
	m := measurement{Name: name, Count: len(values)}
	if len(values) == 0 {
		return m
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	// Integer arithmetic keeps ceil(p/100 * n) exact, where 0.99 * n in
	// floating point can land just above a whole number.
	rank := func(p int) *float64 {
		index := max((p*len(sorted)+99)/100-1, 0)
		value := milliseconds(sorted[index])
		return &value
	}
	m.P50MS, m.P90MS, m.P99MS, m.MaxMS = rank(50), rank(90), rank(99), rank(100)
	return m
}

// milliseconds rounds to whole microseconds.
func milliseconds(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

func printTable(w io.Writer, s summary) {
	fmt.Fprintf(w, "phase %q: %d of %d rounds, replicas %s, deadline %.0f ms per round\n",
		s.Phase, s.Rounds, s.RoundsRequested, strings.Join(s.Replicas, " "), s.DeadlineMS)
	fmt.Fprintln(w, "t0 is just before the Revoke call on replica 1; a time ends when the replica's first REVOKED response arrives")
	if s.CountUnavailable {
		fmt.Fprintln(w, "\"not VALID\" ends at the first REVOKED response or UNAVAILABLE error; \"caching\" is just before the Validate that cached the token on that replica")
	}

	width := len("measurement")
	for _, m := range s.Measurements {
		width = max(width, len(m.Name))
	}
	fmt.Fprintf(w, "%-*s  %6s  %9s  %9s  %9s  %9s\n", width, "measurement", "rounds", "p50 ms", "p90 ms", "p99 ms", "max ms")
	for _, m := range s.Measurements {
		if m.Count == 0 {
			fmt.Fprintf(w, "%-*s  %6d  %9s  %9s  %9s  %9s\n", width, m.Name, 0, "-", "-", "-", "-")
			continue
		}
		fmt.Fprintf(w, "%-*s  %6d  %9.3f  %9.3f  %9.3f  %9.3f\n", width, m.Name, m.Count, *m.P50MS, *m.P90MS, *m.P99MS, *m.MaxMS)
	}

	for i, count := range s.FirstPollRevoked {
		fmt.Fprintf(w, "replica %d returned REVOKED on the first Validate after the Revoke in %d of %d rounds\n", i+2, count, s.Rounds)
	}
	for i, count := range s.EndedUnavailable {
		fmt.Fprintf(w, "replica %d: first response other than VALID was UNAVAILABLE in %d of %d rounds; %d Validate calls failed with UNAVAILABLE before the -after-revoke command\n",
			i+2, count, s.Rounds, s.UnavailableCalls[i])
	}
	for _, target := range s.Targets {
		verdict := "met"
		if !target.Met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "target: %s <= %.0f ms: %s (%.3f ms)\n", target.Name, target.LimitMS, verdict, target.MeasuredMS)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "FAILED: %s\n", s.Error)
	}
}

func writeJSON(path string, s summary) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the JSON results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the JSON results: %w", err)
	}
	return nil
}
