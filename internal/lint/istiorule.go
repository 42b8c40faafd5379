package lint

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// vals is one field of a Source or an Operation, or one condition.
type vals struct {
	values, not []string
}

// entry is one from[j].source or to[j].operation, with its path in the
// policy ("spec.rules[0].from[1].source") and its non-empty fields.
type entry struct {
	path   string
	fields map[string]vals
}

// cond is one `when` condition.
type cond struct {
	path, key string
	vals
}

// nrule is an Istio rule normalized for analysis.
type nrule struct {
	index int
	path  string
	from  []entry
	to    []entry
	when  []cond
}

// The fields of a Source and of an Operation, in the order the proto lists
// them.
var sourceFields = []string{"principals", "requestPrincipals", "namespaces", "serviceAccounts", "ipBlocks", "remoteIpBlocks", "trustDomains"}
var operationFields = []string{"hosts", "ports", "methods", "paths"}

func normalize(i int, r *securityv1beta1.Rule) nrule {
	n := nrule{index: i, path: fmt.Sprintf("spec.rules[%d]", i)}
	if r == nil {
		return n
	}
	for j, f := range r.GetFrom() {
		s := f.GetSource()
		e := entry{path: fmt.Sprintf("%s.from[%d].source", n.path, j), fields: map[string]vals{}}
		set := func(name string, v, not []string) {
			if len(v)+len(not) > 0 {
				e.fields[name] = vals{v, not}
			}
		}
		set("principals", s.GetPrincipals(), s.GetNotPrincipals())
		set("requestPrincipals", s.GetRequestPrincipals(), s.GetNotRequestPrincipals())
		set("namespaces", s.GetNamespaces(), s.GetNotNamespaces())
		set("serviceAccounts", s.GetServiceAccounts(), s.GetNotServiceAccounts())
		set("ipBlocks", s.GetIpBlocks(), s.GetNotIpBlocks())
		set("remoteIpBlocks", s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks())
		set("trustDomains", s.GetTrustDomains(), s.GetNotTrustDomains())
		n.from = append(n.from, e)
	}
	for j, t := range r.GetTo() {
		o := t.GetOperation()
		e := entry{path: fmt.Sprintf("%s.to[%d].operation", n.path, j), fields: map[string]vals{}}
		set := func(name string, v, not []string) {
			if len(v)+len(not) > 0 {
				e.fields[name] = vals{v, not}
			}
		}
		set("hosts", o.GetHosts(), o.GetNotHosts())
		set("ports", o.GetPorts(), o.GetNotPorts())
		set("methods", o.GetMethods(), o.GetNotMethods())
		set("paths", o.GetPaths(), o.GetNotPaths())
		n.to = append(n.to, e)
	}
	for j, c := range r.GetWhen() {
		n.when = append(n.when, cond{path: fmt.Sprintf("%s.when[%d]", n.path, j), key: c.GetKey(), vals: vals{c.GetValues(), c.GetNotValues()}})
	}
	return n
}

// fieldPath is the path of a field of an entry, "values" or "not" side.
func fieldPath(e entry, name string, not bool) string {
	if not {
		return e.path + ".not" + strings.ToUpper(name[:1]) + name[1:]
	}
	return e.path + "." + name
}

// httpOnlyField reports whether istiod cannot generate a field or
// condition for a TCP filter chain (the generators' forTCP errors).
func httpOnlyField(name string) bool {
	switch name {
	case "requestPrincipals", "hosts", "methods", "paths":
		return true
	}
	return strings.HasPrefix(name, "request.headers[") || strings.HasPrefix(name, "request.auth.")
}

