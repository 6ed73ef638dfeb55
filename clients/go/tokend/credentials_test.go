package tokend

import (
	"strings"
	"testing"
)

func TestIsLoopbackTarget(t *testing.T) {
	tests := []struct {
		target string
		want   bool
	}{
		{"127.0.0.1:50051", true},
		{"127.3.4.5:50051", true},
		{"localhost:50051", true},
		{"LOCALHOST:50051", true},
		{"[::1]:50051", true},
		{"localhost", true},
		{"dns:///127.0.0.1:50051", true},
		{"dns:///localhost:50051", true},
		{"passthrough:///127.0.0.1:50051", true},
		{"unix:///run/tokend.sock", true},
		{"unix:tokend.sock", true},
		{"tokend.internal:50051", false},
		{"dns:///tokend.internal:50051", false},
		{"10.0.0.1:50051", false},
		{"[2001:db8::1]:50051", false},
		{"0.0.0.0:50051", false},
		{"localhost.example.com:50051", false},
	}
	for _, tt := range tests {
		if got := isLoopbackTarget(tt.target); got != tt.want {
			t.Errorf("isLoopbackTarget(%q) = %t, want %t", tt.target, got, tt.want)
		}
	}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		options []Option
		wantErr string
	}{
		{"missing token", "127.0.0.1:1", []Option{WithInsecureLoopback()}, "missing token"},
		{"bearer prefix", "127.0.0.1:1", []Option{WithToken("Bearer tkn_x"), WithInsecureLoopback()}, "without the \"Bearer \" prefix"},
		{"space in token", "127.0.0.1:1", []Option{WithToken("tkn x"), WithInsecureLoopback()}, "whitespace"},
		{"insecure remote target", "tokend.internal:443", []Option{WithToken("tkn_x"), WithInsecureLoopback()}, "plaintext is allowed only"},
		{"zero timeout", "127.0.0.1:1", []Option{WithToken("tkn_x"), WithCallTimeout(0)}, "invalid call timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := New(tt.target, tt.options...)
			if err == nil {
				client.Close()
				t.Fatalf("New(%q) succeeded, want an error containing %q", tt.target, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New(%q) error = %q, want it to contain %q", tt.target, err, tt.wantErr)
			}
		})
	}
}

func TestBearerCredentialsRedactToken(t *testing.T) {
	credentials := bearerCredentials{token: "tkn_secret", requireTLS: true}
	if s := credentials.String(); strings.Contains(s, "tkn_secret") {
		t.Errorf("String() = %q, contains the token", s)
	}
}
