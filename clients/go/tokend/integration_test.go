package tokend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
	"github.com/tokend/tokend/clients/go/tokend"
)

// testRoot holds the data directories of every tokend the tests start.
var testRoot string

// shared is one tokend for the tests that do not stop it.
var shared struct {
	once    sync.Once
	process *tokendProcess
	admin   createdToken
	err     error
}

func TestMain(m *testing.M) {
	var err error
	testRoot, err = os.MkdirTemp("", "tokend-go-client-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create temporary directory:", err)
		os.Exit(1)
	}
	code := m.Run()
	if shared.process != nil {
		shared.process.stop()
	}
	os.RemoveAll(testRoot)
	os.Exit(code)
}

// sharedTokend returns the shared tokend and its bootstrap admin token,
// starting it on first use.
func sharedTokend(t *testing.T) (*tokendProcess, createdToken) {
	t.Helper()
	shared.once.Do(func() {
		shared.process, shared.err = startTokend(testRoot)
		if shared.err != nil {
			return
		}
		shared.admin, shared.err = shared.process.createToken("admin", "go client tests", "tokens:admin")
	})
	if shared.err != nil {
		t.Fatalf("start tokend: %v", shared.err)
	}
	return shared.process, shared.admin
}

// quietLogger drops the client's warnings, which the tests provoke on
// purpose.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newClient(t *testing.T, addr, token string) *tokend.Client {
	t.Helper()
	client, err := tokend.New(addr, tokend.WithToken(token), tokend.WithInsecureLoopback(), tokend.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("tokend.New(%s): %v", addr, err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func generate(t *testing.T, admin *tokend.Client, owner, name string, ttl time.Duration, scopes ...string) *tokensv1.GenerateResponse {
	t.Helper()
	response, err := admin.Generate(context.Background(), &tokensv1.GenerateRequest{
		Owner:      owner,
		Name:       name,
		Scopes:     scopes,
		Expiration: &tokensv1.GenerateRequest_Ttl{Ttl: durationpb.New(ttl)},
	})
	if err != nil {
		t.Fatalf("Generate(owner %q, name %q, scopes %q): %v", owner, name, scopes, err)
	}
	return response
}

// uniqueOwner keeps each test's tokens apart on the shared server.
func uniqueOwner(t *testing.T) string {
	return fmt.Sprintf("owner-%d", time.Now().UnixNano())
}

func TestTokenServiceRPCs(t *testing.T) {
	process, adminToken := sharedTokend(t)
	admin := newClient(t, process.addr, adminToken.Secret)
	ctx := context.Background()
	owner := uniqueOwner(t)

	before := time.Now()
	first := generate(t, admin, owner, "first", time.Hour, "repo:write", "repo:read")
	second := generate(t, admin, owner, "second", 2*time.Hour, "repo:read")

	t.Run("Generate", func(t *testing.T) {
		token := first.GetToken()
		if first.GetSecret() == "" {
			t.Fatal("Generate returned no secret")
		}
		if token.GetId() == "" || token.GetOwner() != owner || token.GetName() != "first" {
			t.Errorf("token = id %q owner %q name %q, want an id, owner %q, name first", token.GetId(), token.GetOwner(), token.GetName(), owner)
		}
		if want := []string{"repo:read", "repo:write"}; !slices.Equal(token.GetScopes(), want) {
			t.Errorf("scopes = %q, want %q (sorted)", token.GetScopes(), want)
		}
		if token.GetStatus() != tokensv1.TokenStatus_TOKEN_STATUS_ACTIVE {
			t.Errorf("status = %v, want ACTIVE", token.GetStatus())
		}
		secret := first.GetSecret()
		if hint := token.GetDisplayHint(); len(secret) < 4 || !bytes.HasSuffix([]byte(hint), []byte(secret[len(secret)-4:])) {
			t.Errorf("display hint %q does not end with the secret's last four characters", hint)
		}
		created := token.GetCreatedAt().AsTime()
		if created.Before(before.Add(-time.Minute)) || created.After(time.Now().Add(time.Minute)) {
			t.Errorf("created_at = %v, want about %v", created, before)
		}
		if lifetime := token.GetExpiresAt().AsTime().Sub(created); lifetime < time.Hour-time.Second || lifetime > time.Hour+time.Second {
			t.Errorf("expires_at - created_at = %v, want 1h", lifetime)
		}
		if token.GetLastUsedAt() != nil || token.GetRevokedAt() != nil {
			t.Errorf("new token has last_used_at %v and revoked_at %v, want both unset", token.GetLastUsedAt(), token.GetRevokedAt())
		}
	})

	t.Run("List", func(t *testing.T) {
		response, err := admin.List(ctx, &tokensv1.ListRequest{Owner: owner})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var ids []string
		for _, token := range response.GetTokens() {
			ids = append(ids, token.GetId())
		}
		if want := []string{second.GetToken().GetId(), first.GetToken().GetId()}; !slices.Equal(ids, want) {
			t.Errorf("List ids = %q, want %q (newest first)", ids, want)
		}
		if response.GetNextPageToken() != "" {
			t.Errorf("next_page_token = %q on the last page, want empty", response.GetNextPageToken())
		}
	})

	t.Run("List pages", func(t *testing.T) {
		page1, err := admin.List(ctx, &tokensv1.ListRequest{Owner: owner, PageSize: 1})
		if err != nil {
			t.Fatalf("List page 1: %v", err)
		}
		if len(page1.GetTokens()) != 1 || page1.GetNextPageToken() == "" {
			t.Fatalf("page 1 has %d tokens and next_page_token %q, want 1 and a token", len(page1.GetTokens()), page1.GetNextPageToken())
		}
		page2, err := admin.List(ctx, &tokensv1.ListRequest{Owner: owner, PageSize: 1, PageToken: page1.GetNextPageToken()})
		if err != nil {
			t.Fatalf("List page 2: %v", err)
		}
		if len(page2.GetTokens()) != 1 || page2.GetTokens()[0].GetId() != first.GetToken().GetId() {
			t.Errorf("page 2 = %v, want only the first token", page2.GetTokens())
		}
	})

	t.Run("Validate", func(t *testing.T) {
		response, err := admin.Validate(ctx, first.GetSecret(), "repo:read")
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if !response.GetValid() || response.GetResult() != tokensv1.ValidateResult_VALIDATE_RESULT_VALID {
			t.Fatalf("Validate = valid %t result %v, want VALID", response.GetValid(), response.GetResult())
		}
		if response.GetToken().GetId() != first.GetToken().GetId() || response.GetToken().GetOwner() != owner {
			t.Errorf("Validate token = %v, want id %s owner %s", response.GetToken(), first.GetToken().GetId(), owner)
		}

		response, err = admin.Validate(ctx, first.GetSecret(), "admin:everything")
		if err != nil {
			t.Fatalf("Validate with a scope the token lacks: %v", err)
		}
		if response.GetValid() || response.GetResult() != tokensv1.ValidateResult_VALIDATE_RESULT_INSUFFICIENT_SCOPE {
			t.Errorf("Validate with a missing scope = valid %t result %v, want INSUFFICIENT_SCOPE", response.GetValid(), response.GetResult())
		}

		response, err = admin.Validate(ctx, "not a token")
		if err != nil {
			t.Fatalf("Validate with garbage: %v", err)
		}
		if response.GetValid() || response.GetResult() != tokensv1.ValidateResult_VALIDATE_RESULT_MALFORMED {
			t.Errorf("Validate with garbage = valid %t result %v, want MALFORMED", response.GetValid(), response.GetResult())
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		response, err := admin.Revoke(ctx, first.GetToken().GetId())
		if err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		revokedAt := response.GetToken().GetRevokedAt()
		if revokedAt == nil || response.GetToken().GetStatus() != tokensv1.TokenStatus_TOKEN_STATUS_REVOKED {
			t.Fatalf("Revoke returned revoked_at %v status %v, want a time and REVOKED", revokedAt, response.GetToken().GetStatus())
		}

		again, err := admin.Revoke(ctx, first.GetToken().GetId())
		if err != nil {
			t.Fatalf("second Revoke: %v", err)
		}
		if !again.GetToken().GetRevokedAt().AsTime().Equal(revokedAt.AsTime()) {
			t.Errorf("second Revoke revoked_at = %v, want the original %v", again.GetToken().GetRevokedAt().AsTime(), revokedAt.AsTime())
		}

		validation, err := admin.Validate(ctx, first.GetSecret())
		if err != nil {
			t.Fatalf("Validate after Revoke: %v", err)
		}
		if validation.GetValid() || validation.GetResult() != tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED {
			t.Errorf("Validate after Revoke = valid %t result %v, want REVOKED", validation.GetValid(), validation.GetResult())
		}

		listed, err := admin.List(ctx, &tokensv1.ListRequest{Owner: owner})
		if err != nil {
			t.Fatalf("List after Revoke: %v", err)
		}
		if len(listed.GetTokens()) != 1 || listed.GetTokens()[0].GetId() != second.GetToken().GetId() {
			t.Errorf("default List after Revoke = %v, want only the second token", listed.GetTokens())
		}
		withRevoked, err := admin.List(ctx, &tokensv1.ListRequest{Owner: owner, IncludeRevoked: true})
		if err != nil {
			t.Fatalf("List with include_revoked: %v", err)
		}
		if len(withRevoked.GetTokens()) != 2 {
			t.Errorf("List with include_revoked has %d tokens, want 2", len(withRevoked.GetTokens()))
		}

		_, err = admin.Revoke(ctx, "0190f5c2-0000-7000-8000-000000000000")
		if status.Code(err) != codes.NotFound {
			t.Errorf("Revoke of an unknown id: %v, want NotFound", err)
		}
	})

	t.Run("caller errors", func(t *testing.T) {
		plain := newClient(t, process.addr, second.GetSecret())
		_, err := plain.Validate(ctx, first.GetSecret())
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("Validate by a token without tokens:validate: %v, want PermissionDenied", err)
		}

		unknown := newClient(t, process.addr, "tkn_notarealtoken")
		_, err = unknown.List(ctx, &tokensv1.ListRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("List with an invalid caller token: %v, want Unauthenticated", err)
		}
	})
}

func TestUnicodeNameRoundTrip(t *testing.T) {
	process, adminToken := sharedTokend(t)
	admin := newClient(t, process.addr, adminToken.Secret)
	owner := uniqueOwner(t)

	// Precomposed é (U+00E9) and an emoji outside the Basic Multilingual
	// Plane, written as escapes so the bytes under test are unambiguous.
	name := "d\u00e9ploiement \U0001F680"
	generated := generate(t, admin, owner, name, time.Hour, "repo:read")
	if got := generated.GetToken().GetName(); !bytes.Equal([]byte(got), []byte(name)) {
		t.Errorf("Generate name bytes = % x, want % x", got, name)
	}

	listed, err := admin.List(context.Background(), &tokensv1.ListRequest{Owner: owner})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(listed.GetTokens()) != 1 {
		t.Fatalf("List returned %d tokens, want 1", len(listed.GetTokens()))
	}
	if got := listed.GetTokens()[0].GetName(); !bytes.Equal([]byte(got), []byte(name)) {
		t.Errorf("List name bytes = % x, want % x", got, name)
	}
}

// seenPrincipal is what the test handler writes back: the principal it
// found in its request context.
type seenPrincipal struct {
	Found     bool
	Principal tokend.Principal
}

// protectedServer serves a handler behind the middleware on a loopback
// port and counts the requests that reach the handler.
func protectedServer(t *testing.T, client *tokend.Client, requiredScopes ...string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	reached := new(atomic.Int64)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		principal, found := tokend.PrincipalFromContext(r.Context())
		json.NewEncoder(w).Encode(seenPrincipal{Found: found, Principal: principal})
	})
	server := httptest.NewServer(client.Middleware(handler, requiredScopes...))
	t.Cleanup(server.Close)
	return server, reached
}

