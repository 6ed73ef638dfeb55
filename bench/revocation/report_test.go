package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMeasureNearestRank(t *testing.T) {
	values := make([]time.Duration, 0, 200)
	// 200 values from 1 ms to 200 ms, added in reverse to check the sort.
	for i := 200; i >= 1; i-- {
		values = append(values, time.Duration(i)*time.Millisecond)
	}

	m := measure("series", values)

	if m.Count != 200 {
		t.Errorf("Count = %d; want 200", m.Count)
	}
	checks := []struct {
		name string
		got  *float64
		want float64
	}{
		{"p50", m.P50MS, 100},
		{"p90", m.P90MS, 180},
		{"p99", m.P99MS, 198},
		{"max", m.MaxMS, 200},
	}
	for _, check := range checks {
		if check.got == nil {
			t.Errorf("%s is nil; want %v ms", check.name, check.want)
			continue
		}
		if *check.got != check.want {
			t.Errorf("%s = %v ms; want %v ms", check.name, *check.got, check.want)
		}
	}
}

func TestMeasureSingleValue(t *testing.T) {
	m := measure("series", []time.Duration{1500 * time.Microsecond})

	for name, got := range map[string]*float64{"p50": m.P50MS, "p99": m.P99MS, "max": m.MaxMS} {
		if got == nil || *got != 1.5 {
			t.Errorf("%s = %v; want 1.5 ms", name, got)
		}
	}
}

func TestMeasureEmptyIsNull(t *testing.T) {
	m := measure("series", nil)

	if m.Count != 0 {
		t.Errorf("Count = %d; want 0", m.Count)
	}
	if m.P50MS != nil || m.P99MS != nil || m.MaxMS != nil {
		t.Errorf("percentiles of no values = %v, %v, %v; want nil", m.P50MS, m.P99MS, m.MaxMS)
	}
}

func TestSummarizeTargets(t *testing.T) {
	results := newResults(2)
	for _, slow := range []time.Duration{10 * time.Millisecond, 150 * time.Millisecond} {
		results.add(roundResult{
			revoke:     time.Millisecond,
			fromStart:  []time.Duration{5 * time.Millisecond, slow},
			fromReturn: []time.Duration{4 * time.Millisecond, slow - time.Millisecond},
			firstPoll:  []bool{true, false},
		})
	}
	cfg := config{phase: "test", rounds: 2, deadline: time.Second, targetP99: 100 * time.Millisecond, targetMax: time.Second}

	s := results.summarize(cfg, errors.New("round 3: example"))

	if len(s.Targets) != 2 {
		t.Fatalf("got %d targets; want 2", len(s.Targets))
	}
	if s.Targets[0].Met || s.Targets[0].MeasuredMS != 150 {
		t.Errorf("p99 target = %+v; want not met at 150 ms", s.Targets[0])
	}
	if !s.Targets[1].Met {
		t.Errorf("max target = %+v; want met", s.Targets[1])
	}
	if s.FirstPollRevoked[0] != 2 || s.FirstPollRevoked[1] != 0 {
		t.Errorf("FirstPollRevoked = %v; want [2 0]", s.FirstPollRevoked)
	}
	if s.Error != "round 3: example" {
		t.Errorf("Error = %q; want the failure's message", s.Error)
	}
}

func TestSummarizeCountsUnavailable(t *testing.T) {
	results := newResults(2)
	for _, ended := range []bool{true, false} {
		results.add(roundResult{
			revoke:           time.Millisecond,
			fromStart:        []time.Duration{9 * time.Second, 9500 * time.Millisecond},
			fromReturn:       []time.Duration{9 * time.Second, 9500 * time.Millisecond},
			fromCached:       []time.Duration{10 * time.Second, 10 * time.Second},
			firstPoll:        []bool{false, false},
			endedUnavailable: []bool{ended, true},
			unavailableCalls: []int{100, 150},
			afterHook:        time.Second,
			revokedAfterHook: []time.Duration{11 * time.Second, 11 * time.Second},
		})
	}
	cfg := config{phase: "ttl", rounds: 2, deadline: 12 * time.Second, countUnavailable: true,
		afterRevoke: "restore", targetMax: 10 * time.Second}

	s := results.summarize(cfg, nil)

	if got := s.EndedUnavailable; len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("EndedUnavailable = %v; want [1 2]", got)
	}
	if got := s.UnavailableCalls; len(got) != 2 || got[0] != 200 || got[1] != 300 {
		t.Errorf("UnavailableCalls = %v; want [200 300]", got)
	}
	names := make(map[string]measurement)
	for _, m := range s.Measurements {
		names[m.Name] = m
	}
	for _, name := range []string{"replica 2 not VALID, from t0", "replica 3 not VALID, from caching",
		"-after-revoke command", "replica 3 REVOKED after the command, from t0"} {
		if m, ok := names[name]; !ok || m.Count != 2 {
			t.Errorf("measurement %q = %+v, present %v; want 2 values", name, m, ok)
		}
	}
	if len(s.Targets) != 1 || !s.Targets[0].Met || s.Targets[0].MeasuredMS != 9500 {
		t.Errorf("Targets = %+v; want the max target met at 9500 ms", s.Targets)
	}
}

func TestSummarizeKeepsRevokedNames(t *testing.T) {
	results := newResults(1)
	results.add(roundResult{
		revoke:     time.Millisecond,
		fromStart:  []time.Duration{5 * time.Millisecond},
		fromReturn: []time.Duration{4 * time.Millisecond},
		firstPoll:  []bool{true},
	})

	s := results.summarize(config{phase: "notify", rounds: 1, deadline: time.Second}, nil)

	if s.EndedUnavailable != nil || s.UnavailableCalls != nil {
		t.Errorf("EndedUnavailable, UnavailableCalls = %v, %v; want nil without -count-unavailable", s.EndedUnavailable, s.UnavailableCalls)
	}
	for _, m := range s.Measurements {
		if strings.Contains(m.Name, "not VALID") || strings.Contains(m.Name, "caching") {
			t.Errorf("measurement %q appears without -count-unavailable", m.Name)
		}
	}
}
