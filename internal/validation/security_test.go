package validation

import (
	"errors"
	"strings"
	"testing"
)

// TestAttribute ports istio pkg/config/security/security_test.go
// TestValidateCondition (every row, in order) plus message rows.
func TestAttribute(t *testing.T) {
	rows := []struct {
		key     string
		values  []string
		wantErr string // "" means valid; "*" means any error
	}{
		// istio security_test.go TestValidateCondition rows:
		{"request.headers[:authority]", []string{"productpage", ""}, "empty value not allowed, found in request.headers[:authority]"},
		{"request.headers[:authority]", []string{"productpage"}, ""},
		{"request.headers[]", []string{"productpage"}, "bad key (request.headers[]): should have format a[b]"},
		{"source.ip", []string{"1.2.3.4", "5.6.7.0/24"}, ""},
		{"source.ip", []string{"a.b.c.d"}, "bad IP address (a.b.c.d)"},
		{"remote.ip", []string{"1.2.3.4", "5.6.7.0/24"}, ""},
		{"remote.ip", []string{"a.b.c.d"}, "bad IP address (a.b.c.d)"},
		{"source.namespace", []string{"value"}, ""},
		{"source.user", []string{"value"}, "unknown attribute: source.user"},
		{"source.principal", []string{"value"}, ""},
		{"source.serviceAccount", []string{"too/many/slashes"}, `expected format 'serviceAccount' or 'namespace/serviceAccount', found "too/many/slashes" in source.serviceAccount`},
		{"source.serviceAccount", []string{"/emptyns"}, `expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace "/emptyns" in source.serviceAccount`},
		{"source.serviceAccount", []string{"emptysa/"}, `expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount "emptysa/" in source.serviceAccount`},
		{"source.serviceAccount", []string{"ns/sa"}, ""},
		{"source.serviceAccount", []string{"sa"}, ""},
		{"source.trustDomain", []string{"cluster.local"}, ""},
		{"source.trustDomain", []string{"*"}, ""},
		{"source.trustDomain", []string{"foo*"}, ""},
		{"source.trustDomain", []string{"*bar"}, ""},
		{"source.trustDomain", []string{"fo*-bar"}, `wildcard is only allowed at the start or end, found in source.trustDomain: "fo*-bar"`},
		{"source.trustDomain", []string{"fo*bar*"}, `at most one wildcard is allowed, found in source.trustDomain: "fo*bar*"`},
		{"source.trustDomain", []string{""}, "empty value not allowed, found in source.trustDomain"},
		{"request.auth.principal", []string{"value"}, ""},
		{"request.auth.audiences", []string{"value"}, ""},
		{"request.auth.presenter", []string{"value"}, ""},
		{"request.auth.claims[id]", []string{"123"}, ""},
		{"request.auth.claims[]", []string{"value"}, "bad key (request.auth.claims[]): should have format a[b]"},
		{"destination.ip", []string{"1.2.3.4", "5.6.7.0/24"}, ""},
		{"destination.ip", []string{"a.b.c.d"}, "bad IP address (a.b.c.d)"},
		{"destination.port", []string{"80", "90"}, ""},
		{"destination.port", []string{"80", "x"}, `bad port (x): strconv.ParseUint: parsing "x": invalid syntax`},
		{"destination.labels[app]", []string{"value"}, "attribute destination.labels[app] is replaced by the workload selector"},
		{"destination.name", []string{"value"}, "deprecated attribute destination.name: only supported in v1alpha1"},
		{"destination.namespace", []string{"value"}, "attribute destination.namespace is replaced by the metadata.namespace"},
		{"destination.user", []string{"value"}, "deprecated attribute destination.user: only supported in v1alpha1"},
		{"connection.sni", []string{"value"}, ""},
		{"experimental.envoy.filters.a.b[c]", []string{"value"}, ""},
		{"experimental.envoy.filters.a.b.x", []string{"value"}, "bad key (experimental.envoy.filters.a.b.x): should have format a[b]"},
		// security.go ValidateAttribute: the prefix match admits odd keys, the
		// map-key check needs a non-empty name, and service accounts have no wildcards.
		{"request.headersX[y]", []string{"v"}, ""},
		{"request.auth.claims[a][b]", []string{"v"}, ""},
		{"request.auth.claims[a]", nil, ""},
		{"source.serviceAccount", []string{"ns/*"}, "wildcard not allowed, found in source.serviceAccount"},
		{"destination.port", []string{"0"}, ""},
		{"destination.labels", []string{"v"}, "attribute destination.labels is replaced by the workload selector"},
		{"unknown", nil, "unknown attribute: unknown"},
	}
	for _, row := range rows {
		err := Attribute(row.key, row.values)
		switch {
		case row.wantErr == "" && err != nil:
			t.Errorf("Attribute(%q, %q) = %v, want nil", row.key, row.values, err)
		case row.wantErr != "" && err == nil:
			t.Errorf("Attribute(%q, %q) = nil, want %q", row.key, row.values, row.wantErr)
		case row.wantErr != "" && err.Error() != row.wantErr:
			t.Errorf("Attribute(%q, %q) = %q, want %q", row.key, row.values, err, row.wantErr)
		}
	}
}

