package tokend

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
)

// fakeTokenService is an in-process TokenService whose Validate response
// each test sets. It covers responses that a healthy tokend does not return
// on demand, such as UNAVAILABLE or an unknown result.
type fakeTokenService struct {
	tokensv1.UnimplementedTokenServiceServer

	validate func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error)

	mu            sync.Mutex
	authorization []string
	requests      []*tokensv1.ValidateRequest
}

func (f *fakeTokenService) Validate(ctx context.Context, request *tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
	f.mu.Lock()
	f.authorization = metadata.ValueFromIncomingContext(ctx, "authorization")
	f.requests = append(f.requests, request)
	f.mu.Unlock()
	return f.validate(request)
}

func (f *fakeTokenService) validateCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// startFake serves fake on a free loopback port and returns a Client for
// it that authenticates with callerToken.
func startFake(t *testing.T, fake *fakeTokenService) *Client {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	server := grpc.NewServer()
	tokensv1.RegisterTokenServiceServer(server, fake)
	go server.Serve(listener)
	t.Cleanup(server.Stop)

	client, err := New(listener.Addr().String(),
		WithToken("tkn_caller"),
		WithInsecureLoopback(),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func validAnswer(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
	return &tokensv1.ValidateResponse{
		Valid:  true,
		Result: tokensv1.ValidateResult_VALIDATE_RESULT_VALID,
		Token: &tokensv1.Token{
			Id:        "0190f5c2-0000-7000-8000-000000000001",
			Owner:     "alice",
			Name:      "ci",
			Scopes:    []string{"repo:read"},
			ExpiresAt: timestamppb.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)),
		},
	}, nil
}

// serveThrough sends one request with the given Authorization values
// through the middleware and reports whether the handler ran.
func serveThrough(t *testing.T, client *Client, authorization ...string) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	var reached bool
	handler := client.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
	}), "repo:read")

	request := httptest.NewRequest(http.MethodGet, "/repos", nil)
	for _, value := range authorization {
		request.Header.Add("Authorization", value)
	}
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, request)
	return recorder, reached
}

func TestClientSendsCallerToken(t *testing.T) {
	fake := &fakeTokenService{validate: validAnswer}
	client := startFake(t, fake)

	if _, err := client.Validate(context.Background(), "tkn_user", "repo:read"); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.authorization) != 1 || fake.authorization[0] != "Bearer tkn_caller" {
		t.Errorf("authorization metadata = %q, want [\"Bearer tkn_caller\"]", fake.authorization)
	}
	if got := fake.requests[0].GetToken(); got != "tkn_user" {
		t.Errorf("ValidateRequest.token = %q, want tkn_user", got)
	}
	if got := fake.requests[0].GetRequiredScopes(); len(got) != 1 || got[0] != "repo:read" {
		t.Errorf("ValidateRequest.required_scopes = %q, want [repo:read]", got)
	}
}

func TestMiddlewarePrincipalFromFake(t *testing.T) {
	fake := &fakeTokenService{validate: validAnswer}
	client := startFake(t, fake)

	var principal Principal
	var found bool
	handler := client.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal, found = PrincipalFromContext(r.Context())
	}), "repo:read")
	request := httptest.NewRequest(http.MethodGet, "/", nil)
	request.Header.Set("Authorization", "Bearer tkn_user")
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, request)

	if recorder.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", recorder.Code)
	}
	if !found {
		t.Fatal("handler found no principal in the request context")
	}
	if principal.Owner != "alice" || principal.TokenID != "0190f5c2-0000-7000-8000-000000000001" || principal.Name != "ci" {
		t.Errorf("principal = %+v, want owner alice, the fake's token id and name ci", principal)
	}
	if !principal.HasScope("repo:read") || principal.HasScope("repo:write") {
		t.Errorf("principal scopes = %q, want exactly repo:read", principal.Scopes)
	}
	if want := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC); !principal.ExpiresAt.Equal(want) {
		t.Errorf("principal.ExpiresAt = %v, want %v", principal.ExpiresAt, want)
	}
}

