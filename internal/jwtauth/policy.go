package jwtauth

import (
	"context"
	"sort"
	"strings"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
)

// DefaultTimeout is istiod's JWKS fetch timeout for a rule without one.
const DefaultTimeout = 5 * time.Second

// Policy is the request authentication of one workload: the jwtRules of
// every RequestAuthentication that applies to it, stable-sorted by issuer as
// istiod does (one Envoy provider per rule). A Policy is immutable and safe
// for concurrent use. The zero Policy, and a nil one, authenticate nothing
// and pass every request.
type Policy struct {
	providers []provider
}

type keyState uint8

const (
	keysOK         keyState = iota
	keysNone                // a JWKS without one usable key: Envoy's JwksNoValidKeys
	keysFailClosed          // istiod could not get the JWKS and inlined an unsignable key
)

// provider is one jwtRule as the Envoy provider "origins-<i>" istiod
// builds from it.
type provider struct {
	issuer         string
	source         string              // "namespace/name" of the RequestAuthentication
	audiences      map[string]struct{} // sanitized; nil means no audience check
	locs           []location
	sanitize       []string // headers Envoy deletes before extracting: payload and claim outputs
	forward        bool
	spaceDelimited []string
	keys           []verifyKey
	keyState       keyState
	keyErr         string
}

// New builds a Policy from the RequestAuthentications that apply to one
// workload, given in the order istiod lists them (the workload's namespace,
// then the root namespace, each oldest first): that order breaks ties
// between rules with the same issuer.
//
// keys provides the JWKS for rules that have a jwksUri or only an issuer
// (OIDC discovery); an inline jwks is parsed directly and wins over
// jwksUri, as in istiod. A rule whose keys cannot be obtained, including
// when keys is nil, fails closed as istiod's PublicOnlyJwks does: its
// tokens are rejected with 401 "Jwt verification fails" once they pass the
// time and audience checks, while requests without a token pass. A JWKS
// with no usable key gives "Jwks doesn't have any valid public key".
//
// A rule's presence field is ignored: istiod does not read it yet, so a
// REQUIRED rule still lets token-less requests through.
func New(ras []*config.Resource[*securityv1beta1.RequestAuthentication], keys KeySource) *Policy {
	type ruleRef struct {
		rule   *securityv1beta1.JWTRule
		source string
	}
	var refs []ruleRef
	for _, ra := range ras {
		if ra == nil || ra.Spec == nil {
			continue
		}
		for _, r := range ra.Spec.JwtRules {
			if r != nil { // validation skips nil rules; istiod would crash on one
				refs = append(refs, ruleRef{r, ra.Key()})
			}
		}
	}
	// istiod sorts with slices.SortFunc, which is stable for the short lists
	// (12 or fewer) that occur in practice; a stable sort is the intent.
	sort.SliceStable(refs, func(i, j int) bool { return refs[i].rule.Issuer < refs[j].rule.Issuer })

	p := &Policy{providers: make([]provider, len(refs))}
	for i, r := range refs {
		p.providers[i] = newProvider(r.rule, r.source, keys)
	}
	return p
}

func newProvider(r *securityv1beta1.JWTRule, source string, keys KeySource) provider {
	pr := provider{issuer: r.Issuer, source: source, forward: r.ForwardOriginalToken}
	if len(r.Audiences) > 0 {
		pr.audiences = make(map[string]struct{}, len(r.Audiences))
		for _, a := range r.Audiences {
			pr.audiences[sanitizeAudience(a)] = struct{}{}
		}
	}
	var headers []headerSpec
	for _, h := range r.FromHeaders {
		if h != nil {
			headers = append(headers, headerSpec{name: h.Name, prefix: h.Prefix})
		}
	}
	pr.locs = locations(headers, r.FromParams, r.FromCookies)
	if r.OutputPayloadToHeader != "" {
		pr.sanitize = append(pr.sanitize, asciiLower(r.OutputPayloadToHeader))
	}
	for _, c := range r.OutputClaimToHeaders {
		if c != nil && c.Header != "" {
			pr.sanitize = append(pr.sanitize, asciiLower(c.Header))
		}
	}
	// istiod always adds the two defaults to the rule's own list.
	pr.spaceDelimited = sortedUnique(append([]string{"permission", "scope"}, r.SpaceDelimitedClaims...))

	timeout := DefaultTimeout
	if r.Timeout != nil {
		timeout = r.Timeout.AsDuration()
	}
	switch {
	case r.Jwks != "":
		set, err := ParseJWKS([]byte(r.Jwks))
		if err != nil {
			pr.keyState, pr.keyErr = keysNone, "inline jwks: "+err.Error()
			break
		}
		pr.setKeys(keysFromSet(set), "inline jwks")
	case keys == nil:
		pr.keyState, pr.keyErr = keysFailClosed, "no JWKS source to fetch "+describeKeys(r)
	default:
		set, err := keys.JWKS(context.Background(), r.Issuer, r.JwksUri, timeout)
		if err != nil {
			pr.keyState, pr.keyErr = keysFailClosed, err.Error()
			break
		}
		pr.setKeys(keysFromSet(set), "JWKS of "+describeKeys(r))
	}
	return pr
}

