package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

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

	// hookTimeout bounds one run of the -before-revoke command.
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
	// the replica's first REVOKED response.
	fromStart []time.Duration
	// fromReturn runs from the return of the Revoke call to the same
	// arrival.
	fromReturn []time.Duration
	// firstPoll is true when the first Validate after the Revoke call
	// already returned REVOKED.
	firstPoll []bool
}

// runRound generates, caches, revokes and polls one token. n numbers the
// round in the token's name.
func runRound(ctx context.Context, clients []*tokend.Client, cfg config, n int) (roundResult, error) {
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
	for i, client := range clients {
		if err := expectResult(ctx, client, secret, tokensv1.ValidateResult_VALIDATE_RESULT_VALID); err != nil {
			return roundResult{}, fmt.Errorf("replica %d, new token: %w", i+1, err)
		}
	}

	var hook time.Duration
	if cfg.beforeRevoke != "" {
		hookStart := time.Now()
		if err := runHook(ctx, cfg.beforeRevoke); err != nil {
			return roundResult{}, err
		}
		hook = time.Since(hookStart)
	}

	start := time.Now()
	revoked, err := clients[0].Revoke(ctx, id)
	returned := time.Now()
	if err != nil {
		return roundResult{}, fmt.Errorf("replica 1: Revoke of %s failed: %w", id, err)
	}
	if status := revoked.GetToken().GetStatus(); status != tokensv1.TokenStatus_TOKEN_STATUS_REVOKED {
		return roundResult{}, fmt.Errorf("replica 1: Revoke of %s returned status %s; want TOKEN_STATUS_REVOKED", id, status)
	}

	pollCtx, cancel := context.WithDeadline(ctx, start.Add(cfg.deadline))
	defer cancel()
	polled := clients[1:]
	outcomes := make([]pollOutcome, len(polled))
	var wait sync.WaitGroup
	for i, client := range polled {
		wait.Go(func() {
			outcomes[i] = pollUntilRevoked(pollCtx, client, secret)
		})
	}
	// The replica that served the Revoke evicts the token before it
	// returns, so even its first Validate must not return VALID.
	firstErr := expectResult(ctx, clients[0], secret, tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED)
	wait.Wait()
	if firstErr != nil {
		return roundResult{}, fmt.Errorf("replica 1, right after Revoke returned: %w", firstErr)
	}

	result := roundResult{hook: hook, revoke: returned.Sub(start)}
	for i, outcome := range outcomes {
		if outcome.err != nil {
			return roundResult{}, fmt.Errorf("replica %d after the revoke: %w", i+2, outcome.err)
		}
		result.fromStart = append(result.fromStart, outcome.received.Sub(start))
		result.fromReturn = append(result.fromReturn, outcome.received.Sub(returned))
		result.firstPoll = append(result.firstPoll, outcome.polls == 1)
	}
	return result, nil
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

type pollOutcome struct {
	// received is when the first REVOKED response arrived.
	received time.Time
	// polls counts the Validate calls, the one that returned REVOKED included.
	polls int
	err   error
}

// pollUntilRevoked calls Validate back to back until it returns REVOKED. The
// loop ends by ctx's deadline at the latest, because every call fails once
// the deadline has passed.
func pollUntilRevoked(ctx context.Context, client *tokend.Client, secret string) pollOutcome {
	for polls := 1; ; polls++ {
		response, err := client.Validate(ctx, secret)
		received := time.Now()
		if err != nil {
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				return pollOutcome{err: fmt.Errorf("still VALID when the deadline passed, after %d Validate calls", polls-1)}
			case ctx.Err() != nil:
				return pollOutcome{err: fmt.Errorf("interrupted after %d Validate calls: %w", polls-1, ctx.Err())}
			default:
				return pollOutcome{err: fmt.Errorf("Validate failed: %w", err)}
			}
		}
		switch result := response.GetResult(); result {
		case tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED:
			return pollOutcome{received: received, polls: polls}
		case tokensv1.ValidateResult_VALIDATE_RESULT_VALID:
			continue
		default:
			return pollOutcome{err: fmt.Errorf("Validate returned %s; want VALID or REVOKED", result)}
		}
	}
}

// runHook runs the -before-revoke command with /bin/sh, with its output on
// standard error, so that standard output keeps only the table.
func runHook(ctx context.Context, command string) error {
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("-before-revoke command %q failed: %w", command, err)
	}
	return nil
}