func get(t *testing.T, url string, authorization ...string) *http.Response {
	t.Helper()
	request, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, value := range authorization {
		request.Header.Add("Authorization", value)
	}
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { response.Body.Close() })
	return response
}

func TestMiddlewareWithTokend(t *testing.T) {
	process, adminToken := sharedTokend(t)
	admin := newClient(t, process.addr, adminToken.Secret)
	owner := uniqueOwner(t)

	validator := generate(t, admin, "service-a", "middleware tests", time.Hour, "tokens:validate")
	service := newClient(t, process.addr, validator.GetSecret())
	server, reached := protectedServer(t, service, "repo:read")

	reader := generate(t, admin, owner, "reader", time.Hour, "repo:read", "repo:write")
	writer := generate(t, admin, owner, "writer only", time.Hour, "repo:write")
	revoked := generate(t, admin, owner, "revoked", time.Hour, "repo:read")
	if _, err := admin.Revoke(context.Background(), revoked.GetToken().GetId()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	expiring := generate(t, admin, owner, "expiring", time.Second, "repo:read")
	time.Sleep(1500 * time.Millisecond)

	t.Run("valid token", func(t *testing.T) {
		before := reached.Load()
		response := get(t, server.URL, "Bearer "+reader.GetSecret())
		if response.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", response.StatusCode)
		}
		var seen seenPrincipal
		if err := json.NewDecoder(response.Body).Decode(&seen); err != nil {
			t.Fatalf("decode handler output: %v", err)
		}
		if !seen.Found {
			t.Fatal("handler found no principal")
		}
		if seen.Principal.Owner != owner || seen.Principal.TokenID != reader.GetToken().GetId() || seen.Principal.Name != "reader" {
			t.Errorf("principal = %+v, want owner %s, token %s, name reader", seen.Principal, owner, reader.GetToken().GetId())
		}
		if !slices.Equal(seen.Principal.Scopes, []string{"repo:read", "repo:write"}) {
			t.Errorf("principal scopes = %q, want [repo:read repo:write]", seen.Principal.Scopes)
		}
		if !seen.Principal.ExpiresAt.Equal(reader.GetToken().GetExpiresAt().AsTime()) {
			t.Errorf("principal expiry = %v, want %v", seen.Principal.ExpiresAt, reader.GetToken().GetExpiresAt().AsTime())
		}
		if ran := reached.Load() - before; ran != 1 {
			t.Errorf("handler ran %d times, want once", ran)
		}
	})

	accepted := []struct {
		name          string
		authorization string
	}{
		{"lower-case scheme", "bearer " + reader.GetSecret()},
		{"upper-case scheme and spaces", "BEARER   " + reader.GetSecret()},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			if response := get(t, server.URL, tt.authorization); response.StatusCode != http.StatusOK {
				t.Errorf("status = %d, want 200", response.StatusCode)
			}
		})
	}

	// A well-formed secret with one changed letter in the random part.
	changed := []byte(reader.GetSecret())
	if middle := len(changed) / 2; changed[middle] == 'A' {
		changed[middle] = 'B'
	} else {
		changed[middle] = 'A'
	}

	rejected := []struct {
		name          string
		authorization []string
		wantStatus    int
		wantChallenge string
	}{
		{"missing header", nil, 401, `Bearer`},
		{"basic scheme", []string{"Basic dXNlcjpwYXNz"}, 401, `Bearer error="invalid_token", error_description="the authorization scheme is not Bearer"`},
		{"scheme without token", []string{"Bearer"}, 401, `Bearer error="invalid_token", error_description="the Bearer credential has no token"`},
		{"bare token", []string{reader.GetSecret()}, 401, `Bearer error="invalid_token", error_description="the authorization scheme is not Bearer"`},
		{"garbage token", []string{"Bearer tkn_garbage"}, 401, `Bearer error="invalid_token", error_description="the token is malformed"`},
		{"changed letter", []string{"Bearer " + string(changed)}, 401, `Bearer error="invalid_token"`},
		{"two headers", []string{"Bearer " + reader.GetSecret(), "Bearer " + reader.GetSecret()}, 400, `Bearer error="invalid_request", error_description="the request has more than one Authorization value"`},
		{"revoked token", []string{"Bearer " + revoked.GetSecret()}, 401, `Bearer error="invalid_token", error_description="the token was revoked"`},
		{"expired token", []string{"Bearer " + expiring.GetSecret()}, 401, `Bearer error="invalid_token", error_description="the token expired"`},
		{"insufficient scope", []string{"Bearer " + writer.GetSecret()}, 403, `Bearer error="insufficient_scope", error_description="the token lacks a required scope: repo:read", scope="repo:read"`},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			before := reached.Load()
			response := get(t, server.URL, tt.authorization...)
			if response.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", response.StatusCode, tt.wantStatus)
			}
			challenge := response.Header.Get("WWW-Authenticate")
			if tt.name == "changed letter" {
				// tokend returns MALFORMED when the checksum detects the
				// change and NOT_FOUND otherwise. Both are invalid_token.
				if !bytes.HasPrefix([]byte(challenge), []byte(tt.wantChallenge)) {
					t.Errorf("WWW-Authenticate = %q, want prefix %q", challenge, tt.wantChallenge)
				}
			} else if challenge != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", challenge, tt.wantChallenge)
			}
			if reached.Load() != before {
				t.Error("the handler ran for a rejected request")
			}
		})
	}
}

