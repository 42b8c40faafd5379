package authz

import (
	"fmt"
	"sort"
)

// ProviderKind is the kind of a mesh extension provider that CUSTOM
// policies name.
type ProviderKind uint8

// The extension provider kinds that matter for CUSTOM policies. Only
// ext_authz providers can authorize; any other kind named by a CUSTOM
// policy is treated by istiod as missing.
const (
	ProviderOther ProviderKind = iota
	ProviderExtAuthzHTTP
	ProviderExtAuthzGRPC
)

// Reason says how a decision was reached.
type Reason uint8

// The reasons, named for what decided.
const (
	AllowedNoAllowPolicy Reason = iota // no enforced ALLOW policy selects the workload
	AllowedByRule                      // an ALLOW rule matched
	DeniedByRule                       // a DENY rule matched
	DeniedNoAllowMatch                 // ALLOW policies select the workload and none matched
	DeniedBadCustom                    // a CUSTOM rule matched and its provider is missing or invalid
	DeniedByExtAuthz                   // a CUSTOM rule matched; the external authorizer is assumed to deny
)

// Match names a rule of a policy.
type Match struct {
	Policy *Policy
	Rule   int
}

// ID is Istio's name for the rule, or "" for no rule.
func (m Match) ID() string {
	if m.Policy == nil {
		return ""
	}
	return m.Policy.RuleID(m.Rule)
}

// Shadow is what the dry-run policies of one action would have decided.
type Shadow struct {
	Present bool // dry-run policies of this action select the workload
	Allowed bool
	Match   Match
}

// Decision is the verdict of a workload's authorization policies.
type Decision struct {
	Allowed bool
	Reason  Reason
	Match   Match // the rule that decided; none for the default verdicts
	// ExtAuthz is the CUSTOM rule that sends the request to an external
	// authorizer, which cannot be evaluated offline.
	ExtAuthz Match
	Audit    Match // the first AUDIT rule that matched
	DryDeny  Shadow
	DryAllow Shadow
}

// Set is the authorization policy of one workload: every policy that selects
// it, compiled into rule lists by action, with the HTTP and TCP variants.
type Set struct {
	Policies []*Policy // the selecting policies, oldest first

	// Indexed [0] for HTTP, [1] for TCP.
	badCustom [2]ruleList // CUSTOM rules whose provider is missing or invalid: they deny
	extAuthz  [2]ruleList // CUSTOM rules that call an external authorizer
	deny      [2]ruleList
	allow     [2]ruleList
	audit     [2]ruleList
	dryDeny   [2]ruleList
	dryAllow  [2]ruleList

	hasAllow, hasDryAllow, hasDryDeny bool

	// AssumeExtAuthzAllows makes a request sent to an external authorizer
	// continue as if it allowed it; by default it is treated as denied.
	AssumeExtAuthzAllows bool
	// CustomProblems explains CUSTOM policies that fail closed.
	CustomProblems []string
}

// NewSet builds the authorization of one workload from the policies that
// select it. providers are the mesh's extension providers by name.
func NewSet(policies []*Policy, providers map[string]ProviderKind) *Set {
	s := &Set{Policies: policies}
	// istiod allows one CUSTOM provider per workload (without
	// PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS); with more, every
	// CUSTOM rule fails closed.
	names := map[string]bool{}
	for _, p := range policies {
		if p.Action == Custom && !p.DryRun {
			names[p.Provider] = true
		}
	}
	for _, p := range policies {
		rules := [2][]*rule{p.http, p.tcp}
		for v := range rules {
			switch {
			case p.Action == Custom:
				kind, ok := providers[p.Provider]
				switch {
				case p.DryRun:
					// Validation rejects dry-run on CUSTOM.
				case len(names) > 1:
					if v == 0 {
						s.CustomProblems = append(s.CustomProblems, fmt.Sprintf("%s: the workload has CUSTOM policies with %d providers; istiod allows one, so their rules deny", p.ID(), len(names)))
					}
					s.badCustom[v].add(rules[v]...)
				case !ok || kind == ProviderOther:
					if v == 0 {
						s.CustomProblems = append(s.CustomProblems, fmt.Sprintf("%s: extension provider %q is not an ext_authz provider in meshConfig.extensionProviders, so its rules deny", p.ID(), p.Provider))
					}
					s.badCustom[v].add(rules[v]...)
				case v == 1 && kind == ProviderExtAuthzHTTP:
					// An HTTP ext_authz provider is ignored on TCP chains.
				default:
					s.extAuthz[v].add(rules[v]...)
				}
			case p.Action == Deny && p.DryRun:
				s.dryDeny[v].add(rules[v]...)
				s.hasDryDeny = true
			case p.Action == Deny:
				s.deny[v].add(rules[v]...)
			case p.Action == Allow && p.DryRun:
				s.dryAllow[v].add(rules[v]...)
				s.hasDryAllow = true
			case p.Action == Allow:
				s.allow[v].add(rules[v]...)
				// Even an ALLOW policy all of whose rules were skipped
				// counts: the workload then denies everything else.
				s.hasAllow = true
			case p.Action == Audit:
				s.audit[v].add(rules[v]...)
			}
		}
	}
	for v := range 2 {
		for _, l := range []*ruleList{&s.badCustom[v], &s.extAuthz[v], &s.deny[v], &s.allow[v], &s.audit[v], &s.dryDeny[v], &s.dryAllow[v]} {
			l.build()
		}
	}
	return s
}

