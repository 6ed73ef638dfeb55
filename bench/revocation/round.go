package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
	"github.com/tokend/tokend/clients/go/tokend"
)

const (
	// tokenOwner owns every generated token. Each round revokes its token,
	// so the owner stays far below the server's cap on active tokens.
	tokenOwner = "bench-revocation"

	// tokenLifetime outlasts any run, so no token expires mid-round.
	tokenLifetime = time.Hour

	// validateScope lets a token call Validate and nothing else.
	validateScope = "tokens:validate"

	// hookTimeout bounds one run of the -before-revoke or the -after-revoke
	// command.
	hookTimeout = 30 * time.Second
)

// roundResult holds one round's timings. The slices have one entry per
// polled replica, in the order of -replicas without the first one.
type roundResult struct {
	// hook is the duration of the -before-revoke command, 0 without one.
	hook time.Duration
	// revoke is the duration of the Revoke call on the first replica.
	revoke time.Duration
	// fromStart runs from just before the Revoke call to the arrival of
	// the replica's first response other than VALID. Without
	// -count-unavailable that response is always REVOKED.
	fromStart []time.Duration
	// fromReturn runs from the return of the Revoke call to the same
	// arrival.
	fromReturn []time.Duration
	// fromCached runs from just before the Validate call that cached the
	// token on the replica to the same arrival.
	fromCached []time.Duration
	// firstPoll is true when the first Validate after the Revoke call
	// already returned REVOKED.
	firstPoll []bool
	// endedUnavailable is true when the first response other than VALID
	// was the error UNAVAILABLE rather than REVOKED.
	endedUnavailable []bool
	// unavailableCalls counts the Validate calls that failed with
	// UNAVAILABLE before the -after-revoke command.
	unavailableCalls []int
	// afterHook is the duration of the -after-revoke command, 0 without one.
	afterHook time.Duration
	// revokedAfterHook runs from just before the Revoke call to the first
	// REVOKED response after the -after-revoke command, empty without one.
	revokedAfterHook []time.Duration
}

// runRound generates, caches, revokes and polls one token. n numbers the
// round in the token's name.
func runRound(ctx context.Context, clients []*tokend.Client, cfg config, n int) (_ roundResult, err error) {
	created, err := clients[0].Generate(ctx, &tokensv1.GenerateRequest{
		Owner:      tokenOwner,
		Name:       fmt.Sprintf("revocation round %d", n),
		Expiration: &tokensv1.GenerateRequest_Ttl{Ttl: durationpb.New(tokenLifetime)},
	})
	if err != nil {
		return roundResult{}, fmt.Errorf("replica 1: Generate failed: %w", err)
	}
	secret, id := created.GetSecret(), created.GetToken().GetId()
	if secret == "" || id == "" {
		return roundResult{}, errors.New("replica 1: Generate returned no secret or no token id")
	}

	// A replica caches the token on its first lookup, so after this loop
	// only a revocation notice or the cache TTL can make it see the revoke.
	cachedAt := make([]time.Time, len(clients))
	for i, client := range clients {
		cachedAt[i] = time.Now()
		if err := expectResult(ctx, client, secret, tokensv1.ValidateResult_VALIDATE_RESULT_VALID); err != nil {
			return roundResult{}, fmt.Errorf("replica %d, new token: %w", i+1, err)
		}
	}

	polled := clients[1:]
	if cfg.countUnavailable {
		pollers, pollersErr := newPollers(ctx, clients[0], cfg.replicas[1:], secret, n)
		if pollersErr != nil {
			return roundResult{}, pollersErr
		}
		defer pollers.close()
		polled = pollers.clients
		// err is the named result, so a failed Revoke fails a round that
		// succeeded otherwise.
		defer func() {
			if revokeErr := pollers.revokeCaller(ctx, clients[0]); revokeErr != nil && err == nil {
				err = revokeErr
			}
		}()
	}

	var result roundResult
	if cfg.beforeRevoke != "" {
		hookStart := time.Now()
		if err := runHook(ctx, "-before-revoke", cfg.beforeRevoke); err != nil {
			return roundResult{}, err
		}
		result.hook = time.Since(hookStart)
	}

	start, pollErr := revokeAndPoll(ctx, clients[0], polled, cfg, secret, id, cachedAt[1:], &result)
	if cfg.afterRevoke == "" {
		if pollErr != nil {
			return roundResult{}, pollErr
		}
		return result, nil
	}

	// The command runs even after a failed poll, because it undoes what
	// the -before-revoke command did to the replicas.
	hookStart := time.Now()
	hookErr := runHook(ctx, "-after-revoke", cfg.afterRevoke)
	result.afterHook = time.Since(hookStart)
	if err := errors.Join(pollErr, hookErr); err != nil {
		return roundResult{}, err
	}

	// Every replica reaches the database again, so now each one must
	// return REVOKED, and a failed call fails the round.
	outcomes := pollReplicas(ctx, polled, secret, pollOptions{deadline: time.Now().Add(cfg.deadline), interval: cfg.pollInterval})
	for i, outcome := range outcomes {
		if outcome.err != nil {
			return roundResult{}, fmt.Errorf("replica %d after the -after-revoke command: %w", i+2, outcome.err)
		}
		result.revokedAfterHook = append(result.revokedAfterHook, outcome.received.Sub(start))
	}
	return result, nil
}

