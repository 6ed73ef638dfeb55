package tokend

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBearer(t *testing.T) {
	token := "tkn_abcDEF0123456789"
	tests := []struct {
		name    string
		value   string
		want    string
		wantErr error
	}{
		{"canonical scheme", "Bearer " + token, token, nil},
		{"lower-case scheme", "bearer " + token, token, nil},
		{"upper-case scheme", "BEARER " + token, token, nil},
		{"several spaces", "Bearer    " + token, token, nil},
		{"surrounding whitespace", " \tBearer " + token + " \t", token, nil},
		{"b64token padding", "Bearer abc+/=", "abc+/=", nil},
		{"scheme only", "Bearer", "", errMissingToken},
		{"scheme and spaces", "Bearer   ", "", errMissingToken},
		{"empty value", "", "", errNotBearer},
		{"bare token", token, "", errNotBearer},
		{"basic scheme", "Basic dXNlcjpwYXNz", "", errNotBearer},
		{"tab after scheme", "Bearer\t" + token, "", errNotBearer},
		{"space inside token", "Bearer tkn_abc def", "", errTokenSyntax},
		{"quote inside token", `Bearer tkn_"abc"`, "", errTokenSyntax},
		{"non-ASCII token", "Bearer tkn_d\u00e9j\u00e0", "", errTokenSyntax},
		{"padding in the middle", "Bearer ab=c", "", errTokenSyntax},
		{"too long", "Bearer " + strings.Repeat("a", maxTokenLength+1), "", errTokenLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBearer(tt.value)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseBearer(%q) error = %v, want %v", tt.value, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseBearer(%q) = %q, want %q", tt.value, got, tt.want)
			}
		})
	}
}

func TestParseBearerMaxLength(t *testing.T) {
	token := strings.Repeat("a", maxTokenLength)
	got, err := parseBearer("Bearer " + token)
	if err != nil {
		t.Fatalf("parseBearer with a %d-character token: %v", maxTokenLength, err)
	}
	if got != token {
		t.Errorf("parseBearer returned %d characters, want %d", len(got), maxTokenLength)
	}
}

func TestMustCheckScopes(t *testing.T) {
	mustCheckScopes([]string{"repo:read", "a", "x.y_z-1"})

	for _, scope := range []string{"", "Repo:read", "repo read", `repo"`, "1repo", strings.Repeat("a", 65)} {
		t.Run(scope, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("mustCheckScopes(%q) did not panic", scope)
				}
			}()
			mustCheckScopes([]string{scope})
		})
	}
}