// Evaluate decides r in the order an Istio sidecar does: CUSTOM, then DENY,
// then ALLOW; AUDIT and dry-run policies are reported and never decide. It
// does not allocate unless the request repeats a header a rule reads.
func (s *Set) Evaluate(r *Request) Decision {
	v := 0
	if !r.HTTP {
		v = 1
	}
	var d Decision
	d.Audit = s.audit[v].first(r)
	if s.hasDryDeny {
		d.DryDeny.Present = true
		d.DryDeny.Match = s.dryDeny[v].first(r)
		d.DryDeny.Allowed = d.DryDeny.Match.Policy == nil
	}
	if s.hasDryAllow {
		d.DryAllow.Present = true
		d.DryAllow.Match = s.dryAllow[v].first(r)
		d.DryAllow.Allowed = d.DryAllow.Match.Policy != nil
	}
	if m := s.badCustom[v].first(r); m.Policy != nil {
		d.Reason, d.Match = DeniedBadCustom, m
		return d
	}
	if m := s.extAuthz[v].first(r); m.Policy != nil {
		d.ExtAuthz = m
		if !s.AssumeExtAuthzAllows {
			d.Reason, d.Match = DeniedByExtAuthz, m
			return d
		}
	}
	if m := s.deny[v].first(r); m.Policy != nil {
		d.Reason, d.Match = DeniedByRule, m
		return d
	}
	if !s.hasAllow {
		d.Allowed, d.Reason = true, AllowedNoAllowPolicy
		return d
	}
	if m := s.allow[v].first(r); m.Policy != nil {
		d.Allowed, d.Reason, d.Match = true, AllowedByRule, m
		return d
	}
	d.Reason = DeniedNoAllowMatch
	return d
}

// SortPolicies orders policies as istiod lists them: root namespace first,
// then the workload's namespace, each by age. The order changes which rule a
// decision names, never the verdict.
func SortPolicies(ps []*Policy, rootNamespace string) {
	sort.SliceStable(ps, func(i, j int) bool {
		return (ps[i].Namespace == rootNamespace) && (ps[j].Namespace != rootNamespace)
	})
}

func (ru *rule) match(r *Request) bool {
	if len(ru.to) > 0 && !anyOf(ru.to, r) {
		return false
	}
	if len(ru.from) > 0 && !anyOf(ru.from, r) {
		return false
	}
	for i := range ru.when {
		if !ru.when[i].match(r) {
			return false
		}
	}
	return true
}

// anyOf reports whether every field of at least one entry matches.
func anyOf(entries [][]field, r *Request) bool {
next:
	for _, and := range entries {
		for i := range and {
			if !and[i].match(r) {
				continue next
			}
		}
		return true
	}
	return false
}

func (f *field) match(r *Request) bool {
	if len(f.values) > 0 && !f.matchAny(f.values, r) {
		return false
	}
	return len(f.not) == 0 || !f.matchAny(f.not, r)
}

