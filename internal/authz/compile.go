package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/palisade-security/palisade/internal/config"
)

// Action is an AuthorizationPolicy action.
type Action uint8

// The actions, in the order a sidecar applies them.
const (
	Custom Action = iota
	Deny
	Allow
	Audit
)

func (a Action) String() string {
	switch a {
	case Custom:
		return "CUSTOM"
	case Deny:
		return "DENY"
	case Allow:
		return "ALLOW"
	}
	return "AUDIT"
}

// DryRunAnnotation marks a policy whose verdicts are reported, not enforced.
const DryRunAnnotation = "istio.io/dry-run"

// Options are the mesh settings policy compilation depends on.
type Options struct {
	RootNamespace string
	// TrustDomains is the mesh trust domain followed by its aliases.
	TrustDomains []string
}

// Policy is one compiled AuthorizationPolicy.
type Policy struct {
	Namespace, Name string
	Action          Action
	Provider        string // CUSTOM only
	DryRun          bool
	Selector        map[string]string // nil or empty: every workload in scope
	HasTargetRefs   bool              // such policies apply to gateways and waypoints, not sidecars
	Source          config.Source

	http, tcp []*rule // the rules Istio generates for each filter chain kind
	// Skipped says, for each rule index, why istiod leaves the rule out of
	// the HTTP ([0]) or the TCP ([1]) filter chain; "" when it keeps it.
	Skipped  [2][]string
	NumRules int
}

// ID is "namespace/name".
func (p *Policy) ID() string { return p.Namespace + "/" + p.Name }

// RuleID is Envoy's name for rule i of p, as it appears in Istio's RBAC
// configuration and access logs.
func (p *Policy) RuleID(i int) string {
	return fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", p.Namespace, p.Name, i)
}

// Selects reports whether p applies to a sidecar workload w. A policy in the
// root namespace applies in every namespace; a selector selects when its
// labels are a subset of the workload's (pilot/pkg/model/policyattachment.go).
func (p *Policy) Selects(w *config.Workload, rootNamespace string) bool {
	if p.HasTargetRefs {
		return false
	}
	if p.Namespace != rootNamespace && p.Namespace != w.Namespace {
		return false
	}
	return config.Selects(p.Selector, w.Labels)
}

// rule is one compiled Istio rule: OR(from) AND OR(to) AND AND(when).
type rule struct {
	policy *Policy
	index  int
	from   [][]field // OR of ANDs; empty means any source
	to     [][]field // OR of ANDs; empty means any operation
	when   []field
}

type attr uint8

const (
	attrPeer attr = iota
	attrNamespace
	attrServiceAccount
	attrTrustDomain
	attrSourceIP
	attrRemoteIP
	attrRequestPrincipal
	attrAudiences
	attrPresenter
	attrClaim
	attrHeader
	attrHost
	attrMethod
	attrPath
	attrPort
	attrDestIP
	attrSNI
	attrEnvoyMetadata
)

// httpOnly lists the attributes Istio cannot generate for a TCP filter chain.
func (a attr) httpOnly() bool {
	switch a {
	case attrRequestPrincipal, attrAudiences, attrPresenter, attrClaim, attrHeader, attrHost, attrMethod, attrPath:
		return true
	}
	return false
}

// field is one constraint: the value must match one of values (when there
// are any) and none of not.
type field struct {
	attr   attr
	name   string   // the Istio field or `when` key, for traces
	header string   // header name for attrHeader
	claim  []string // claim path for attrClaim
	values []value
	not    []value
}

// value is one compiled value of a field.
type value struct {
	str  strMatch
	sub  strMatch // requestPrincipals: the sub part; str is the iss part
	cidr netip.Prefix
	port uint16
}

var errHTTPOnly = errors.New("HTTP-only attribute")