// principalRecorder stores the principal that a handler behind the tokend
// interceptor receives.
type principalRecorder struct {
	mu        sync.Mutex
	principal tokend.Principal
}

func (r *principalRecorder) get() tokend.Principal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.principal
}

func (r *principalRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.principal = tokend.Principal{}
}

// interceptor returns a unary interceptor, placed after the tokend one,
// that records the principal from the context it receives.
func (r *principalRecorder) interceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, request any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		principal, _ := tokend.PrincipalFromContext(ctx)
		r.mu.Lock()
		r.principal = principal
		r.mu.Unlock()
		return handler(ctx, request)
	}
}

// protectedGRPCServer serves grpc.health.v1 behind the tokend interceptors
// on a loopback port and returns a health client without credentials.
func protectedGRPCServer(t *testing.T, client *tokend.Client, seen *principalRecorder, requiredScopes ...string) healthpb.HealthClient {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	server := grpc.NewServer(
		grpc.ChainUnaryInterceptor(client.UnaryServerInterceptor(requiredScopes...), seen.interceptor()),
		grpc.ChainStreamInterceptor(client.StreamServerInterceptor(requiredScopes...)),
	)
	healthpb.RegisterHealthServer(server, health.NewServer())
	go server.Serve(listener)
	t.Cleanup(server.Stop)

	conn, err := grpc.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func withAuthorization(authorization string) context.Context {
	ctx := context.Background()
	if authorization == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
}

func TestInterceptorsWithTokend(t *testing.T) {
	process, adminToken := sharedTokend(t)
	admin := newClient(t, process.addr, adminToken.Secret)
	owner := uniqueOwner(t)

	validator := generate(t, admin, "service-b", "interceptor tests", time.Hour, "tokens:validate")
	service := newClient(t, process.addr, validator.GetSecret())
	seen := &principalRecorder{}
	health := protectedGRPCServer(t, service, seen, "repo:read")

	reader := generate(t, admin, owner, "reader", time.Hour, "repo:read")
	writer := generate(t, admin, owner, "writer only", time.Hour, "repo:write")
	revoked := generate(t, admin, owner, "revoked", time.Hour, "repo:read")
	if _, err := admin.Revoke(context.Background(), revoked.GetToken().GetId()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	tests := []struct {
		name          string
		authorization string
		want          codes.Code
	}{
		{"valid token", "Bearer " + reader.GetSecret(), codes.OK},
		{"lower-case scheme", "bearer " + reader.GetSecret(), codes.OK},
		{"missing metadata", "", codes.Unauthenticated},
		{"malformed value", "Token " + reader.GetSecret(), codes.Unauthenticated},
		{"garbage token", "Bearer tkn_garbage", codes.Unauthenticated},
		{"revoked token", "Bearer " + revoked.GetSecret(), codes.Unauthenticated},
		{"insufficient scope", "Bearer " + writer.GetSecret(), codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run("unary "+tt.name, func(t *testing.T) {
			seen.reset()
			_, err := health.Check(withAuthorization(tt.authorization), &healthpb.HealthCheckRequest{})
			if status.Code(err) != tt.want {
				t.Fatalf("Check: %v, want code %v", err, tt.want)
			}
			if principal := seen.get(); tt.want == codes.OK && (principal.Owner != owner || principal.TokenID != reader.GetToken().GetId()) {
				t.Errorf("handler principal = %+v, want owner %s token %s", principal, owner, reader.GetToken().GetId())
			}
		})

		t.Run("stream "+tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(withAuthorization(tt.authorization), 5*time.Second)
			defer cancel()
			stream, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			response, err := stream.Recv()
			if status.Code(err) != tt.want {
				t.Fatalf("Watch Recv: %v, want code %v", err, tt.want)
			}
			if tt.want == codes.OK && response.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Watch status = %v, want SERVING", response.GetStatus())
			}
		})
	}
}

func TestTokendStoppedMidTest(t *testing.T) {
	process, err := startTokend(testRoot)
	if err != nil {
		t.Fatalf("start tokend: %v", err)
	}
	t.Cleanup(process.stop)
	adminToken, err := process.createToken("admin", "stop test", "tokens:admin")
	if err != nil {
		t.Fatal(err)
	}
	admin := newClient(t, process.addr, adminToken.Secret)
	validator := generate(t, admin, "service-c", "stop test", time.Hour, "tokens:validate")
	user := generate(t, admin, "alice", "stop test", time.Hour, "repo:read")

	service := newClient(t, process.addr, validator.GetSecret())
	server, reached := protectedServer(t, service, "repo:read")
	health := protectedGRPCServer(t, service, &principalRecorder{}, "repo:read")
	authorization := "Bearer " + user.GetSecret()

	if response := get(t, server.URL, authorization); response.StatusCode != http.StatusOK {
		t.Fatalf("status before stop = %d, want 200", response.StatusCode)
	}
	if _, err := health.Check(withAuthorization(authorization), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check before stop: %v", err)
	}

	process.stop()
	before := reached.Load()

	if response := get(t, server.URL, authorization); response.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status after stop = %d, want 503", response.StatusCode)
	}
	if reached.Load() != before {
		t.Error("the handler ran while tokend was stopped")
	}
	if _, err := health.Check(withAuthorization(authorization), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("Check after stop: %v, want Unavailable", err)
	}
	stream, err := health.Watch(withAuthorization(authorization), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("Watch after stop: %v, want Unavailable", err)
	}
	if _, err := service.Validate(context.Background(), user.GetSecret(), "repo:read"); status.Code(err) != codes.Unavailable {
		t.Errorf("Validate after stop: %v, want Unavailable", err)
	}
}
