package engine

import (
	"fmt"
	"strings"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/netpol"
)

// checkNetwork applies network policy to a connection: egress at the client,
// ingress at the server, then the HTTP rules Cilium's proxy enforces on it.
// It reports false when the connection or request is denied.
func (e *Engine) checkNetwork(req Request, ar authz.Request, port uint16, transport string, mtlsOn bool, v *Verdict) bool {
	if len(e.net.Policies) == 0 && e.net.Settings.EnforcementMode == "default" {
		return true // no network policy: Cilium allows everything
	}
	src := netpol.World(ar.SourceIP, "")
	switch {
	case req.From != nil:
		src = e.net.PeerOf(req.From)
	case req.FromEntity != "":
		src = netpol.Reserved(req.FromEntity, ar.SourceIP)
	}
	dst := netpol.World(ar.DestIP, req.ToFQDN)
	switch {
	case req.To != nil:
		dst = e.net.PeerOf(req.To)
	case req.ToEntity != "":
		dst = netpol.Reserved(req.ToEntity, ar.DestIP)
	}
	type l7 struct {
		layer   string
		entries []*netpol.Entry
	}
	var proxies []l7
	for _, side := range []struct {
		layer string
		ep    *netpol.Endpoint
		dir   netpol.Direction
		peer  *netpol.Peer
	}{
		{LayerNetworkEgress, e.endpoint(req.From), netpol.Egress, dst},
		{LayerNetworkIngress, e.endpoint(req.To), netpol.Ingress, src},
	} {
		if side.ep == nil {
			continue // the peer is outside the cluster: no Cilium endpoint there
		}
		nv := e.net.Decide(side.ep, side.dir, side.peer, port, transport)
		kind, policy, path := nv.Policy()
		why := nv.Reason()
		by := DecidedBy{Layer: side.layer, Kind: kind, Policy: policy, RuleID: path, Reason: why}
		if !nv.Allowed {
			v.deny(0, by)
			v.step(side.layer, "deny", why+"; the packets are dropped")
			return false
		}
		result := "pass"
		if nv.Audit {
			result = "info"
			v.Warnings = append(v.Warnings, fmt.Sprintf("%s: %s", side.layer, why))
		}
		v.step(side.layer, result, why)
		if req.To == nil {
			v.DecidedBy = by // nothing after the client's egress decides
		}
		if nv.L7 {
			proxies = append(proxies, l7{side.layer, e.net.HTTPEntries(side.ep, side.dir, side.peer, port, transport)})
		}
	}
	for _, p := range proxies {
		where := "the client's egress"
		if p.layer == LayerNetworkIngress {
			where = "the server's ingress"
		}
		ids := entryIDs(p.entries)
		if mtlsOn {
			status := 0
			if req.HTTP != nil {
				status = 503
			}
			reason := "Cilium's HTTP proxy receives Istio mutual TLS, which it cannot parse as HTTP; Cilium documents Istio STRICT and PERMISSIVE mTLS as incompatible with HTTP network policy, so the connection fails"
			v.deny(status, DecidedBy{Layer: LayerL7, Kind: p.entries[0].Kind(), Policy: p.entries[0].PolicyID(), RuleID: p.entries[0].Path(), Reason: reason})
			v.step(LayerL7, "deny", fmt.Sprintf("rules.http of %s apply at %s; %s", ids, where, reason))
			return false
		}
		if port == 443 && !p.entries[0].InterceptsTLS() {
			v.Warnings = append(v.Warnings, fmt.Sprintf("rules.http of %s apply on port 443 without terminatingTLS: if the client speaks HTTPS there, Cilium's HTTP proxy cannot read it and the request fails", ids))
		}
		if req.HTTP == nil {
			v.Warnings = append(v.Warnings, fmt.Sprintf("rules.http of %s apply at %s: Cilium's proxy parses this port as HTTP, so a client that does not speak HTTP fails", ids, where))
			continue
		}
		hr := &netpol.HTTPRequest{Method: req.HTTP.Method, Path: req.HTTP.Path, Host: e.httpHost(req), Headers: rawHeaders(req.HTTP.Headers)}
		hv := netpol.DecideHTTP(p.entries, hr)
		why := hv.Reason()
		if !hv.Allowed {
			v.deny(403, DecidedBy{Layer: LayerL7, Kind: hv.Entry.Kind(), Policy: hv.Entry.PolicyID(), RuleID: hv.Entry.Path(), Reason: why})
			v.step(LayerL7, "deny", fmt.Sprintf("at %s: %s; Cilium's proxy answers 403 Access denied and the connection stays open", where, why))
			return false
		}
		v.step(LayerL7, "pass", fmt.Sprintf("at %s: %s", where, why))
	}
	return true
}

// endpoint returns the network policy endpoint of a workload, nil for none.
func (e *Engine) endpoint(w *config.Workload) *netpol.Endpoint {
	if w == nil {
		return nil
	}
	return e.net.Endpoint(w)
}

func entryIDs(es []*netpol.Entry) string {
	var ids []string
	for _, x := range es {
		ids = append(ids, x.ID())
	}
	return strings.Join(ids, ", ")
}

// rawHeaders looks headers up as Envoy does: by lowercase name, repeated
// values joined with ",".
func rawHeaders(hs []authz.Header) func(string) (string, bool) {
	var lower authz.Headers
	for _, h := range hs {
		lower = append(lower, authz.Header{Name: strings.ToLower(h.Name), Value: h.Value})
	}
	return lower.Get
}