// Compile compiles one AuthorizationPolicy. It does not validate: the caller
// keeps policies istiod would reject away from it (see Validate). Values
// that still cannot be compiled are handled as istiod handles them: an ALLOW
// rule with such a value is skipped, a DENY or AUDIT rule ignores the value.
func Compile(r *config.Resource[*securityv1beta1.AuthorizationPolicy], opts Options) *Policy {
	spec := r.Spec
	p := &Policy{
		Namespace:     r.Meta.Namespace,
		Name:          r.Meta.Name,
		Selector:      spec.GetSelector().GetMatchLabels(),
		HasTargetRefs: spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0,
		Source:        r.Source,
		NumRules:      len(spec.GetRules()),
		Provider:      spec.GetProvider().GetName(),
	}
	switch spec.GetAction() {
	case securityv1beta1.AuthorizationPolicy_DENY:
		p.Action = Deny
	case securityv1beta1.AuthorizationPolicy_AUDIT:
		p.Action = Audit
	case securityv1beta1.AuthorizationPolicy_CUSTOM:
		p.Action = Custom
	default:
		p.Action = Allow
	}
	// istiod parses the annotation with strconv.ParseBool; anything else
	// (rejected by validation) leaves the policy enforced.
	if v, ok := r.Meta.Annotations[DryRunAnnotation]; ok {
		p.DryRun, _ = strconv.ParseBool(v)
	}
	p.Skipped = [2][]string{make([]string, len(spec.GetRules())), make([]string, len(spec.GetRules()))}
	c := compiler{policy: p, opts: opts}
	for i, ir := range spec.GetRules() {
		for v, forTCP := range []bool{false, true} {
			if ir == nil {
				p.Skipped[v][i] = "the rule is null"
				continue
			}
			ru, err := c.rule(i, ir, forTCP)
			if err != nil {
				p.Skipped[v][i] = err.Error()
				continue
			}
			if forTCP {
				p.tcp = append(p.tcp, ru)
			} else {
				p.http = append(p.http, ru)
			}
		}
	}
	return p
}

type compiler struct {
	policy *Policy
	opts   Options
}

// rule builds the variant of an Istio rule for an HTTP or a TCP filter
// chain. An error means istiod skips the rule (pilot/pkg/security/authz/
// model/model.go, checkError): an unknown attribute for any action, and for
// ALLOW any value that cannot be generated, including an HTTP-only one on TCP.
func (c *compiler) rule(index int, ir *securityv1beta1.Rule, forTCP bool) (*rule, error) {
	ru := &rule{policy: c.policy, index: index}
	for _, w := range ir.GetWhen() {
		f, err := c.condition(w.GetKey(), w.GetValues(), w.GetNotValues(), forTCP)
		if err != nil {
			return nil, err
		}
		if f != nil {
			ru.when = append(ru.when, *f)
		}
	}
	for _, from := range ir.GetFrom() {
		s := from.GetSource()
		var and []field
		add := func(a attr, name string, values, not []string) error {
			f, err := c.field(a, name, "", nil, values, not, forTCP)
			if err != nil {
				return err
			}
			if f != nil {
				and = append(and, *f)
			}
			return nil
		}
		for _, e := range []error{
			add(attrPeer, "principals", s.GetPrincipals(), s.GetNotPrincipals()),
			add(attrRequestPrincipal, "requestPrincipals", s.GetRequestPrincipals(), s.GetNotRequestPrincipals()),
			add(attrNamespace, "namespaces", s.GetNamespaces(), s.GetNotNamespaces()),
			add(attrServiceAccount, "serviceAccounts", s.GetServiceAccounts(), s.GetNotServiceAccounts()),
			add(attrSourceIP, "ipBlocks", s.GetIpBlocks(), s.GetNotIpBlocks()),
			add(attrRemoteIP, "remoteIpBlocks", s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks()),
			add(attrTrustDomain, "trustDomains", s.GetTrustDomains(), s.GetNotTrustDomains()),
		} {
			if e != nil {
				return nil, e
			}
		}
		ru.from = append(ru.from, and)
	}
	for _, to := range ir.GetTo() {
		o := to.GetOperation()
		var and []field
		add := func(a attr, name string, values, not []string) error {
			f, err := c.field(a, name, "", nil, values, not, forTCP)
			if err != nil {
				return err
			}
			if f != nil {
				and = append(and, *f)
			}
			return nil
		}
		for _, e := range []error{
			add(attrPort, "ports", o.GetPorts(), o.GetNotPorts()),
			add(attrMethod, "methods", o.GetMethods(), o.GetNotMethods()),
			add(attrHost, "hosts", o.GetHosts(), o.GetNotHosts()),
			add(attrPath, "paths", o.GetPaths(), o.GetNotPaths()),
		} {
			if e != nil {
				return nil, e
			}
		}
		ru.to = append(ru.to, and)
	}
	return ru, nil
}

