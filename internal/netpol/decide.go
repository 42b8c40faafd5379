package netpol

import (
	"fmt"
	"strings"
	"sync"

	"github.com/palisade-security/palisade/internal/config"
)

// Settings are the Cilium install options policy depends on (Helm values).
type Settings struct {
	// EnforcementMode is policyEnforcementMode: "default", "always" or
	// "never".
	EnforcementMode string
	// AuditMode is policyAuditMode: drops are reported, not enforced.
	AuditMode   bool
	ClusterName string
}

// Direction is ingress or egress, from the selected endpoint's side.
type Direction uint8

// The two directions.
const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string { return [...]string{"ingress", "egress"}[d] }

// Set is every network policy of a snapshot, compiled, with the endpoints
// it has been asked about.
type Set struct {
	Settings Settings
	Policies []*Policy
	inv      *config.Inventory
	// rules by the namespace their subject is confined to; "" holds the
	// rules that may select in any namespace (clusterwide policies).
	rules map[string][]*rule

	mu        sync.Mutex
	endpoints map[*config.Workload]*Endpoint
}

// NewSet compiles the policies for an inventory.
func NewSet(policies []*Policy, inv *config.Inventory, s Settings) *Set {
	if s.EnforcementMode == "" {
		s.EnforcementMode = "default"
	}
	if s.ClusterName == "" {
		s.ClusterName = DefaultClusterName
	}
	set := &Set{Settings: s, Policies: policies, inv: inv, rules: map[string][]*rule{}, endpoints: map[*config.Workload]*Endpoint{}}
	for _, p := range policies {
		for _, r := range p.rules {
			ns := r.subject.namespace()
			set.rules[ns] = append(set.rules[ns], r)
		}
	}
	return set
}

// Endpoint is the network policy of one workload.
type Endpoint struct {
	Workload *config.Workload
	Peer     *Peer // the workload as others' policies see it
	dirs     [2]direction
}

type direction struct {
	enforced bool
	by       *rule  // the first rule that turned default deny on
	byText   string // "selected by Kind ns/name"
	cache    map[*config.Workload]*peerEntries
	allow    []*Entry
	deny     []*Entry
	requires []selector
}

// Enforced reports whether the endpoint is in default deny in dir, and
// which policy put it there ("" for policyEnforcementMode always).
func (ep *Endpoint) Enforced(dir Direction) (bool, string) {
	d := &ep.dirs[dir]
	if d.by == nil {
		return d.enforced, ""
	}
	return d.enforced, d.by.policy.Kind.String() + " " + d.by.policy.ID()
}

// PeerOf is a workload as a peer: a pod with its Cilium identity, or the
// host identity for a pod on the host network.
func (s *Set) PeerOf(w *config.Workload) *Peer {
	p := &Peer{Workload: w, Labels: workloadLabels(w, s.inv.Namespaces[w.Namespace], s.Settings.ClusterName)}
	if len(w.IPs) > 0 {
		p.IP = w.IPs[0]
	}
	if w.HostNetwork {
		p.Entity, p.Labels = EntityHost, reservedLabels(EntityHost)
	}
	return p
}

// Endpoint returns the compiled policy of w.
func (s *Set) Endpoint(w *config.Workload) *Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ep, ok := s.endpoints[w]; ok {
		return ep
	}
	ep := &Endpoint{Workload: w, Peer: s.PeerOf(w)}
	for dir := range ep.dirs {
		ep.dirs[dir].enforced = s.Settings.EnforcementMode == "always"
	}
	if !w.HostNetwork { // host-network pods are the host endpoint: host policies only
		for _, r := range concat(s.rules[""], s.rules[w.Namespace]) {
			if !r.subject.matches(ep.Peer.Labels) {
				continue
			}
			for dir, sec := range []*section{&r.ingress, &r.egress} {
				d := &ep.dirs[dir]
				if sec.present && sec.defaultDeny {
					d.enforced = true
					if d.by == nil {
						d.by = r
						d.byText = "selected by " + r.policy.Kind.String() + " " + r.policy.ID()
					}
				}
				d.allow = append(d.allow, sec.allow...)
				d.deny = append(d.deny, sec.deny...)
				for _, e := range sec.allow {
					d.requires = append(d.requires, e.requires()...)
				}
			}
		}
	}
	s.endpoints[w] = ep
	return ep
}

func concat(a, b []*rule) []*rule {
	return append(append(make([]*rule, 0, len(a)+len(b)), a...), b...)
}

// Verdict is the decision of one direction for a connection.
type Verdict struct {
	Allowed bool
	// Enforced: the endpoint is in default deny in this direction.
	Enforced bool
	// Audit: the connection would have been dropped, and policyAuditMode
	// let it through.
	Audit bool
	// Entry is the deny or allow entry that decided; nil for a default.
	Entry *Entry
	// L7 is set when HTTP rules apply to the connection (see HTTPEntries).
	L7 bool

	why    reason
	dir    Direction
	port   uint16
	proto  string
	by     string // what put the endpoint in default deny
	unseen *Entry // a toFQDNs entry the DNS proxy would never feed
	fqdn   string
}

