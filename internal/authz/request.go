// Package authz evaluates Istio AuthorizationPolicy the way an Istio sidecar
// does: policies are compiled per workload into CUSTOM, DENY, ALLOW and AUDIT
// rule lists, with the TCP and HTTP variants Istio generates, and a request
// is decided without allocating.
package authz

import (
	"net/netip"
	"strings"
)

// Request is what an authorization decision sees of a connection and, for
// HTTP, of a request. Strings are used as given: the caller normalizes the
// path (see package httpnorm) and lowercases header names.
type Request struct {
	// Peer is the client certificate's identity, a URI such as
	// "spiffe://cluster.local/ns/default/sa/web", or "" when the connection
	// is plaintext. Fields Istio documents as mTLS-only match only when set.
	Peer string

	SourceIP netip.Addr // the TCP peer (ipBlocks, source.ip)
	RemoteIP netip.Addr // the original client (remoteIpBlocks, remote.ip); SourceIP when unset
	DestIP   netip.Addr // the workload's address (destination.ip)
	DestPort uint16     // the workload's port (ports, destination.port)
	SNI      string     // TLS server name (connection.sni); "" for plaintext

	// HTTP is true for an HTTP request; the fields below are read only then.
	HTTP   bool
	Method string
	Host   string // the :authority, with any port, as sent
	Path   string // normalized, without the query string
	// Headers holds the request headers with lowercase names, including the
	// pseudo-headers ":authority", ":method" and ":path" (with the query).
	Headers Headers
	// Auth is the payload of the request's validated JWT, nil without one.
	Auth Claims
}

// Header is one request header.
type Header struct{ Name, Value string }

// Headers is a request's headers in order of arrival; names are lowercase.
type Headers []Header

// Get returns the header's value as Envoy's header matchers see it: every
// value of that name joined with ",", and whether the header is present.
// It allocates only when a header is repeated.
func (h Headers) Get(name string) (string, bool) {
	if name == "host" {
		name = ":authority" // Envoy serves the legacy Host header as :authority
	}
	var first string
	found := 0
	for _, kv := range h {
		if kv.Name == name {
			if found == 0 {
				first = kv.Value
			}
			found++
		}
	}
	if found <= 1 {
		return first, found == 1
	}
	var b strings.Builder
	n := 0
	for _, kv := range h {
		if kv.Name == name {
			if n > 0 {
				b.WriteByte(',')
			}
			b.WriteString(kv.Value)
			n++
		}
	}
	return b.String(), true
}

// Claims is a JWT payload as decoded from JSON: strings, float64s, bools,
// []any and map[string]any. Space-delimited claims ("scope", "permission"
// and any a RequestAuthentication names) are already split into lists.
type Claims map[string]any

// lookup follows a claim path such as ["realm_access", "roles"].
func (c Claims) lookup(path []string) (any, bool) {
	var cur any = map[string]any(c)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}