// condition compiles a `when` condition.
func (c *compiler) condition(key string, values, not []string, forTCP bool) (*field, error) {
	switch key {
	case "source.ip":
		return c.field(attrSourceIP, key, "", nil, values, not, forTCP)
	case "remote.ip":
		return c.field(attrRemoteIP, key, "", nil, values, not, forTCP)
	case "source.namespace":
		return c.field(attrNamespace, key, "", nil, values, not, forTCP)
	case "source.principal":
		return c.field(attrPeer, key, "", nil, values, not, forTCP)
	case "source.serviceAccount":
		return c.field(attrServiceAccount, key, "", nil, values, not, forTCP)
	case "source.trustDomain":
		return c.field(attrTrustDomain, key, "", nil, values, not, forTCP)
	case "request.auth.principal":
		return c.field(attrRequestPrincipal, key, "", nil, values, not, forTCP)
	case "request.auth.audiences":
		return c.field(attrAudiences, key, "", nil, values, not, forTCP)
	case "request.auth.presenter":
		return c.field(attrPresenter, key, "", nil, values, not, forTCP)
	case "destination.ip":
		return c.field(attrDestIP, key, "", nil, values, not, forTCP)
	case "destination.port":
		return c.field(attrPort, key, "", nil, values, not, forTCP)
	case "connection.sni":
		return c.field(attrSNI, key, "", nil, values, not, forTCP)
	}
	switch {
	case strings.HasPrefix(key, "request.headers[") && strings.HasSuffix(key, "]"):
		name := strings.ToLower(key[len("request.headers[") : len(key)-1])
		if name == "" {
			break
		}
		return c.field(attrHeader, key, name, nil, values, not, forTCP)
	case strings.HasPrefix(key, "request.auth.claims[") && strings.HasSuffix(key, "]"):
		path := ClaimPath(key[len("request.auth.claims"):])
		if len(path) == 0 {
			break
		}
		return c.field(attrClaim, key, "", path, values, not, forTCP)
	case strings.HasPrefix(key, "experimental.envoy.filters."):
		return c.field(attrEnvoyMetadata, key, "", nil, values, not, forTCP)
	}
	return nil, fmt.Errorf("unknown attribute %s", key)
}

// ClaimPath splits "[a][b]" into ["a", "b"], Istio's nested-claim syntax.
// It returns nil when s is not of that form.
func ClaimPath(s string) []string {
	var path []string
	for len(s) > 0 {
		if s[0] != '[' {
			return nil
		}
		end := strings.IndexByte(s, ']')
		if end <= 1 {
			return nil
		}
		path = append(path, s[1:end])
		s = s[end+1:]
	}
	return path
}

// field compiles one attribute constraint. It returns nil when nothing
// constrains: no values, or (for DENY, AUDIT and CUSTOM) every value was
// dropped because it cannot be generated for this filter chain.
func (c *compiler) field(a attr, name, header string, claim []string, values, not []string, forTCP bool) (*field, error) {
	if len(values) == 0 && len(not) == 0 {
		return nil, nil
	}
	f := &field{attr: a, name: name, header: header, claim: claim}
	var err error
	if f.values, err = c.values(a, values, forTCP); err != nil {
		return nil, err
	}
	if f.not, err = c.values(a, not, forTCP); err != nil {
		return nil, err
	}
	if len(f.values) == 0 && len(f.not) == 0 {
		return nil, nil
	}
	return f, nil
}