func TestMiddlewareFailsClosedOnTokendErrors(t *testing.T) {
	answers := map[string]func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error){
		"unavailable": func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
			return nil, status.Error(codes.Unavailable, "database unreachable")
		},
		"internal": func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
			return nil, status.Error(codes.Internal, "bug")
		},
		"permission denied": func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
			return nil, status.Error(codes.PermissionDenied, "caller lacks tokens:validate")
		},
		"unknown result": func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
			return &tokensv1.ValidateResponse{Result: tokensv1.ValidateResult(99)}, nil
		},
		"unspecified result": func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
			return &tokensv1.ValidateResponse{}, nil
		},
		"valid without result": func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
			return &tokensv1.ValidateResponse{Valid: true}, nil
		},
		"valid without token": func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
			return &tokensv1.ValidateResponse{Valid: true, Result: tokensv1.ValidateResult_VALIDATE_RESULT_VALID}, nil
		},
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			client := startFake(t, &fakeTokenService{validate: answer})

			recorder, reached := serveThrough(t, client, "Bearer tkn_user")
			if recorder.Code != http.StatusServiceUnavailable {
				t.Errorf("status = %d, want 503", recorder.Code)
			}
			if reached {
				t.Error("the handler ran although tokend returned no valid response")
			}
			if got := recorder.Header().Get("WWW-Authenticate"); got != "" {
				t.Errorf("WWW-Authenticate = %q, want none on 503", got)
			}
		})
	}
}

func TestMiddlewareResponses(t *testing.T) {
	result := func(r tokensv1.ValidateResult) func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
		return func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error) {
			return &tokensv1.ValidateResponse{Result: r}, nil
		}
	}
	tests := []struct {
		name          string
		answer        func(*tokensv1.ValidateRequest) (*tokensv1.ValidateResponse, error)
		authorization []string
		wantStatus    int
		wantChallenge string
		wantCalls     int
	}{
		{"missing header", validAnswer, nil, 401, `Bearer`, 0},
		{"two headers", validAnswer, []string{"Bearer a", "Bearer b"}, 400, `Bearer error="invalid_request", error_description="the request has more than one Authorization value"`, 0},
		{"basic scheme", validAnswer, []string{"Basic dXNlcjpwYXNz"}, 401, `Bearer error="invalid_token", error_description="the authorization scheme is not Bearer"`, 0},
		{"bad token syntax", validAnswer, []string{"Bearer tkn_a b"}, 401, `Bearer error="invalid_token", error_description="the token contains characters outside the RFC 6750 b64token syntax"`, 0},
		{"malformed", result(tokensv1.ValidateResult_VALIDATE_RESULT_MALFORMED), []string{"Bearer tkn_x"}, 401, `Bearer error="invalid_token", error_description="the token is malformed"`, 1},
		{"not found", result(tokensv1.ValidateResult_VALIDATE_RESULT_NOT_FOUND), []string{"Bearer tkn_x"}, 401, `Bearer error="invalid_token", error_description="the token is not known"`, 1},
		{"expired", result(tokensv1.ValidateResult_VALIDATE_RESULT_EXPIRED), []string{"Bearer tkn_x"}, 401, `Bearer error="invalid_token", error_description="the token expired"`, 1},
		{"revoked", result(tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED), []string{"Bearer tkn_x"}, 401, `Bearer error="invalid_token", error_description="the token was revoked"`, 1},
		{"insufficient scope", result(tokensv1.ValidateResult_VALIDATE_RESULT_INSUFFICIENT_SCOPE), []string{"Bearer tkn_x"}, 403, `Bearer error="insufficient_scope", error_description="the token lacks a required scope: repo:read", scope="repo:read"`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeTokenService{validate: tt.answer}
			client := startFake(t, fake)

			recorder, reached := serveThrough(t, client, tt.authorization...)
			if recorder.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", recorder.Code, tt.wantStatus)
			}
			if got := recorder.Header().Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
			if reached {
				t.Error("the handler ran for a rejected request")
			}
			if got := fake.validateCalls(); got != tt.wantCalls {
				t.Errorf("Validate calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestLogLimiter(t *testing.T) {
	limiter := newLogLimiter(time.Hour)
	if _, ok := limiter.allow(); !ok {
		t.Fatal("first record was suppressed")
	}
	for range 3 {
		if _, ok := limiter.allow(); ok {
			t.Fatal("record within the interval was allowed")
		}
	}
	limiter.last = time.Now().Add(-2 * time.Hour)
	suppressed, ok := limiter.allow()
	if !ok {
		t.Fatal("record after the interval was suppressed")
	}
	if suppressed != 3 {
		t.Errorf("suppressed = %d, want 3", suppressed)
	}
}