// TestAttributeSeveral checks that several problems come back joined, one
// error each, as istiod's multierror would list them.
func TestAttributeSeveral(t *testing.T) {
	err := Attribute("source.ip", []string{"x", "1.2.3.4", "y"})
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Fatalf("want two joined errors, got %v", err)
	}
	if got := joined.Unwrap()[1].Error(); got != "bad IP address (y)" {
		t.Errorf("second error = %q", got)
	}
}

// TestCheckWildcardValues ports istio security_test.go TestCheckWildcardValues.
func TestCheckWildcardValues(t *testing.T) {
	for _, row := range []struct {
		name    string
		values  []string
		wantErr bool
	}{
		{"exact", []string{"foo"}, false},
		{"presence", []string{"*"}, false},
		{"prefix", []string{"foo*"}, false},
		{"suffix", []string{"*foo"}, false},
		{"empty", []string{""}, true},
		{"middle wildcard", []string{"fo*-bar"}, true},
		{"multiple wildcards", []string{"fo*bar*"}, true},
	} {
		if got := checkWildcardValues("key", row.values) != nil; got != row.wantErr {
			t.Errorf("%s: error = %v, want %v", row.name, got, row.wantErr)
		}
	}
}

// TestCheckTrustDomainValues ports istio security_test.go TestCheckTrustDomainValues.
func TestCheckTrustDomainValues(t *testing.T) {
	for _, row := range []struct {
		name    string
		values  []string
		wantErr bool
	}{
		{"exact", []string{"cluster.local"}, false},
		{"presence wildcard", []string{"*"}, false},
		{"prefix wildcard", []string{"cluster-*"}, false},
		{"suffix wildcard", []string{"*-cluster"}, false},
		{"empty", []string{""}, true},
		{"slash", []string{"cluster.local/ns/foo"}, true},
		{"spiffe uri", []string{"spiffe://cluster.local"}, true},
	} {
		if got := checkTrustDomainValues("key", row.values) != nil; got != row.wantErr {
			t.Errorf("%s: error = %v, want %v", row.name, got, row.wantErr)
		}
	}
}

// TestPathTemplate ports istio security_test.go TestCheckValidPathTemplate
// (every row) and adds message rows.
func TestPathTemplate(t *testing.T) {
	for _, row := range []struct {
		name, path string
		wantErr    string // "" valid, "*" any error
	}{
		{"valid path template - matchOneTemplate", "/{*}/foo", ""},
		{"valid path template - matchOneTemplate with trailing slash", "/{*}/foo/", ""},
		{"valid path template - matchAnyTemplate", "/foo/{**}/bar", ""},
		{"valid path template - matchAnyTemplate at end", "/foo/bar/{**}", ""},
		{"unsupported path template - matchAnyTemplate with additional chars", "/foo/{**}buzz/bar",
			"invalid or unsupported path foo/{**}buzz/bar, found in Paths. Contains '{' or '}' beyond a supported path template"},
		{"unsupported path template - empty curly braces", "/{*}/foo/{}/bar", "*"},
		{"unsupported path template - matchOneTemplate with `*`", "/foo/{*}/bar/*",
			"invalid or unsupported path foo/{*}/bar/*, found in Paths. Contains segment * with invalid string literal"},
		{"unsupported path template - matchOneTemplate with `**`", "/foo/{*}/bar/**/buzz", "*"},
		{"unsupported path/path template - named var: {buzz}", "/foo/{buzz}/bar", "*"},
		{"unsupported path/path template - only named var: {buzz}", "/{buzz}", "*"},
		{"unsupported path template - matchAnyTemplate with named var: {buzz}", "/foo/{buzz}/bar/{**}", "*"},
		{"unsupported path template - matchAnyTemplate with named var: {buzz=*}", "/foo/{buzz=*}/bar/{**}", "*"},
		{"unsupported path template - matchAnyTemplate with named var: {buzz=**}", "/{*}/foo/{buzz=**}/bar", "*"},
		{"unsupported path template - matchAnyTemplate with additional chars at end", "/{*}/foo/{**}bar", "*"},
		{"unsupported path template - matchOneTemplate with file extension", "/{*}/foo/{*}.txt", "*"},
		{"unsupported path template - matchOneTemplate with unmatched open curly brace", "/{*}/foo/{temp", "*"},
		{"unsupported path template - matchOneTemplate with unmatched closed curly brace", "/{*}/foo/temp}/bar", "*"},
		{"unsupported path template - matchOneTemplate with unmatched closed curly brace and `*`", "/{*}/foo/temp}/*", "*"},
		{"unsupported path template - matchAnyTemplate is not the last operator in the template", "/{**}/foo/temp/{*}/bar",
			"invalid or unsupported path {**}/foo/temp/{*}/bar, found in Paths. {**} is not the last operator"},
		{"unsupported path template - simple multiple matchAnyTemplates", "/{**}/{**}", "*"},
		{"unsupported path template - multiple matchAnyTemplates", "/{**}/foo/temp/{**}/bar", "*"},
		{"unsupported path template - invalid literal in path template", "/{*}/foo/?abc",
			"invalid or unsupported path {*}/foo/?abc, found in Paths. Contains segment ?abc with invalid string literal"},
		// security.go CheckValidPathTemplate: non-template paths get only the
		// brace check, and an empty segment in a template is not a literal.
		{"non-template star accepted", "/a*b", ""},
		{"non-template brace rejected", "/a{b",
			"invalid or unsupported path a{b, found in Paths. Contains '{' or '}' beyond a supported path template"},
		{"template double slash", "/{*}//a", "invalid or unsupported path {*}//a, found in Paths. Contains segment  with invalid string literal"},
		{"root path", "/", ""},
	} {
		err := PathTemplate(row.path)
		switch {
		case row.wantErr == "" && err != nil:
			t.Errorf("%s: PathTemplate(%q) = %v, want nil", row.name, row.path, err)
		case row.wantErr != "" && err == nil:
			t.Errorf("%s: PathTemplate(%q) = nil, want error", row.name, row.path)
		case row.wantErr != "" && row.wantErr != "*" && err.Error() != row.wantErr:
			t.Errorf("%s: PathTemplate(%q) = %q, want %q", row.name, row.path, err, row.wantErr)
		}
	}
}