type reason uint8

const (
	whyNever reason = iota
	whyDenied
	whyAllowed
	whyNotEnforced
	whyDefaultDeny
)

// Reason explains the verdict in plain words. It is built on demand so
// that deciding does not allocate.
func (v *Verdict) Reason() string {
	var r string
	switch v.why {
	case whyNever:
		return "policyEnforcementMode is never: Cilium enforces no policy"
	case whyDenied:
		r = fmt.Sprintf("%s denies %s %s on %d/%s", v.Entry.ID(), v.dir, peerWord(v.dir), v.port, v.proto)
	case whyAllowed:
		r = fmt.Sprintf("%s allows %s %s on %d/%s", v.Entry.ID(), v.dir, peerWord(v.dir), v.port, v.proto)
		if v.L7 {
			r += "; HTTP requests must then match its rules.http"
		}
		return r
	case whyNotEnforced:
		return fmt.Sprintf("no policy puts the endpoint in default deny for %s", v.dir)
	case whyDefaultDeny:
		r = fmt.Sprintf("the endpoint is in default deny for %s (%s) and no %s rule allows %s on %d/%s", v.dir, v.by, v.dir, peerWord(v.dir), v.port, v.proto)
		if v.unseen != nil {
			r += fmt.Sprintf("; %s names %s in toFQDNs, but no egress rule with rules.dns lets Cilium's DNS proxy see that lookup, so Cilium never learns its addresses", v.unseen.ID(), v.fqdn)
		}
	}
	if v.Audit {
		r += "; policyAuditMode lets it through (AUDIT)"
	}
	return r
}

// Policy names the policy of the deciding entry: kind, namespace/name and
// the entry's path.
func (v *Verdict) Policy() (kind, id, path string) {
	if v.Entry == nil {
		return "", "", ""
	}
	return v.Entry.rule.policy.Kind.String(), v.Entry.rule.policy.ID(), v.Entry.path
}

// peerEntries are the entries of one direction of an endpoint whose peers
// select one pod identity: Cilium resolves selectors to identities ahead of
// time, and so does this cache, so that a decision only checks ports.
type peerEntries struct {
	allow, deny []*Entry
}

// entriesFor returns the entries whose L3 side selects peer. For pods the
// result is computed once per (endpoint, direction, pod); peers outside the
// cluster are matched afresh, since their addresses and names vary.
func (s *Set) entriesFor(d *direction, peer *Peer, cache bool) *peerEntries {
	cache = cache && peer.Workload != nil
	if cache {
		s.mu.Lock()
		pe, ok := d.cache[peer.Workload]
		s.mu.Unlock()
		if ok {
			return pe
		}
	}
	pe := &peerEntries{}
	for _, e := range d.deny {
		if ok, _ := e.peers.matches(peer, s.inv); ok {
			pe.deny = append(pe.deny, e)
		}
	}
	if requiresHold(d.requires, peer) {
		for _, e := range d.allow {
			if ok, _ := e.peers.matches(peer, s.inv); ok {
				pe.allow = append(pe.allow, e)
			}
		}
	}
	if cache {
		s.mu.Lock()
		if d.cache == nil {
			d.cache = map[*config.Workload]*peerEntries{}
		}
		d.cache[peer.Workload] = pe
		s.mu.Unlock()
	}
	return pe
}

// Decide decides one direction of a connection at ep: ingress from peer,
// or egress to peer, on port and proto (TCP, UDP or SCTP). Deny entries win
// over allows; an endpoint not in default deny allows what no deny entry
// denies; in default deny, some allow entry must match. For a pod peer
// already seen it does not allocate.
func (s *Set) Decide(ep *Endpoint, dir Direction, peer *Peer, port uint16, proto string) Verdict {
	return s.decide(ep, dir, peer, port, proto, true)
}

// DecideOnce is Decide without remembering the peer's entries: for
// analyses that ask about each pair once, where the cache would only grow.
func (s *Set) DecideOnce(ep *Endpoint, dir Direction, peer *Peer, port uint16, proto string) Verdict {
	return s.decide(ep, dir, peer, port, proto, false)
}

