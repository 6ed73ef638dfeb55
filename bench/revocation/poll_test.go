package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
	"github.com/tokend/tokend/clients/go/tokend"
)

// scriptedReplica is an in-process TokenService whose Validate returns the
// responses in turn and repeats the last one.
type scriptedReplica struct {
	tokensv1.UnimplementedTokenServiceServer

	mu        sync.Mutex
	responses []scriptedResponse
	calls     int
}

// scriptedResponse is a Validate result, or the gRPC error code when code is
// not codes.OK.
type scriptedResponse struct {
	result tokensv1.ValidateResult
	code   codes.Code
}

var (
	responseValid       = scriptedResponse{result: tokensv1.ValidateResult_VALIDATE_RESULT_VALID}
	responseRevoked     = scriptedResponse{result: tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED}
	responseUnavailable = scriptedResponse{code: codes.Unavailable}
	responseInternal    = scriptedResponse{code: codes.Internal}
)

func (r *scriptedReplica) Validate(context.Context, *tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
	r.mu.Lock()
	response := r.responses[min(r.calls, len(r.responses)-1)]
	r.calls++
	r.mu.Unlock()
	if response.code != codes.OK {
		return nil, status.Error(response.code, "scripted error")
	}
	return &tokensv1.ValidateResponse{Result: response.result}, nil
}

// startReplica serves the responses on a free loopback port and returns a
// client for it.
func startReplica(t *testing.T, responses ...scriptedResponse) *tokend.Client {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	server := grpc.NewServer()
	tokensv1.RegisterTokenServiceServer(server, &scriptedReplica{responses: responses})
	go server.Serve(listener)
	t.Cleanup(server.Stop)

	client, err := tokend.New(listener.Addr().String(), tokend.WithToken("tkn_caller"), tokend.WithInsecureLoopback())
	if err != nil {
		t.Fatalf("create a client for %s: %v", listener.Addr(), err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// pollWithDeadline polls client for at most 300 ms.
func pollWithDeadline(t *testing.T, client *tokend.Client, options pollOptions) pollOutcome {
	t.Helper()
	options.deadline = time.Now().Add(300 * time.Millisecond)
	return pollUntilNotValid(context.Background(), client, "tkn_polled", options)
}

func TestPollEndsAtRevoked(t *testing.T) {
	client := startReplica(t, responseValid, responseValid, responseRevoked)

	outcome := pollWithDeadline(t, client, pollOptions{})

	if outcome.err != nil {
		t.Fatalf("err = %v; want nil", outcome.err)
	}
	if outcome.polls != 3 {
		t.Errorf("polls = %d; want 3", outcome.polls)
	}
	if outcome.unavailable {
		t.Error("unavailable = true; want false")
	}
	if outcome.received.IsZero() {
		t.Error("received is zero; want the arrival of REVOKED")
	}
}

func TestPollFailsOnUnavailableByDefault(t *testing.T) {
	client := startReplica(t, responseValid, responseUnavailable)

	outcome := pollWithDeadline(t, client, pollOptions{})

	if outcome.err == nil || !strings.Contains(outcome.err.Error(), "Validate failed") {
		t.Errorf("err = %v; want a failed Validate", outcome.err)
	}
}

func TestPollCountsUnavailableUntilDeadline(t *testing.T) {
	client := startReplica(t, responseValid, responseUnavailable)

	outcome := pollWithDeadline(t, client, pollOptions{interval: 20 * time.Millisecond, countUnavailable: true})

	if outcome.err != nil {
		t.Fatalf("err = %v; want nil", outcome.err)
	}
	if !outcome.unavailable {
		t.Error("unavailable = false; want true")
	}
	if outcome.polls != 2 {
		t.Errorf("polls = %d; want 2, the first UNAVAILABLE", outcome.polls)
	}
	// 300 ms at one call per 20 ms leaves room for several calls, and the
	// pause keeps them far below a back-to-back loop.
	if outcome.unavailableCalls < 2 || outcome.unavailableCalls > 20 {
		t.Errorf("unavailableCalls = %d; want 2 to 20", outcome.unavailableCalls)
	}
}

func TestPollKeepsFirstEndingBeforeRevoked(t *testing.T) {
	client := startReplica(t, responseValid, responseUnavailable, responseRevoked)

	outcome := pollWithDeadline(t, client, pollOptions{countUnavailable: true})

	if outcome.err != nil {
		t.Fatalf("err = %v; want nil", outcome.err)
	}
	if !outcome.unavailable || outcome.polls != 2 {
		t.Errorf("unavailable, polls = %v, %d; want true, 2", outcome.unavailable, outcome.polls)
	}
	if outcome.unavailableCalls != 1 {
		t.Errorf("unavailableCalls = %d; want 1", outcome.unavailableCalls)
	}
}

func TestPollFailsOnValidAfterUnavailable(t *testing.T) {
	client := startReplica(t, responseValid, responseUnavailable, responseValid)

	outcome := pollWithDeadline(t, client, pollOptions{countUnavailable: true})

	if outcome.err == nil || !strings.Contains(outcome.err.Error(), "VALID on call 3, after UNAVAILABLE on call 2") {
		t.Errorf("err = %v; want VALID after UNAVAILABLE", outcome.err)
	}
}

func TestPollFailsOnOtherErrors(t *testing.T) {
	client := startReplica(t, responseInternal)

	outcome := pollWithDeadline(t, client, pollOptions{countUnavailable: true})

	if status.Code(outcome.err) != codes.Internal {
		t.Errorf("err = %v; want the INTERNAL error", outcome.err)
	}
}

func TestPollFailsWhenStillValid(t *testing.T) {
	client := startReplica(t, responseValid)

	outcome := pollWithDeadline(t, client, pollOptions{interval: 20 * time.Millisecond, countUnavailable: true})

	if outcome.err == nil || !strings.Contains(outcome.err.Error(), "still VALID when the deadline passed") {
		t.Errorf("err = %v; want still VALID at the deadline", outcome.err)
	}
}