func (pr *provider) setKeys(keys []verifyKey, what string) {
	pr.keys = keys
	if len(keys) == 0 {
		pr.keyState, pr.keyErr = keysNone, what+" has no usable key"
	}
}

func describeKeys(r *securityv1beta1.JWTRule) string {
	if r.JwksUri != "" {
		return r.JwksUri
	}
	return "issuer " + r.Issuer
}

// KeyProblems describes every rule whose keys are unusable, as
// "namespace/name issuer <iss>: <why>". Istio rejects every token for such
// a rule, so this is worth a warning.
func (p *Policy) KeyProblems() []string {
	if p == nil {
		return nil
	}
	var out []string
	for i := range p.providers {
		if pr := &p.providers[i]; pr.keyState != keysOK {
			out = append(out, pr.source+" issuer "+pr.issuer+": "+pr.keyErr)
		}
	}
	return out
}

// Result of authenticating one request.
type Result struct {
	// Status is 0 when the request passes authentication (a valid token, or
	// none at any location a rule looks at); otherwise 401, or 403 for an
	// audience mismatch.
	Status int
	// Claims is the payload of the accepted token, with the space-delimited
	// claims (scope, permission and each rule's spaceDelimitedClaims; top
	// level only, as Envoy looks them up) split on ' ' into []any. Nil when
	// no token was accepted.
	Claims authz.Claims
	// Detail is Envoy's status string, e.g. "Jwt is expired", "Jwt is
	// missing", "Jwt issuer is not configured"; "" when a token passed.
	Detail string
	// Issuer is the issuer of the rule that accepted or rejected the token.
	Issuer string
	// Source is "namespace/name" of the RequestAuthentication of that rule.
	Source string
	// Forward is forwardOriginalToken of the accepting rule: when false the
	// sidecar strips the token's header before forwarding.
	Forward bool
	// Token is where the token was found, e.g. "header Authorization",
	// "query access_token", "cookie session".
	Token string
	// KeyError explains a rejection that came from the rule's keys (the
	// Detail is then "Jwt verification fails" or "Jwks doesn't have any
	// valid public key") when those keys could not be obtained or were
	// unusable, e.g. the fetch error.
	KeyError string
}

// outcome is one verifier's status and what it is attributed to.
type outcome struct {
	st   status
	prov int
	loc  *location
}

// evaluation is the state of one Authenticate call.
type evaluation struct {
	p   *Policy
	req request
	now uint64
	buf [4]extracted

	// The payload of the last token any provider accepted: Envoy writes
	// each accepted payload to the same metadata key, so the last wins.
	payload     map[string]any
	payloadProv int
	payloadLoc  *location
}

// Authenticate decides a request: h holds its headers (lowercase names,
// with ":method" and ":path"), rawQuery the query string without '?', and
// now is the time tokens are checked against (seconds, 60s skew).
//
// It reproduces the requirement istiod configures, evaluated the way
// Envoy's verifiers do:
//
//	one rule:   requires_any{origins-0, allow_missing}
//	N rules:    requires_any{origins-0, …, origins-N-1,
//	              requires_all{requires_any{origins-i, allow_missing}…}}
//
// A failed requires_any reports, among its children's errors, the last
// that is neither "Jwt is missing" nor "Jwt issuer is not configured";
// failing that, the first "not configured"; only then "missing", which
// allow_missing turns into a pass.
func (p *Policy) Authenticate(h authz.Headers, rawQuery string, now time.Time) Result {
	if p == nil || len(p.providers) == 0 {
		return Result{}
	}
	if isCORSPreflight(h) || !routeMatches(h) {
		return Result{}
	}
	e := &evaluation{p: p, req: request{h: h, rawQuery: rawQuery}, payloadProv: -1}
	if now.Unix() > 0 {
		e.now = uint64(now.Unix())
	}

	n := len(p.providers)
	var direct [8]outcome
	outs := direct[:0]
	for i := 0; i < n; i++ {
		o := e.verifyProvider(i)
		if o.st == statusOK {
			return e.pass()
		}
		outs = append(outs, o)
	}
	if n == 1 {
		if final := aggregate(outs); final.st != statusMissed {
			return e.fail(final)
		}
		return e.pass()
	}
	// The requires_all branch re-runs every provider, each allowed to find
	// nothing. It only matters when no provider accepted a token; it then
	// passes exactly when every provider found nothing.
	all := outcome{st: statusOK}
	for i := 0; i < n; i++ {
		o := e.verifyProvider(i)
		if o.st != statusOK && o.st != statusMissed {
			all = o
			break
		}
	}
	if all.st == statusOK {
		return e.pass()
	}
	return e.fail(aggregate(append(outs, all)))
}