// revokeAndPoll revokes the token on the first replica and polls the other
// replicas until each stops returning VALID, adding the timings to result.
// cachedAt holds, per polled replica, the start of the Validate call that
// cached the token there. Returns the time just before the Revoke call.
func revokeAndPoll(ctx context.Context, first *tokend.Client, polled []*tokend.Client, cfg config, secret, id string, cachedAt []time.Time, result *roundResult) (time.Time, error) {
	start := time.Now()
	revoked, err := first.Revoke(ctx, id)
	returned := time.Now()
	if err != nil {
		return start, fmt.Errorf("replica 1: Revoke of %s failed: %w", id, err)
	}
	if tokenStatus := revoked.GetToken().GetStatus(); tokenStatus != tokensv1.TokenStatus_TOKEN_STATUS_REVOKED {
		return start, fmt.Errorf("replica 1: Revoke of %s returned status %s; want TOKEN_STATUS_REVOKED", id, tokenStatus)
	}

	options := pollOptions{deadline: start.Add(cfg.deadline), interval: cfg.pollInterval, countUnavailable: cfg.countUnavailable}
	var outcomes []pollOutcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		outcomes = pollReplicas(ctx, polled, secret, options)
	}()
	// The replica that served the Revoke evicts the token before it
	// returns, so even its first Validate must not return VALID.
	firstErr := expectResult(ctx, first, secret, tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED)
	<-done
	if firstErr != nil {
		return start, fmt.Errorf("replica 1, right after Revoke returned: %w", firstErr)
	}

	result.revoke = returned.Sub(start)
	for i, outcome := range outcomes {
		if outcome.err != nil {
			return start, fmt.Errorf("replica %d after the revoke: %w", i+2, outcome.err)
		}
		result.fromStart = append(result.fromStart, outcome.received.Sub(start))
		result.fromReturn = append(result.fromReturn, outcome.received.Sub(returned))
		result.fromCached = append(result.fromCached, outcome.received.Sub(cachedAt[i]))
		result.firstPoll = append(result.firstPoll, outcome.polls == 1 && !outcome.unavailable)
		result.endedUnavailable = append(result.endedUnavailable, outcome.unavailable)
		result.unavailableCalls = append(result.unavailableCalls, outcome.unavailableCalls)
	}
	return start, nil
}

// pollers are the clients that poll the replicas under -count-unavailable.
//
// A replica cut off from the database authenticates a call only while the
// caller's token is in its cache. The caller's entry, cached before the
// polled token's, would expire first and end the VALID responses with
// UNAVAILABLE before the polled token's own TTL. So each round polls with
// a new caller token that each replica caches only after the polled token.
type pollers struct {
	clients  []*tokend.Client
	callerID string
}

// newPollers generates a tokens:validate caller token on the first replica,
// connects to each address with it, and validates secret once through each
// connection, which caches the caller's token on that replica. n numbers
// the round in the token's name.
func newPollers(ctx context.Context, first *tokend.Client, addresses []string, secret string, n int) (*pollers, error) {
	created, err := first.Generate(ctx, &tokensv1.GenerateRequest{
		Owner:      tokenOwner,
		Name:       fmt.Sprintf("revocation round %d poller", n),
		Scopes:     []string{validateScope},
		Expiration: &tokensv1.GenerateRequest_Ttl{Ttl: durationpb.New(tokenLifetime)},
	})
	if err != nil {
		return nil, fmt.Errorf("replica 1: Generate of the poller token failed: %w", err)
	}
	p := &pollers{callerID: created.GetToken().GetId()}
	caller := created.GetSecret()
	if caller == "" || p.callerID == "" {
		return nil, errors.New("replica 1: Generate returned no secret or no token id for the poller token")
	}

	for i, address := range addresses {
		client, err := tokend.New(address, tokend.WithToken(caller), tokend.WithInsecureLoopback())
		if err != nil {
			p.close()
			return nil, fmt.Errorf("replica %d: connect with the poller token: %w", i+2, err)
		}
		p.clients = append(p.clients, client)
		if err := expectResult(ctx, client, secret, tokensv1.ValidateResult_VALIDATE_RESULT_VALID); err != nil {
			p.close()
			return nil, fmt.Errorf("replica %d, new token with the poller token: %w", i+2, err)
		}
	}
	return p, nil
}