func (s *Set) decide(ep *Endpoint, dir Direction, peer *Peer, port uint16, proto string, cache bool) Verdict {
	v := Verdict{dir: dir, port: port, proto: proto}
	if s.Settings.EnforcementMode == "never" {
		v.Allowed, v.why = true, whyNever
		return v
	}
	d := &ep.dirs[dir]
	v.Enforced = d.enforced
	receiver := ep.Workload // whose container ports name the port
	if dir == Egress {
		receiver = peer.Workload
	}
	if len(d.allow) == 0 && len(d.deny) == 0 {
		if d.enforced {
			v.why, v.by = whyDefaultDeny, s.enforcedBy(d)
			return s.drop(v)
		}
		v.Allowed, v.why = true, whyNotEnforced
		return v
	}
	pe := s.entriesFor(d, peer, cache)
	for _, e := range pe.deny {
		if e.portMatches(port, proto, receiver) {
			v.Entry, v.why = e, whyDenied
			return s.drop(v)
		}
	}
	l4Only := false
	for _, e := range pe.allow {
		if !e.portMatches(port, proto, receiver) {
			continue
		}
		if peer.FQDN != "" && !e.peers.matchesL3(peer, s.inv) && !d.dnsVisible(peer.FQDN) {
			v.unseen, v.fqdn = e, peer.FQDN
			continue
		}
		if v.Entry == nil {
			v.Entry = e
		}
		if e.http == nil {
			l4Only = true
		} else {
			v.L7 = true
		}
	}
	// "If a layer 4 rule is specified in the policy, and a similar layer 4
	// rule with layer 7 rules is also specified, then the layer 7 portions
	// of the latter rule will have no effect."
	v.L7 = v.L7 && !l4Only
	switch {
	case v.Entry != nil:
		v.Allowed, v.why = true, whyAllowed
		return v
	case !d.enforced:
		v.Allowed, v.why = true, whyNotEnforced
		return v
	}
	v.why, v.by = whyDefaultDeny, s.enforcedBy(d)
	return s.drop(v)
}

// HTTPEntries returns the allow entries whose rules.http the L7 proxy
// applies to a connection Decide allowed with L7 set.
func (s *Set) HTTPEntries(ep *Endpoint, dir Direction, peer *Peer, port uint16, proto string) []*Entry {
	d := &ep.dirs[dir]
	receiver := ep.Workload
	if dir == Egress {
		receiver = peer.Workload
	}
	pe := s.entriesFor(d, peer, true)
	var out []*Entry
	for _, e := range pe.allow {
		if e.http != nil && e.portMatches(port, proto, receiver) {
			out = append(out, e)
		}
	}
	return out
}

// drop applies policyAuditMode to a drop.
func (s *Set) drop(v Verdict) Verdict {
	if s.Settings.AuditMode {
		v.Allowed, v.Audit = true, true
	}
	return v
}

func (s *Set) enforcedBy(d *direction) string {
	if d.by == nil {
		return "policyEnforcementMode always, with no policy selecting it"
	}
	return d.byText
}

func peerWord(dir Direction) string {
	if dir == Ingress {
		return "from the peer"
	}
	return "to the peer"
}

// portMatches reports whether the entry allows or denies port/proto.
func (e *Entry) portMatches(port uint16, proto string, receiver *config.Workload) bool {
	if e.ports == nil {
		return true
	}
	for i := range e.ports {
		if e.ports[i].matches(port, proto, receiver) {
			return true
		}
	}
	return false
}

// dnsVisible reports whether some egress rule with rules.dns would let
// Cilium's DNS proxy see, and allow, a lookup of name: the only way Cilium
// learns the addresses a toFQDNs rule allows.
func (d *direction) dnsVisible(name string) bool {
	for _, e := range d.allow {
		for i := range e.dns {
			if e.dns[i].matches(&Peer{FQDN: name}) {
				return true
			}
		}
	}
	return false
}

// requires returns the fromRequires/toRequires selectors of an entry's rule
// element; they restrict every allow of the endpoint in that direction.
func (e *Entry) requires() []selector { return e.peers.requires }

func requiresHold(reqs []selector, p *Peer) bool {
	for i := range reqs {
		if !reqs[i].matches(p.Labels) {
			return false
		}
	}
	return true
}

// HTTPVerdict is the L7 decision for one request.
type HTTPVerdict struct {
	Allowed bool
	Entry   *Entry // the entry whose rule matched; the first entry when none did
	Rule    int    // index in its rules.http, -1 when none matched
	entries []*Entry
}

// Reason explains the HTTP verdict.
func (v *HTTPVerdict) Reason() string {
	if v.Allowed {
		return fmt.Sprintf("%s rules.http[%d] (%s) matches", v.Entry.ID(), v.Rule, v.Entry.http[v.Rule].text)
	}
	var ids []string
	for _, e := range v.entries {
		ids = append(ids, e.ID())
	}
	return "no rules.http entry of " + strings.Join(ids, ", ") + " matches the request"
}

// DecideHTTP applies the HTTP rules of a connection's allow entries to a
// request: it passes when any rule of any of them matches; otherwise
// Cilium's proxy answers 403. It does not allocate.
func DecideHTTP(entries []*Entry, req *HTTPRequest) HTTPVerdict {
	for _, e := range entries {
		for i, r := range e.http {
			if r.matches(req) {
				return HTTPVerdict{Allowed: true, Entry: e, Rule: i, entries: entries}
			}
		}
	}
	v := HTTPVerdict{Rule: -1, entries: entries}
	if len(entries) > 0 {
		v.Entry = entries[0]
	}
	return v
}
