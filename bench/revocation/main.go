// Command revocation measures how long a token revoked on one tokend
// replica keeps validating on the other replicas that share its PostgreSQL
// database.
//
// Each round generates a token on the first replica and validates it on
// every replica, so that each one caches it. Then it revokes the token on
// the first replica, checks that the first replica returns REVOKED on its
// next Validate, and polls Validate on the other replicas until each one
// returns REVOKED. bench/revocation.sh starts three replicas on a
// throwaway cluster and runs this program.
//
// With -count-unavailable, the polled replicas may also end their VALID
// responses with the error UNAVAILABLE, as a replica cut off from the
// database does once its cache entry expires. They are then polled until
// the deadline, and the -after-revoke command must reconnect them, after
// which each one must return REVOKED. Each round then polls with a new
// caller token that has only the tokens:validate scope.
//
// Usage:
//
//	TOKEND_TOKEN=<token with tokens:admin> revocation \
//	    -replicas 127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053 [-rounds 300]
//
// It prints one table of percentiles and exits 1 when any call fails, any
// replica returns an unexpected result, or a replica still returns VALID
// when the round's deadline passes. Under -count-unavailable, UNAVAILABLE
// from a polled replica is counted instead, until the -after-revoke
// command has run. Flag errors exit 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tokend/tokend/clients/go/tokend"
)

// maxRounds bounds -rounds, so that a typo cannot start a run of hours.
const maxRounds = 10000

type config struct {
	replicas         []string
	rounds           int
	deadline         time.Duration
	beforeRevoke     string
	afterRevoke      string
	pollInterval     time.Duration
	countUnavailable bool
	phase            string
	targetP99        time.Duration
	targetMax        time.Duration
	jsonPath         string
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "revocation: %v\n", err)
		}
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg)
	stop()
	os.Exit(code)
}

func parseFlags(args []string, output io.Writer) (config, error) {
	var cfg config
	var replicas string
	flags := flag.NewFlagSet("revocation", flag.ContinueOnError)
	flags.SetOutput(output)
	flags.StringVar(&replicas, "replicas", "", "comma-separated host:port of at least two loopback replicas; the first one serves Generate and Revoke (required)")
	flags.IntVar(&cfg.rounds, "rounds", 300, fmt.Sprintf("rounds to measure, 1 to %d", maxRounds))
	flags.DurationVar(&cfg.deadline, "deadline", 5*time.Second, "time from the Revoke call after which a replica that still returns VALID fails the round")
	flags.StringVar(&cfg.beforeRevoke, "before-revoke", "", "shell command run before each Revoke, outside the measured time; a non-zero exit fails the round")
	flags.StringVar(&cfg.afterRevoke, "after-revoke", "", "shell command run in each round once the polled replicas stopped returning VALID, also when that poll failed; then they are polled again until each returns REVOKED; a non-zero exit fails the round")
	flags.DurationVar(&cfg.pollInterval, "poll-interval", 0, "pause between two Validate calls to one polled replica; 0 polls back to back")
	flags.BoolVar(&cfg.countUnavailable, "count-unavailable", false, "count the error UNAVAILABLE from a polled replica as the end of its VALID responses instead of failing the round, and poll it until the deadline, with a new tokens:validate caller token each round; needs -after-revoke")
	flags.StringVar(&cfg.phase, "phase", "notify", "name of this run in the output")
	flags.DurationVar(&cfg.targetP99, "target-p99", 0, "report whether the p99 of the slowest replica is at most this duration; 0 reports no target")
	flags.DurationVar(&cfg.targetMax, "target-max", 0, "report whether the maximum of the slowest replica is at most this duration; 0 reports no target")
	flags.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: TOKEND_TOKEN=<token with tokens:admin> revocation -replicas HOST:PORT,HOST:PORT[,...] [flags]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return config{}, err
	}
	if flags.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q; every setting is a flag", flags.Arg(0))
	}

	for replica := range strings.SplitSeq(replicas, ",") {
		if replica = strings.TrimSpace(replica); replica != "" {
			cfg.replicas = append(cfg.replicas, replica)
		}
	}
	if len(cfg.replicas) < 2 {
		return config{}, fmt.Errorf("invalid -replicas %q: give at least two addresses, such as 127.0.0.1:50051,127.0.0.1:50052", replicas)
	}
	if cfg.rounds < 1 || cfg.rounds > maxRounds {
		return config{}, fmt.Errorf("invalid -rounds %d: use 1 to %d", cfg.rounds, maxRounds)
	}
	if cfg.deadline <= 0 {
		return config{}, fmt.Errorf("invalid -deadline %v: must be positive", cfg.deadline)
	}
	if cfg.pollInterval < 0 {
		return config{}, fmt.Errorf("invalid -poll-interval %v: must not be negative", cfg.pollInterval)
	}
	// A replica that ended with UNAVAILABLE has not been seen returning
	// REVOKED, so only the poll after -after-revoke can check that it does.
	if cfg.countUnavailable && cfg.afterRevoke == "" {
		return config{}, errors.New("-count-unavailable needs -after-revoke, a command that lets the polled replicas reach the database again")
	}
	if cfg.targetP99 < 0 || cfg.targetMax < 0 {
		return config{}, errors.New("invalid -target-p99 or -target-max: must not be negative")
	}
	return cfg, nil
}

func run(ctx context.Context, cfg config) int {
	token := os.Getenv("TOKEND_TOKEN")
	if token == "" {
		fmt.Fprintln(os.Stderr, "revocation: TOKEND_TOKEN is not set; set it to a token with the tokens:admin scope")
		return 2
	}

	clients := make([]*tokend.Client, 0, len(cfg.replicas))
	defer func() {
		for _, client := range clients {
			client.Close()
		}
	}()
	for i, address := range cfg.replicas {
		// The client accepts plaintext only for loopback targets, so this
		// also keeps the benchmark's traffic on the host.
		client, err := tokend.New(address, tokend.WithToken(token), tokend.WithInsecureLoopback())
		if err != nil {
			fmt.Fprintf(os.Stderr, "revocation: replica %d: %v\n", i+1, err)
			return 2
		}
		clients = append(clients, client)
	}

	results := newResults(len(clients) - 1)
	var failure error
	progressEvery := max(cfg.rounds/10, 1)
	for n := 1; n <= cfg.rounds; n++ {
		round, err := runRound(ctx, clients, cfg, n)
		if err != nil {
			failure = fmt.Errorf("round %d: %w", n, err)
			break
		}
		results.add(round)
		if n%progressEvery == 0 {
			fmt.Fprintf(os.Stderr, "revocation %s: %d of %d rounds done\n", cfg.phase, n, cfg.rounds)
		}
	}

	summary := results.summarize(cfg, failure)
	printTable(os.Stdout, summary)
	if cfg.jsonPath != "" {
		if err := writeJSON(cfg.jsonPath, summary); err != nil {
			fmt.Fprintf(os.Stderr, "revocation: %v\n", err)
			return 1
		}
	}
	if failure != nil {
		fmt.Fprintf(os.Stderr, "revocation %s: FAILED: %v\n", cfg.phase, failure)
		return 1
	}
	return 0
}