// TestIsValidLiteral ports istio security_test.go TestIsValidLiteral.
func TestIsValidLiteral(t *testing.T) {
	for _, row := range []struct {
		glob string
		want bool
	}{
		{"123abcABC", true},
		{"._~-", true},
		{"a=c", true},
		{"-._~%20!$&'()+,;:@", true},
		{"`~!@#$%^&()-_+;:,<.>'\"\\| ", false},
		{"abc/", false},
		{"ab*c", false},
		{"*", false},
		{"ab**c", false},
		{"**", false},
		{"?abc", false},
		{"?a=c", false},
		{"{abc", false},
		{"abc}", false},
		{"{abc}", false},
		{"", false}, // the regexp needs at least one character
	} {
		if got := isValidLiteral(row.glob); got != row.want {
			t.Errorf("isValidLiteral(%q) = %v, want %v", row.glob, got, row.want)
		}
	}
}

// TestParseJwksURI ports the error half of istio security_test.go
// TestParseJwksURI.
func TestParseJwksURI(t *testing.T) {
	for _, row := range []struct {
		uri     string
		wantErr string // "" valid
	}{
		{"foo.bar.com", `URI scheme "" is not supported`},
		{"tcp://foo.bar.com:abc", `parse "tcp://foo.bar.com:abc": invalid port ":abc" after host`},
		{"http://foo.bar.com:abc", `parse "http://foo.bar.com:abc": invalid port ":abc" after host`},
		{"http://foo.bar.com", ""},
		{"https://foo.bar.com", ""},
		{"http://foo.bar.com:1234", ""},
		{"https://foo.bar.com:1234/secure/key", ""},
		// url.Parse lower-cases the scheme.
		{"HTTPS://foo.bar.com", ""},
		{"ftp://foo.bar.com", `URI scheme "ftp" is not supported`},
		{"http://foo.bar.com:99999999999999999999", `strconv.Atoi: parsing "99999999999999999999": value out of range`},
	} {
		err := parseJwksURI(row.uri)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != row.wantErr {
			t.Errorf("parseJwksURI(%q) = %q, want %q", row.uri, got, row.wantErr)
		}
	}
}

// TestCheckServiceAccountLimits covers CheckServiceAccount's count and
// length limits.
func TestCheckServiceAccountLimits(t *testing.T) {
	many := strings.Split(strings.Repeat("a,", 16)+"a", ",")
	if f := checkServiceAccount("k", many); len(f) != 1 || f[0].index != -1 || f[0].msg != "may not have more than 16 values" {
		t.Errorf("17 values: %v", f)
	}
	if f := checkServiceAccount("k", many[:16]); f != nil {
		t.Errorf("16 values: %v", f)
	}
	if f := checkServiceAccount("k", []string{strings.Repeat("x", 320)}); f != nil {
		t.Errorf("320 chars: %v", f)
	}
	if f := checkServiceAccount("k", []string{strings.Repeat("x", 321)}); len(f) != 1 {
		t.Errorf("321 chars: %v", f)
	}
}
