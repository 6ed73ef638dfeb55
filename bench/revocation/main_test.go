package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsTTLPhase(t *testing.T) {
	cfg, err := parseFlags([]string{
		"-replicas", "127.0.0.1:1,127.0.0.1:2", "-count-unavailable",
		"-after-revoke", "restore", "-poll-interval", "10ms",
	}, io.Discard)

	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if !cfg.countUnavailable || cfg.afterRevoke != "restore" || cfg.pollInterval != 10*time.Millisecond {
		t.Errorf("cfg = %+v; want -count-unavailable, -after-revoke restore and -poll-interval 10ms", cfg)
	}
}

func TestParseFlagsRejectsInvalid(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unavailable without after-revoke", []string{"-count-unavailable"}, "-count-unavailable needs -after-revoke"},
		{"negative poll interval", []string{"-poll-interval", "-1ms"}, "invalid -poll-interval"},
		{"zero rounds", []string{"-rounds", "0"}, "invalid -rounds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"-replicas", "127.0.0.1:1,127.0.0.1:2"}, c.args...)

			_, err := parseFlags(args, io.Discard)

			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("parseFlags(%q) error = %v; want one containing %q", args, err, c.want)
			}
		})
	}
}