// matchAny reports whether r's attribute matches one of vs, with Envoy's
// rules for what is missing: no peer certificate, no header or no claim
// matches nothing.
func (f *field) matchAny(vs []value, r *Request) bool {
	switch f.attr {
	case attrPeer, attrNamespace, attrServiceAccount, attrTrustDomain:
		return anyString(vs, r.Peer, r.Peer != "")
	case attrSourceIP, attrRemoteIP, attrDestIP:
		ip := r.SourceIP
		switch {
		case f.attr == attrDestIP:
			ip = r.DestIP
		case f.attr == attrRemoteIP && r.RemoteIP.IsValid():
			ip = r.RemoteIP
		}
		if !ip.IsValid() {
			return false
		}
		for i := range vs {
			if vs[i].cidr.Contains(ip) {
				return true
			}
		}
	case attrPort:
		for i := range vs {
			if vs[i].port == r.DestPort {
				return true
			}
		}
	case attrSNI:
		return anyString(vs, r.SNI, true)
	case attrMethod:
		return anyString(vs, r.Method, r.HTTP)
	case attrHost:
		return anyString(vs, r.Host, r.HTTP && r.Host != "")
	case attrPath:
		return anyString(vs, r.Path, r.HTTP)
	case attrHeader:
		h, ok := r.Headers.Get(f.header)
		return anyString(vs, h, ok)
	case attrRequestPrincipal:
		iss, okIss := r.Auth["iss"].(string)
		sub, okSub := r.Auth["sub"].(string)
		for i := range vs {
			if vs[i].str.match(iss, okIss) && vs[i].sub.match(sub, okSub) {
				return true
			}
		}
	case attrAudiences:
		return anyClaim(vs, r.Auth, "aud")
	case attrPresenter:
		return anyClaim(vs, r.Auth, "azp")
	case attrClaim:
		c, ok := r.Auth.lookup(f.claim)
		return ok && anyClaimValue(vs, c)
	}
	// attrEnvoyMetadata: filter metadata from other Envoy filters does not
	// exist offline, so, like a missing metadata key, it matches nothing.
	return false
}

func anyString(vs []value, s string, present bool) bool {
	for i := range vs {
		if vs[i].str.match(s, present) {
			return true
		}
	}
	return false
}

func anyClaim(vs []value, c Claims, name string) bool {
	v, ok := c[name]
	return ok && anyClaimValue(vs, v)
}

// anyClaimValue matches a claim as Istio's metadata list matcher does: a
// string claim, or any string element of a list claim. Numbers, booleans
// and objects never match.
func anyClaimValue(vs []value, claim any) bool {
	switch c := claim.(type) {
	case string:
		return anyString(vs, c, true)
	case []any:
		for _, e := range c {
			if s, ok := e.(string); ok && anyString(vs, s, true) {
				return true
			}
		}
	}
	return false
}

// MayAllow reports whether some HTTP request on a connection with r's
// connection attributes (peer identity, addresses, port) could be allowed.
// It answers the lateral-movement question — whoever controls a workload
// chooses its requests but not its identity — so request-level conditions
// (paths, methods, headers, hosts, JWT principals and claims) are assumed
// satisfiable in ALLOW rules, and a DENY rule, or a CUSTOM rule that denies
// (a missing provider, or an external authorizer not assumed to allow),
// counts only when it holds for every request: when it has no
// request-level condition. r.HTTP and the request fields are ignored.
//
// It answers for the HTTP filter chain. A port with no declared protocol
// is sniffed, and a client sending non-HTTP bytes there meets the TCP chain
// instead, where an HTTP ext_authz provider is ignored; that path is not
// modelled, as Check does not model sniffing either.
func (s *Set) MayAllow(r *Request) bool {
	everyRequest := func(l *ruleList) bool {
		for _, ru := range l.rules {
			if ru.matchConn(r, false) {
				return true
			}
		}
		return false
	}
	if everyRequest(&s.badCustom[0]) || (!s.AssumeExtAuthzAllows && everyRequest(&s.extAuthz[0])) || everyRequest(&s.deny[0]) {
		return false
	}
	if !s.hasAllow {
		return true
	}
	for _, ru := range s.allow[0].rules {
		if ru.matchConn(r, true) {
			return true
		}
	}
	return false
}

// matchConn matches a rule's connection-level fields against r and takes
// every request-level field to be requestLevel.
func (ru *rule) matchConn(r *Request, requestLevel bool) bool {
	fieldOK := func(f *field) bool {
		if f.attr.httpOnly() {
			return requestLevel
		}
		return f.match(r)
	}
	anyEntry := func(entries [][]field) bool {
	next:
		for _, and := range entries {
			for i := range and {
				if !fieldOK(&and[i]) {
					continue next
				}
			}
			return true
		}
		return false
	}
	if len(ru.to) > 0 && !anyEntry(ru.to) {
		return false
	}
	if len(ru.from) > 0 && !anyEntry(ru.from) {
		return false
	}
	for i := range ru.when {
		if !fieldOK(&ru.when[i]) {
			return false
		}
	}
	return true
}