// revokeCaller revokes the caller token on the first replica, so that the
// tokens of finished rounds do not count against the owner's cap on active
// tokens.
func (p *pollers) revokeCaller(ctx context.Context, first *tokend.Client) error {
	if _, err := first.Revoke(ctx, p.callerID); err != nil {
		return fmt.Errorf("replica 1: Revoke of the poller token %s failed: %w", p.callerID, err)
	}
	return nil
}

func (p *pollers) close() {
	for _, client := range p.clients {
		client.Close()
	}
}

// expectResult validates secret once and returns an error unless the result
// is want.
func expectResult(ctx context.Context, client *tokend.Client, secret string, want tokensv1.ValidateResult) error {
	response, err := client.Validate(ctx, secret)
	if err != nil {
		return fmt.Errorf("Validate failed: %w", err)
	}
	if got := response.GetResult(); got != want {
		return fmt.Errorf("Validate returned %s; want %s", got, want)
	}
	return nil
}

type pollOptions struct {
	// deadline ends the polling. A replica that still returns VALID then
	// fails.
	deadline time.Time
	// interval is the pause between two Validate calls, 0 for none.
	interval time.Duration
	// countUnavailable accepts the error UNAVAILABLE as the end of the
	// VALID responses, and then keeps polling until the deadline.
	countUnavailable bool
}

type pollOutcome struct {
	// received is when the first response other than VALID arrived.
	received time.Time
	// polls counts the Validate calls up to and including that response.
	polls int
	// unavailable is true when that response was the error UNAVAILABLE.
	unavailable bool
	// unavailableCalls counts every Validate call that failed with
	// UNAVAILABLE.
	unavailableCalls int
	err              error
}

// pollReplicas runs pollUntilNotValid on every client at once and returns
// the outcomes in the order of clients.
func pollReplicas(ctx context.Context, clients []*tokend.Client, secret string, options pollOptions) []pollOutcome {
	outcomes := make([]pollOutcome, len(clients))
	var wait sync.WaitGroup
	for i, client := range clients {
		wait.Go(func() {
			outcomes[i] = pollUntilNotValid(ctx, client, secret, options)
		})
	}
	wait.Wait()
	return outcomes
}

// pollUntilNotValid calls Validate until it returns REVOKED, or under
// options.countUnavailable until the deadline once a call failed with
// UNAVAILABLE. It fails on VALID after UNAVAILABLE, because a replica that
// lost its cache entry must not find the token valid again.
//
// The loop checks the deadline before each call instead of putting it on
// the calls' context. grpc-go (v1.85, http2_client.go) fails a call with
// DEADLINE_EXCEEDED once the clock has passed the deadline, which can be
// before ctx.Err() reports it, and that looked like a failed call. A call
// that starts before the deadline can end up to the client's call timeout
// after it.
func pollUntilNotValid(ctx context.Context, client *tokend.Client, secret string, options pollOptions) pollOutcome {
	var outcome pollOutcome
	for polls := 1; ; polls++ {
		if !time.Now().Before(options.deadline) {
			if !outcome.unavailable {
				outcome.err = fmt.Errorf("still VALID when the deadline passed, after %d Validate calls", polls-1)
			}
			return outcome
		}

		response, err := client.Validate(ctx, secret)
		received := time.Now()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			outcome.err = fmt.Errorf("interrupted after %d Validate calls: %w", polls-1, ctx.Err())
			return outcome
		case options.countUnavailable && status.Code(err) == codes.Unavailable:
			outcome.unavailableCalls++
			if outcome.received.IsZero() {
				outcome.received, outcome.polls, outcome.unavailable = received, polls, true
			}
			pause(ctx, options.interval)
			continue
		default:
			outcome.err = fmt.Errorf("Validate failed: %w", err)
			return outcome
		}

		switch result := response.GetResult(); result {
		case tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED:
			if outcome.received.IsZero() {
				outcome.received, outcome.polls = received, polls
			}
			return outcome
		case tokensv1.ValidateResult_VALIDATE_RESULT_VALID:
			if outcome.unavailable {
				outcome.err = fmt.Errorf("Validate returned VALID on call %d, after UNAVAILABLE on call %d", polls, outcome.polls)
				return outcome
			}
			pause(ctx, options.interval)
		default:
			outcome.err = fmt.Errorf("Validate returned %s; want VALID or REVOKED", result)
			return outcome
		}
	}
}

// pause waits for interval or until ctx ends, whichever comes first.
func pause(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	timer := time.NewTimer(interval)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// runHook runs a -before-revoke or -after-revoke command, named by flag,
// with /bin/sh, with its output on standard error, so that standard output
// keeps only the table.
func runHook(ctx context.Context, flag, command string) error {
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s command %q failed: %w", flag, command, err)
	}
	return nil
}