func (c *compiler) values(a attr, in []string, forTCP bool) ([]value, error) {
	if a == attrPeer {
		in = replaceTrustDomainAliases(in, c.opts.TrustDomains)
	}
	if a == attrTrustDomain {
		in = expandTrustDomainAliases(in, c.opts.TrustDomains)
	}
	var out []value
	for _, s := range in {
		var v value
		var err error
		if forTCP && a.httpOnly() {
			err = errHTTPOnly
		} else {
			v, err = c.value(a, s)
		}
		if err != nil {
			if c.policy.Action == Allow {
				if err == errHTTPOnly {
					return nil, fmt.Errorf("%s is HTTP-only", fieldName(a))
				}
				return nil, err
			}
			continue // DENY, AUDIT, CUSTOM: a wider match
		}
		out = append(out, v)
	}
	return out, nil
}

func fieldName(a attr) string {
	switch a {
	case attrRequestPrincipal:
		return "requestPrincipals"
	case attrAudiences:
		return "request.auth.audiences"
	case attrPresenter:
		return "request.auth.presenter"
	case attrClaim:
		return "request.auth.claims"
	case attrHeader:
		return "request.headers"
	case attrHost:
		return "hosts"
	case attrMethod:
		return "methods"
	case attrPath:
		return "paths"
	}
	return "field"
}

const spiffePrefix = "spiffe://"

// value compiles one value as istiod's generators do
// (pilot/pkg/security/authz/model/generator.go).
func (c *compiler) value(a attr, s string) (value, error) {
	switch a {
	case attrPeer:
		return value{str: stringMatcher(s, spiffePrefix)}, nil
	case attrNamespace:
		// ".*/ns/<ns>/.*", every "*" in the value becoming ".*".
		parts := strings.Split(s, "*")
		if len(parts) == 1 {
			return value{str: strMatch{kind: strContains, s: "/ns/" + s + "/"}}, nil
		}
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		m, err := regexMatcher(".*/ns/" + strings.Join(parts, ".*") + "/.*")
		return value{str: m}, err
	case attrServiceAccount:
		ns, sa, ok := strings.Cut(s, "/")
		if !ok {
			ns, sa = c.policy.Namespace, s
		}
		m, err := regexMatcher(fmt.Sprintf("spiffe://.+/ns/%s/(.+/|)sa/%s(/.+)?", regexp.QuoteMeta(ns), regexp.QuoteMeta(sa)))
		return value{str: m}, err
	case attrTrustDomain:
		switch {
		case s == "*":
			return value{str: strMatch{kind: strPrefix, s: spiffePrefix}}, nil
		case !strings.Contains(s, "*"):
			return value{str: strMatch{kind: strPrefix, s: spiffePrefix + s + "/"}}, nil
		}
		before, after, _ := strings.Cut(s, "*")
		m, err := regexMatcher(fmt.Sprintf("spiffe://%s[^/]*%s/.*", regexp.QuoteMeta(before), regexp.QuoteMeta(after)))
		return value{str: m}, err
	case attrSourceIP, attrRemoteIP, attrDestIP:
		p, err := parseCIDR(s)
		return value{cidr: p}, err
	case attrPort:
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return value{}, fmt.Errorf("invalid port %q", s)
		}
		return value{port: uint16(n)}, nil
	case attrRequestPrincipal:
		return requestPrincipal(s), nil
	case attrAudiences, attrPresenter, attrClaim, attrSNI, attrEnvoyMetadata:
		return value{str: stringMatcher(s, "")}, nil
	case attrHeader, attrMethod:
		return value{str: headerMatcher(s, false)}, nil
	case attrHost:
		return value{str: headerMatcher(s, true)}, nil
	case attrPath:
		if strings.Contains(s, "{*}") || strings.Contains(s, "{**}") {
			m, err := regexMatcher(pathTemplateRegex(s))
			return value{str: m}, err
		}
		return value{str: stringMatcher(s, "")}, nil
	}
	return value{}, fmt.Errorf("unsupported attribute")
}