// httpFields lists the HTTP-only fields and conditions of a rule, with the
// path of the first.
func (n *nrule) httpFields() (names []string, first string) {
	seen := map[string]bool{}
	add := func(name, path string) {
		if first == "" {
			first = path
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, e := range n.from {
		for _, f := range sourceFields {
			if v, ok := e.fields[f]; ok && httpOnlyField(f) {
				add(f, fieldPath(e, f, len(v.values) == 0))
			}
		}
	}
	for _, e := range n.to {
		for _, f := range operationFields {
			if v, ok := e.fields[f]; ok && httpOnlyField(f) {
				add(f, fieldPath(e, f, len(v.values) == 0))
			}
		}
	}
	for _, c := range n.when {
		if httpOnlyField(c.key) {
			add(c.key, c.path)
		}
	}
	return names, first
}

// appliesToPort reports whether a rule can match a connection to port:
// false only when every operation lists ports that exclude it, or a
// destination.port condition does.
func (n *nrule) appliesToPort(port uint16) bool {
	p := strconv.Itoa(int(port))
	for _, c := range n.when {
		if c.key == "destination.port" {
			if len(c.values) > 0 && !contains(c.values, p) || contains(c.not, p) {
				return false
			}
		}
	}
	if len(n.to) == 0 {
		return true
	}
	for _, e := range n.to {
		v, ok := e.fields["ports"]
		if !ok || ((len(v.values) == 0 || contains(v.values, p)) && !contains(v.not, p)) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// identityFields are the Source fields and conditions that need a peer
// certificate: Istio documents them as mTLS-only.
var identityFields = []string{"principals", "namespaces", "serviceAccounts", "trustDomains"}
var identityConds = map[string]bool{"source.principal": true, "source.namespace": true, "source.serviceAccount": true, "source.trustDomain": true}

// requiresPeer reports whether every source of the rule needs a peer
// identity to match (positive principals, namespaces, service accounts or
// trust domains), or a condition does.
func (n *nrule) requiresPeer() bool {
	for _, c := range n.when {
		if identityConds[c.key] && len(c.values) > 0 {
			return true
		}
	}
	if len(n.from) == 0 {
		return false
	}
	for _, e := range n.from {
		if !entryRequiresPeer(e) {
			return false
		}
	}
	return true
}

func entryRequiresPeer(e entry) bool {
	for _, f := range identityFields {
		if len(e.fields[f].values) > 0 {
			return true
		}
	}
	return false
}

// requiresJWT reports whether every source of the rule needs a validated
// JWT (positive requestPrincipals), or a condition on request.auth does.
func (n *nrule) requiresJWT() bool {
	for _, c := range n.when {
		if strings.HasPrefix(c.key, "request.auth.") && len(c.values) > 0 {
			return true
		}
	}
	if len(n.from) == 0 {
		return false
	}
	for _, e := range n.from {
		if len(e.fields["requestPrincipals"].values) == 0 {
			return false
		}
	}
	return true
}

// positiveJWT reports whether some source or condition of the rule needs a
// JWT attribute to have a value (requestPrincipals, request.auth values).
func (n *nrule) positiveJWT() bool {
	for _, e := range n.from {
		if len(e.fields["requestPrincipals"].values) > 0 {
			return true
		}
	}
	for _, c := range n.when {
		if strings.HasPrefix(c.key, "request.auth.") && len(c.values) > 0 {
			return true
		}
	}
	return false
}

// usesJWT reports where the rule reads request.auth attributes, if it
// does.
func (n *nrule) usesJWT() (string, bool) {
	for _, e := range n.from {
		if v, ok := e.fields["requestPrincipals"]; ok {
			return fieldPath(e, "requestPrincipals", len(v.values) == 0), true
		}
	}
	for _, c := range n.when {
		if strings.HasPrefix(c.key, "request.auth.") {
			return c.path, true
		}
	}
	return "", false
}

// anonymousOnly returns the path of a source (or condition) that matches
// only requests without a peer identity or without a JWT: a "not" list
// holding "*", which every identity matches. kind says which identity.
func (n *nrule) anonymousOnly() (path, field, kind string) {
	for _, e := range n.from {
		for _, f := range []string{"principals", "namespaces", "requestPrincipals"} {
			if contains(e.fields[f].not, "*") {
				k := "a peer identity"
				if f == "requestPrincipals" {
					k = "a validated JWT"
				}
				return fieldPath(e, f, true), "not" + strings.ToUpper(f[:1]) + f[1:] + ": ['*']", k
			}
		}
	}
	for _, c := range n.when {
		if (c.key == "source.principal" || c.key == "source.namespace" || c.key == "request.auth.principal") && contains(c.not, "*") {
			k := "a peer identity"
			if c.key == "request.auth.principal" {
				k = "a validated JWT"
			}
			return c.path, c.key + " notValues: ['*']", k
		}
	}
	return "", "", ""
}

// ruleCovers reports whether rule a matches every request rule b matches:
// each constraint of a is implied by one of b. Conservative.
func ruleCovers(a, b *nrule) bool {
	return entriesCover(a.from, b.from) && entriesCover(a.to, b.to) && condsCover(a.when, b.when)
}

// entriesCover: every entry of b is covered by some entry of a. No entries
// in a means any; no entries in b means any, which only an a without
// entries covers.
func entriesCover(a, b []entry) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, eb := range b {
		ok := false
		for _, ea := range a {
			if entryCovers(ea, eb) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func entryCovers(a, b entry) bool {
	for name, va := range a.fields {
		vb, ok := b.fields[name]
		if !ok || !valsCover(name, va, vb) {
			return false
		}
	}
	return true
}

func condsCover(a, b []cond) bool {
	for _, ca := range a {
		ok := false
		for _, cb := range b {
			if ca.key == cb.key && valsCover(ca.key, ca.vals, cb.vals) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// valsCover: a's values match everything b's values match (b must have
// values when a has), and b excludes at least what a excludes.
func valsCover(name string, a, b vals) bool {
	cov := covers
	if name == "ipBlocks" || name == "remoteIpBlocks" || name == "source.ip" || name == "remote.ip" || name == "destination.ip" {
		cov = coversCIDR
	}
	if name == "ports" || name == "destination.port" || name == "serviceAccounts" || name == "source.serviceAccount" || name == "namespaces" || name == "source.namespace" {
		cov = func(x, y string) bool { return x == y }
	}
	if len(a.values) > 0 {
		if len(b.values) == 0 {
			return false
		}
		for _, vb := range b.values {
			ok := false
			for _, va := range a.values {
				if cov(va, vb) {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
	}
	for _, na := range a.not {
		ok := false
		for _, nb := range b.not {
			if cov(nb, na) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// sortedKeys returns a map's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