// aggregate is AnyVerifierImpl's choice among failed children.
func aggregate(outs []outcome) outcome {
	final := outcome{st: statusMissed, prov: -1}
	for _, o := range outs {
		if (o.st != statusMissed && o.st != statusUnknownIssuer) || final.st == statusMissed {
			final = o
		}
	}
	return final
}

// verifyProvider is one provider verifier: extract every token at its
// locations; each one must verify, checked from the last extracted back.
func (e *evaluation) verifyProvider(i int) outcome {
	pr := &e.p.providers[i]
	for _, name := range pr.sanitize {
		e.req.remove(name)
	}
	toks := e.req.extract(pr.locs, e.buf[:0])
	if len(toks) == 0 {
		return outcome{st: statusMissed, prov: i}
	}
	for k := len(toks) - 1; k >= 0; k-- {
		tok := toks[k]
		st, t := e.verifyToken(pr, tok.value)
		if st != statusOK {
			return outcome{st: st, prov: i, loc: tok.loc}
		}
		if !pr.forward && tok.loc.kind == 'h' {
			// Envoy strips a header token once accepted; query and cookie
			// tokens stay.
			e.req.remove(tok.loc.name)
		}
		e.payload, e.payloadProv, e.payloadLoc = t.payload, i, tok.loc
	}
	return outcome{st: statusOK, prov: i, loc: toks[0].loc}
}

// verifyToken checks one token in Envoy's order: parse, issuer, time,
// audience, then keys and signature.
func (e *evaluation) verifyToken(pr *provider, raw string) (status, *token) {
	t, st := parseToken(raw)
	if st != statusOK {
		return st, nil
	}
	if pr.issuer != "" && t.iss != pr.issuer {
		return statusUnknownIssuer, nil
	}
	if st = t.checkTime(e.now); st != statusOK {
		return st, nil
	}
	if pr.audiences != nil {
		allowed := false
		for _, a := range t.aud {
			if _, ok := pr.audiences[sanitizeAudience(a)]; ok {
				allowed = true
				break
			}
		}
		if !allowed {
			return statusAudienceNotAllowed, nil
		}
	}
	switch pr.keyState {
	case keysNone:
		return statusJwksNoValidKeys, nil
	case keysFailClosed:
		// istiod's PublicOnlyJwks is one RSA key with neither kid nor alg,
		// so it always passes the kid/alg filter and never verifies.
		return statusVerificationFail, nil
	}
	if st = verifySignature(t, pr.keys); st != statusOK {
		return st, nil
	}
	return statusOK, t
}

func (e *evaluation) pass() Result {
	if e.payload == nil {
		return Result{}
	}
	pr := &e.p.providers[e.payloadProv]
	normalizePayload(e.payload, pr.spaceDelimited)
	return Result{
		Claims:  authz.Claims(e.payload),
		Issuer:  pr.issuer,
		Source:  pr.source,
		Forward: pr.forward,
		Token:   e.payloadLoc.label,
	}
}

func (e *evaluation) fail(o outcome) Result {
	r := Result{Status: o.st.httpStatus(), Detail: o.st.String()}
	if o.prov >= 0 {
		pr := &e.p.providers[o.prov]
		r.Issuer, r.Source = pr.issuer, pr.source
		switch o.st {
		case statusVerificationFail, statusJwksNoValidKeys, statusJwksKidAlgMismatch:
			r.KeyError = pr.keyErr
		}
	}
	if o.loc != nil {
		r.Token = o.loc.label
	}
	return r
}

// normalizePayload splits the top-level string claims Envoy treats as
// space-delimited into lists, on ' ' only, dropping empty pieces. A value
// with no piece at all (empty or only spaces) stays a string, as in Envoy,
// which builds the list one element at a time.
func normalizePayload(p map[string]any, claims []string) {
	for _, c := range claims {
		s, ok := p[c].(string)
		if !ok {
			continue
		}
		var list []any
		for _, part := range strings.Split(s, " ") {
			if part != "" {
				list = append(list, part)
			}
		}
		if list != nil {
			p[c] = list
		}
	}
}

// isCORSPreflight is Envoy's test for the requests istiod's
// bypass_cors_preflight lets through unauthenticated: OPTIONS with a
// non-empty Origin and Access-Control-Request-Method.
func isCORSPreflight(h authz.Headers) bool {
	if m, _ := h.Get(":method"); m != "OPTIONS" {
		return false
	}
	origin, _ := h.Get("origin")
	method, _ := h.Get("access-control-request-method")
	return origin != "" && method != ""
}

// routeMatches is the rule istiod attaches the requirement to: path prefix
// "/". A request whose :path does not start with '/' (OPTIONS *) matches no
// rule, and Envoy then checks nothing.
func routeMatches(h authz.Headers) bool {
	path, ok := h.Get(":path")
	return !ok || strings.HasPrefix(path, "/")
}
