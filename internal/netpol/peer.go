package netpol

import (
	"net/netip"
	"regexp"
	"strings"

	"github.com/palisade-security/palisade/internal/config"
)

// Peer is the other end of a connection as Cilium sees it: a pod with its
// identity, or a reserved entity (world, host, remote-node, ...), with an
// address and, for traffic to a name learned by the DNS proxy, that name.
type Peer struct {
	Workload *config.Workload // nil unless the peer is a pod
	Labels   Labels
	Entity   string // "" for a pod; "world", "host", "remote-node", "kube-apiserver", ...
	IP       netip.Addr
	FQDN     string // the DNS name the IP was learned for (egress to fqdn:NAME)
}

// Reserved entities (pkg/policy/api/entity.go) and the identities they are.
const (
	EntityWorld         = "world"
	EntityHost          = "host"
	EntityRemoteNode    = "remote-node"
	EntityKubeAPIServer = "kube-apiserver"
	EntityHealth        = "health"
	EntityInit          = "init"
	EntityIngress       = "ingress"
	EntityUnmanaged     = "unmanaged"
)

// World is a peer outside the cluster at ip, optionally named.
func World(ip netip.Addr, fqdn string) *Peer {
	return &Peer{Entity: EntityWorld, Labels: reservedLabels(EntityWorld), IP: ip, FQDN: strings.ToLower(strings.TrimSuffix(fqdn, "."))}
}

// Reserved is one of Cilium's reserved identities as a peer: host,
// remote-node, kube-apiserver, health, ingress, init, unmanaged or world.
func Reserved(entity string, ip netip.Addr) *Peer {
	return &Peer{Entity: entity, Labels: reservedLabels(entity), IP: ip}
}

func (p *Peer) String() string {
	switch {
	case p.Workload != nil:
		return p.Workload.Key()
	case p.FQDN != "":
		return p.FQDN + " (world)"
	case p.IP.IsValid():
		return p.IP.String() + " (" + p.Entity + ")"
	}
	return p.Entity
}

// entityMatches reports whether entity (as written in fromEntities or
// toEntities) selects the peer. "cluster" is every pod and every reserved
// identity inside the cluster; "all" is everything; "none" nothing.
func entityMatches(entity string, p *Peer) bool {
	switch entity {
	case "all":
		return true
	case "none":
		return false
	case "cluster":
		return p.Workload != nil || (p.Entity != "" && p.Entity != EntityWorld)
	case "world", "world-ipv4", "world-ipv6":
		if p.Entity != EntityWorld {
			return false
		}
		switch entity {
		case "world-ipv4":
			return !p.IP.IsValid() || p.IP.Is4()
		case "world-ipv6":
			return !p.IP.IsValid() || p.IP.Is6()
		}
		return true
	}
	return p.Entity == entity
}

// cidrSet is a fromCIDR/toCIDR/CIDRSet entry: a prefix minus its excepts.
type cidrSet struct {
	prefix netip.Prefix
	except []netip.Prefix
}

// matches applies a CIDR rule. CIDR rules select addresses outside the
// cluster only: "CIDR rules do not apply to traffic where both sides of the
// connection are either managed by Cilium or use an IP belonging to a node".
func (c *cidrSet) matches(p *Peer) bool {
	if p.Entity != EntityWorld || !p.IP.IsValid() || !c.prefix.Contains(p.IP) {
		return false
	}
	for _, e := range c.except {
		if e.Contains(p.IP) {
			return false
		}
	}
	return true
}

// fqdnMatch is a toFQDNs entry: an exact name or a compiled matchPattern.
type fqdnMatch struct {
	name    string // lowercase, without the trailing dot
	pattern *regexp.Regexp
	text    string
}

func (f *fqdnMatch) matches(p *Peer) bool {
	if p.FQDN == "" {
		return false
	}
	if f.pattern != nil {
		return f.pattern.MatchString(p.FQDN + ".")
	}
	return p.FQDN == f.name
}
