package cilium

import (
	"strings"
	"testing"
)

// TestFQDNPatternRegexp checks the generated expressions against
// matchpattern_test.go TestAnchoredMatchPatternREConversion, plus the
// Cilium >= 1.19 "**." prefix (matchpattern.go dnsWildcardREGroup).
func TestFQDNPatternRegexp(t *testing.T) {
	for _, c := range []struct{ canonical, want string }{
		{"cilium.io.", "^cilium[.]io[.]$"},
		{"*.cilium.io.", "^" + dnsChars + "*[.]cilium[.]io[.]$"},
		{"*", "(^(" + dnsChars + "+[.])+$)|(^[.]$)"},
		{".", "^[.]$"},
		{"**.cilium.io.", "^" + multiLabelGroup + "cilium[.]io[.]$"},
		{"***.cilium.io.", "^" + multiLabelGroup + "cilium[.]io[.]$"},
		{"a**b.", "^a" + dnsChars + "*b[.]$"}, // runs of stars collapse
		{"**foo.io.", "^" + dnsChars + "*foo[.]io[.]$"},
		{"CiLiUm.IO.", "^cilium[.]io[.]$"},
	} {
		if got := fqdnPatternRegexp(c.canonical); got != c.want {
			t.Errorf("fqdnPatternRegexp(%q) = %q, want %q", c.canonical, got, c.want)
		}
	}
}

// TestCanonicalPattern is matchpattern_test.go TestMatchPatternSanitize.
func TestCanonicalPattern(t *testing.T) {
	for src, want := range map[string]string{"*": "*", "*.": "*.", "**": "**", "*.com": "*.com.", "cilium.io.": "cilium.io."} {
		if got := canonicalPattern(src); got != want {
			t.Errorf("canonicalPattern(%q) = %q, want %q", src, got, want)
		}
	}
}

// TestCompileFQDNPattern checks matching behaviour. Names are given in
// canonical form (lower case, trailing dot), as Cilium matches them.
func TestCompileFQDNPattern(t *testing.T) {
	for _, c := range []struct {
		src            string // upstream source of the row
		pattern        string
		accept, reject []string
	}{
		{"matchpattern_test.go TestAnchoredMatchPatternMatching", "cilium.io.",
			[]string{"cilium.io."}, []string{"", "anysub.cilium.io.", "anysub.ci.io.", "anysub.ciliumandmore.io."}},
		{"matchpattern_test.go TestAnchoredMatchPatternMatching", "*.cilium.io.",
			[]string{"anysub.cilium.io."}, []string{"", "cilium.io.", "anysub.ci.io.", "anysub.ciliumandmore.io."}},
		{"matchpattern_test.go TestAnchoredMatchPatternMatching", "*.ci*.io.",
			[]string{"anysub.cilium.io.", "anysub.ci.io.", "anysub.ciliumandmore.io."}, []string{"", "cilium.io."}},
		{"matchpattern_test.go TestAnchoredMatchPatternMatching", "*",
			[]string{".", "io.", "cilium.io.", "svc.cluster.local.", "service.namesace.svc.cluster.local.", "_foobar._tcp.cilium.io."},
			[]string{"", ".io.", ".cilium.io.", ".svc.cluster.local.", "cilium.io"}},
		{"matchpattern_test.go TestAnchoredMatchPatternMatching", ".",
			[]string{"."}, []string{"", ".io.", ".cilium.io"}},
		{"matchpattern_test.go TestAnchoredMatchPatternMatching (SRV)", "_foobar._tcp.cilium.io.",
			[]string{"_foobar._tcp.cilium.io."}, []string{"", "_tcp.cilium.io.", "cilium.io."}},
		{"matchpattern_test.go TestAnchoredMatchPatternMatching (SRV)", "*.*.cilium.io.",
			[]string{"_foobar._tcp.cilium.io."}, []string{""}},
		{"CRD matchPattern example 1", "*.cilium.io",
			[]string{"www.cilium.io.", "blog.cilium.io."}, []string{"cilium.io.", "google.com.", "a.b.cilium.io."}},
		{"CRD matchPattern example 2", "*cilium.io",
			[]string{"cilium.io.", "subcilium.io.", "sub-cilium.io."}, []string{"www.cilium.io.", "blog.cilium.io."}},
		{"CRD matchPattern example 3", "sub*.cilium.io",
			[]string{"sub.cilium.io.", "subdomain.cilium.io."}, []string{"www.cilium.io.", "blog.cilium.io.", "cilium.io.", "google.com."}},
		{"CRD matchPattern example 4 (Cilium >= 1.19)", "**.cilium.io",
			[]string{"app.cilium.io.", "test.app.cilium.io.", "a.b.c.d.cilium.io."}, []string{"cilium.io.", ".cilium.io.", "xcilium.io."}},
		{"matchpattern.go isDNSWildcard: **, *. and **. match all", "**.",
			[]string{"cilium.io.", "."}, []string{""}},
		{"matchpattern.go ToAnchoredRegexp lower-cases the pattern", "*.CILIUM.io",
			[]string{"www.cilium.io."}, []string{"www.CILIUM.io."}},
	} {
		re, err := CompileFQDNPattern(c.pattern)
		if err != nil {
			t.Errorf("[%s] CompileFQDNPattern(%q): %v", c.src, c.pattern, err)
			continue
		}
		for _, n := range c.accept {
			if !re.MatchString(n) {
				t.Errorf("[%s] %q (%s) rejects %q", c.src, c.pattern, re, n)
			}
		}
		for _, n := range c.reject {
			if re.MatchString(n) {
				t.Errorf("[%s] %q (%s) accepts %q", c.src, c.pattern, re, n)
			}
		}
	}
}

// TestCompileFQDNPatternErrors is matchpattern.go prevalidate.
func TestCompileFQDNPatternErrors(t *testing.T) {
	for _, p := range []string{"exa mple.com", "a/b", "é.com", "a$", "(a)", strings.Repeat("a", 256)} {
		if _, err := CompileFQDNPattern(p); err == nil {
			t.Errorf("CompileFQDNPattern(%q) succeeded", p)
		}
	}
	if _, err := CompileFQDNPattern(strings.Repeat("a", 255)); err != nil {
		t.Errorf("255 characters: %v", err)
	}
}

// TestMatchName checks matchName normalisation (fqdn.go ToRegex:
// dns.FQDN then matchpattern.Validate, which lower-cases).
func TestMatchName(t *testing.T) {
	for in, want := range map[string]string{"Cilium.IO": "cilium.io.", "cilium.io.": "cilium.io.", " api.example.com ": "api.example.com.", "": "."} {
		if got := NormalizeMatchName(in); got != want {
			t.Errorf("NormalizeMatchName(%q) = %q, want %q", in, got, want)
		}
	}
	re, err := CompileFQDNMatchName("API.Stripe.com")
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]bool{
		NormalizeMatchName("api.stripe.com"): true,
		NormalizeMatchName("API.STRIPE.COM"): true,
		"apixstripe.com.":                    false, // dots are literal
		"www.api.stripe.com.":                false, // exact match only
		"api.stripe.com":                     false, // names are matched in canonical form
	} {
		if re.MatchString(n) != want {
			t.Errorf("matchName api.stripe.com vs %q: got %v", n, !want)
		}
	}
	for _, bad := range []string{"*.example.com", "a b", strings.Repeat("a", 256)} {
		if _, err := CompileFQDNMatchName(bad); err == nil {
			t.Errorf("CompileFQDNMatchName(%q) succeeded", bad)
		}
	}
}