// requestPrincipal compiles a requestPrincipals value into matchers for the
// JWT's iss and sub claims, split at the last "/", exactly as istiod's
// requestPrincipalGenerator does, oddities included: "*/*" wants the sub
// "*", "foo" wants an empty sub, and "*foo" is a suffix of the sub.
func requestPrincipal(s string) value {
	exact := func(v string) strMatch { return strMatch{kind: strExact, s: v} }
	i := strings.LastIndexByte(s, '/')
	switch {
	case s == "*":
		return value{str: strMatch{kind: strNonEmpty}, sub: strMatch{kind: strNonEmpty}}
	case strings.HasPrefix(s, "*"):
		if i >= 0 {
			return value{str: stringMatcher(s[:i], ""), sub: exact(s[i+1:])}
		}
		return value{str: strMatch{kind: strNonEmpty}, sub: strMatch{kind: strSuffix, s: s[1:]}}
	case strings.HasSuffix(s, "*"):
		if i >= 0 {
			return value{str: exact(s[:i]), sub: stringMatcher(s[i+1:], "")}
		}
		return value{str: strMatch{kind: strPrefix, s: s[:len(s)-1]}, sub: strMatch{kind: strNonEmpty}}
	}
	if i >= 0 {
		return value{str: exact(s[:i]), sub: exact(s[i+1:])}
	}
	return value{str: exact(s), sub: exact("")}
}

// Character classes of Envoy's URI template matcher
// (source/extensions/path/uri_template_lib): {*} is one non-empty segment,
// {**} any run of characters including "/".
const (
	segmentChars  = `[a-zA-Z0-9\-._~%!$&'()+,;:@=]`
	pathTemplate1 = segmentChars + `+`
	pathTemplate2 = `[a-zA-Z0-9\-._~%!$&'()+,;:@=/]*`
)

func pathTemplateRegex(t string) string {
	var b strings.Builder
	for len(t) > 0 {
		switch {
		case strings.HasPrefix(t, "{**}"):
			b.WriteString(pathTemplate2)
			t = t[4:]
		case strings.HasPrefix(t, "{*}"):
			b.WriteString(pathTemplate1)
			t = t[3:]
		default:
			next := strings.IndexByte(t, '{')
			if next <= 0 {
				next = len(t)
				if strings.HasPrefix(t, "{") {
					next = 1
				}
			}
			b.WriteString(regexp.QuoteMeta(t[:next]))
			t = t[next:]
		}
	}
	return b.String()
}

// replaceTrustDomainAliases rewrites principals the way istiod's trust
// domain bundle does (pilot/pkg/security/trustdomain/bundle.go): a principal
// of exactly five "/"-separated parts whose trust domain is "cluster.local"
// or one of the mesh's trust domains stands for that identity in every trust
// domain of the mesh. Other principals are kept as written.
func replaceTrustDomainAliases(principals, trustDomains []string) []string {
	if len(trustDomains) == 0 {
		return principals
	}
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range principals {
		parts := strings.Split(p, "/")
		if len(parts) != 5 || parts[0] == "*" {
			add(p)
			continue
		}
		td := parts[0]
		if td != config.DefaultTrustDomain && !trustDomainListed(td, trustDomains) {
			add(p)
			continue
		}
		rest := strings.Join(parts[1:], "/")
		for _, t := range trustDomains {
			if strings.HasPrefix(td, "*") && strings.HasSuffix(t, td[1:]) {
				add(p)
			} else {
				add(t + "/" + rest)
			}
		}
	}
	return out
}

// trustDomainListed is istiod's stringMatch: td equals an entry, or an entry
// or td is a "*" wildcard matching the other.
func trustDomainListed(td string, list []string) bool {
	for _, t := range list {
		switch {
		case t == "*" || t == td:
			return true
		case strings.HasPrefix(t, "*") && strings.HasSuffix(td, t[1:]),
			strings.HasSuffix(t, "*") && strings.HasPrefix(td, t[:len(t)-1]),
			strings.HasPrefix(td, "*") && strings.HasSuffix(t, td[1:]),
			strings.HasSuffix(td, "*") && strings.HasPrefix(t, td[:len(td)-1]):
			return true
		}
	}
	return false
}

// expandTrustDomainAliases replaces a trustDomains value equal to one of the
// mesh's trust domains by all of them (ExpandTrustDomainAliases). Unlike
// principals, "cluster.local" is not special here.
func expandTrustDomainAliases(values, trustDomains []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		expand := false
		for _, t := range trustDomains {
			expand = expand || t == v
		}
		list := []string{v}
		if expand {
			list = trustDomains
		}
		for _, s := range list {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
