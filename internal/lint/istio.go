package lint

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/mtls"
	"github.com/palisade-security/palisade/internal/trafficpolicy"
)

// istio runs the AuthorizationPolicy, PeerAuthentication and
// RequestAuthentication checks. Policies istiod rejects are checked too:
// they are what their authors meant, and they will be in effect once
// accepted.
func (l *linter) istio() {
	for _, ap := range l.policies {
		rules := ap.rules
		l.checkSelector(ap)
		for i := range rules {
			n := &rules[i]
			l.checkHTTPOnTCP(ap, n)
			l.checkHosts(ap, n)
			l.checkHeaders(ap, n)
			flagged := l.checkIdentityRequirements(ap, n)
			l.checkJWT(ap, n)
			l.checkIdentities(ap, n)
			if !flagged {
				l.checkBroad(ap, n)
			}
		}
	}
	l.checkShadowing()
	l.checkUnprotected()
	l.checkOtherSelectors()
}

// wport is a workload port as the sidecar sees it.
type wport struct {
	w    *config.Workload
	port uint16
	tcp  bool      // Istio proxies it as opaque TCP (by the Service port's protocol)
	mode mtls.Mode // the PeerAuthentication mode on the port
}

func (p wport) String() string { return fmt.Sprintf("%s port %d", p.w.Key(), p.port) }

// ports lists the TCP container ports of a workload that its sidecar
// captures, with their protocol and mTLS mode.
func (l *linter) ports(w *config.Workload) []wport {
	if ps, ok := l.portMemo[w]; ok {
		return ps
	}
	var out []wport
	defer func() { l.portMemo[w] = out }()
	c := l.eng.Workload(w)
	for _, cp := range w.Ports {
		if cp.Protocol != "TCP" {
			continue // Istio's sidecar captures TCP only
		}
		_, sp := l.eng.ServicePort(w, cp.Port)
		_, opaque := engine.OpaqueProtocol(sp)
		mode, _, _ := c.MTLS.ForPort(uint32(cp.Port))
		out = append(out, wport{w: w, port: cp.Port, tcp: opaque, mode: mode})
	}
	return out
}

func (l *linter) apSource(ap *apInfo, path string) Source { return sourceOf(ap.r.Source.At(path)) }

func action(ap *apInfo) authz.Action { return ap.p.Action }

// checkHTTPOnTCP (PAL-1001): HTTP-only fields in a rule that applies to a
// port Istio proxies as TCP.
func (l *linter) checkHTTPOnTCP(ap *apInfo, n *nrule) {
	if a := action(ap); a != authz.Allow && a != authz.Deny {
		return
	}
	names, first := n.httpFields()
	if len(names) == 0 {
		return
	}
	var tcp []string
	for _, w := range ap.selected {
		for _, p := range l.ports(w) {
			if p.tcp && n.appliesToPort(p.port) {
				tcp = append(tcp, p.String())
			}
		}
	}
	if len(tcp) == 0 {
		return
	}
	fields := strings.Join(names, ", ")
	why := "istiod cannot generate " + fields + " for a TCP filter chain. For ALLOW it skips the whole rule there (\"these fields are never matched\"); for DENY and CUSTOM it drops only those fields, so the rule matches more (\"these fields are considered always matched\") — Istio's 'HTTP-only fields on TCP ports'. A Service port named tcp-*, mysql, redis, mongo or tls (or with such an appProtocol) is proxied as TCP."
	if action(ap) == authz.Allow {
		l.add("PAL-1001", l.apSource(ap, first), ap.r.String(),
			fmt.Sprintf("ALLOW rule %d uses HTTP-only %s, so on the TCP port%s %s the whole rule is dropped and allows nothing", n.index, fields, plural(len(tcp)), list(tcp, 4)),
			why,
			"Give TCP ports their own rule with `ports` and only principals, namespaces or ipBlocks; keep the HTTP fields in a rule whose `ports` are HTTP ports.")
		return
	}
	l.add("PAL-1001", l.apSource(ap, first), ap.r.String(),
		fmt.Sprintf("DENY rule %d uses HTTP-only %s, which are ignored on the TCP port%s %s, so there the rule denies every connection its other fields match", n.index, fields, plural(len(tcp)), list(tcp, 4)),
		why,
		"Add `ports` with the HTTP ports to the rule's operation so that it does not apply to TCP ports.")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// checkHosts (PAL-1002): to.hosts that no request the selected workloads
// receive can carry.
func (l *linter) checkHosts(ap *apInfo, n *nrule) {
	if ap.p.HasTargetRefs || len(ap.selected) == 0 {
		return
	}
	var authorities []string
	for _, w := range ap.selected {
		if isGateway(w) {
			return // a gateway is called by external names: anything goes
		}
		svcs := l.snap.Inventory.ServicesFor(w)
		if len(svcs) == 0 {
			return // called by address only: cannot tell
		}
		for _, s := range svcs {
			for _, name := range []string{s.Name, s.Name + "." + s.Namespace, s.Name + "." + s.Namespace + ".svc", s.Name + "." + s.Namespace + ".svc." + trafficpolicy.ClusterDomain} {
				authorities = append(authorities, name)
				for _, p := range s.Ports {
					authorities = append(authorities, fmt.Sprintf("%s:%d", name, p.Port))
				}
			}
		}
		for _, ip := range w.IPs {
			authorities = append(authorities, ip.String())
			for _, p := range w.Ports {
				authorities = append(authorities, fmt.Sprintf("%s:%d", ip, p.Port))
			}
		}
	}
	for _, e := range n.to {
		hosts := e.fields["hosts"].values
		if len(hosts) == 0 {
			continue
		}
		match := false
		for _, h := range hosts {
			for _, a := range authorities {
				match = match || hostMatches(h, a)
			}
		}
		if match {
			continue
		}
		effect := "the rule never allows anything"
		if action(ap) != authz.Allow {
			effect = "the rule never matches"
		}
		l.add("PAL-1002", l.apSource(ap, fieldPath(e, "hosts", false)), ap.r.String(),
			fmt.Sprintf("to.hosts %s never matches: %s is called as %s, and %s", quoted(hosts), keys(ap.selected, 3), list(serviceNames(l, ap.selected), 3), effect),
			"An AuthorizationPolicy with a selector is enforced by the selected workload's sidecar on the requests it receives, and `hosts` is matched against their Host (:authority), case-insensitively and including any port. Names of other services, such as external APIs the workload calls, never appear there: outbound calls are not subject to the server-side policy at all.",
			"Remove `hosts` (control egress to external names with Cilium toFQDNs or an egress gateway), or list the names clients use for this service.")
	}
}

func serviceNames(l *linter, ws []*config.Workload) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range ws {
		for _, s := range l.snap.Inventory.ServicesFor(w) {
			name := s.Name + "." + s.Namespace + ".svc." + trafficpolicy.ClusterDomain
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}

// isGateway reports whether a workload is an Istio gateway, whose inbound
// requests carry external host names.
func isGateway(w *config.Workload) bool {
	if v := w.Labels["istio"]; v == "ingressgateway" || v == "egressgateway" {
		return true
	}
	_, ok := w.Labels["gateway.networking.k8s.io/gateway-name"]
	return ok
}

var (
	secretHeader  = regexp.MustCompile(`token|secret|passw|pwd|api-?key|apikey|-key$|^key$|credential|session|signature|auth-`)
	counterHeader = regexp.MustCompile(`count|rate|limit|quota|attempt|requests|calls`)
)

// checkHeaders (PAL-1003, PAL-1004, PAL-1005): ALLOW conditions on headers
// the client sets, used as if they proved something.
func (l *linter) checkHeaders(ap *apInfo, n *nrule) {
	if action(ap) != authz.Allow {
		return
	}
	for _, c := range n.when {
		if !strings.HasPrefix(c.key, "request.headers[") || len(c.values) == 0 {
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(c.key, "request.headers["), "]"))
		if l.proxySetsHeader(ap.selected, name) {
			continue // a RequestAuthentication writes it from a validated JWT
		}
		src := l.apSource(ap, c.path)
		clientSet := fmt.Sprintf("The %s header arrives as the client sent it: the sidecar does not set or check it, so any client that can reach the workload chooses its value.", name)
		wild := ""
		for _, v := range c.values {
			if strings.Contains(v, "*") {
				wild = fmt.Sprintf(" '%s' accepts any value matching that pattern (Istio: a leading or trailing * is a suffix or prefix match).", v)
				break
			}
		}
		switch {
		case name == "authorization":
			var noRA []*config.Workload
			for _, w := range ap.selected {
				if len(l.eng.Workload(w).JWTSources) == 0 {
					noRA = append(noRA, w)
				}
			}
			if len(noRA) == 0 && len(ap.selected) > 0 {
				continue // a present token is validated first (invalid: 401)
			}
			who := "no workload"
			if len(noRA) > 0 {
				who = keys(noRA, 3)
			}
			l.add("PAL-1004", src, ap.r.String(),
				fmt.Sprintf("rule %d checks the Authorization header against %s as if it were authentication, but no RequestAuthentication validates tokens on %s: any string passes", n.index, quoted(c.values), who),
				clientSet+wild+" Only a RequestAuthentication makes the sidecar validate a JWT (signature, issuer, expiry, audience); without one, 'Bearer anything' matches.",
				"Add a RequestAuthentication for the workload and require a validated token with `requestPrincipals: ['<issuer>/*']` instead of matching the header.")
		case counterHeader.MatchString(name):
			l.add("PAL-1005", src, ap.r.String(),
				fmt.Sprintf("rule %d uses request.headers[%s] %s as a rate limit, but the client sets that header: sending '1' every time passes", n.index, name, quoted(c.values)),
				clientSet+" AuthorizationPolicy keeps no state between requests, so it cannot count them.",
				"Remove the condition and rate-limit with Envoy's local or global rate limiting (Istio's rate limit task), keyed on the JWT subject if limits are per user.")
		case secretHeader.MatchString(name):
			l.add("PAL-1003", src, ap.r.String(),
				fmt.Sprintf("rule %d treats request.headers[%s] %s as a secret, but any client can send %s", n.index, name, quoted(c.values), sendable(c.values)),
				clientSet+wild+" A value written in a policy is readable by everyone who can read the policy and is never rotated.",
				"Authenticate the caller instead: require its mTLS principal, or a JWT validated by a RequestAuthentication (requestPrincipals, request.auth.claims).")
		}
	}
}

// sendable says what a client must send to pass a header condition.
func sendable(values []string) string {
	v := values[0]
	switch {
	case v == "*":
		return "the header with any value"
	case strings.HasPrefix(v, "*"):
		return fmt.Sprintf("any value ending in '%s'", v[1:])
	case strings.HasSuffix(v, "*"):
		return fmt.Sprintf("any value starting with '%s'", v[:len(v)-1])
	}
	return "that value"
}

// proxySetsHeader reports whether a RequestAuthentication of the workloads
// writes the header from a validated token (outputPayloadToHeader,
// outputClaimToHeaders), replacing whatever the client sent.
func (l *linter) proxySetsHeader(ws []*config.Workload, name string) bool {
	for _, w := range ws {
		for _, src := range l.eng.Workload(w).JWTSources {
			for _, ra := range l.snap.RequestAuthentications {
				if ra.Key() != src {
					continue
				}
				for _, r := range ra.Spec.GetJwtRules() {
					if strings.EqualFold(r.GetOutputPayloadToHeader(), name) {
						return true
					}
					for _, c := range r.GetOutputClaimToHeaders() {
						if strings.EqualFold(c.GetHeader(), name) {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// checkIdentityRequirements (PAL-1010 to PAL-1013): rules whose meaning
// depends on mutual TLS, on ports where the mTLS mode changes it. It
// reports whether it found something, so that the broad-grant check does
// not say the same again.
func (l *linter) checkIdentityRequirements(ap *apInfo, n *nrule) bool {
	if ap.p.DryRun {
		return false
	}
	var strict, plain, disabled []wport
	httpOnly, _ := n.httpFields()
	for _, w := range ap.selected {
		for _, p := range l.ports(w) {
			if !n.appliesToPort(p.port) || (p.tcp && len(httpOnly) > 0 && action(ap) == authz.Allow) {
				continue // not this rule's port, or dropped there (PAL-1001)
			}
			switch p.mode {
			case mtls.Strict:
				strict = append(strict, p)
			case mtls.Disable:
				disabled = append(disabled, p)
				plain = append(plain, p)
			default:
				plain = append(plain, p)
			}
		}
	}
	switch action(ap) {
	case authz.Allow:
		if path, field, kind := n.anonymousOnly(); path != "" {
			name := ""
			if promisesDenial(ap.r.Meta.Name) {
				name = fmt.Sprintf(", the opposite of what the name %q says", ap.r.Meta.Name)
			}
			effect := fmt.Sprintf("No selected port accepts plaintext today (%d STRICT), so it allows nothing yet, while it puts %s into deny-by-default; any port that becomes PERMISSIVE or DISABLE is open to every client without a sidecar.", len(strict), keys(ap.selected, 3))
			if len(ap.selected) == 0 {
				effect = "Wherever it applies, every client without a sidecar is allowed on ports that accept plaintext, and every other request is denied by default."
			}
			if kind == "a validated JWT" {
				effect = "Any request that carries no JWT is allowed by this rule."
			} else if len(plain) > 0 {
				effect = fmt.Sprintf("%s accept%s plaintext, so every client without a sidecar is allowed there.", list(wportNames(plain), 3), sOnce(len(plain)))
			}
			l.add("PAL-1010", l.apSource(ap, path), ap.r.String(),
				fmt.Sprintf("ALLOW rule %d matches only requests without %s (%s): it admits unauthenticated clients%s", n.index, kind, field, name),
				"principals, namespaces and requestPrincipals are matched against the peer certificate or the validated JWT; a request without one has no value, and a `not` list holding '*' excludes every value there is, so it is true exactly for unauthenticated requests (Istio: 'Dependency on mutual TLS'). An ALLOW policy allows what its rules match, whatever its name. "+effect,
				"For a default deny, write an ALLOW policy without rules (`spec: {}`); to refuse plaintext, set PeerAuthentication STRICT or use a DENY policy with notPrincipals: ['*'].")
			return true
		}
		if !n.requiresPeer() && !n.requiresJWT() && len(plain) > 0 {
			l.add("PAL-1011", l.apSource(ap, n.path), ap.r.String(),
				fmt.Sprintf("ALLOW rule %d requires no identity, and %s accept%s plaintext: any client without a sidecar, inside or outside the cluster, is allowed", n.index, list(wportNames(plain), 3), sOnce(len(plain))),
				"A PERMISSIVE (or DISABLE) port accepts connections without mutual TLS, and a rule without principals, namespaces, service accounts or requestPrincipals matches them too: nothing identifies the client (Istio: 'Dependency on mutual TLS').",
				"Set PeerAuthentication STRICT on these ports, or require principals or namespaces in the rule.")
			return true
		}
		if n.requiresPeer() && len(disabled) > 0 {
			l.add("PAL-1013", l.apSource(ap, n.path), ap.r.String(),
				fmt.Sprintf("ALLOW rule %d requires a peer identity, but mTLS is DISABLE on %s, so it never matches there", n.index, list(wportNames(disabled), 3)),
				"With PeerAuthentication DISABLE, clients connect in plaintext (auto mTLS follows the server's mode), so there is no peer certificate and principals, namespaces and service accounts match nothing.",
				"Enable mTLS (STRICT or PERMISSIVE) on these ports, or identify clients by ipBlocks there.")
			return true
		}
	case authz.Deny:
		if n.requiresPeer() && len(plain) > 0 {
			l.add("PAL-1012", l.apSource(ap, n.path), ap.r.String(),
				fmt.Sprintf("DENY rule %d matches only clients with a peer identity, and %s accept%s plaintext: a client without a sidecar is not denied", n.index, list(wportNames(plain), 3), sOnce(len(plain))),
				"A plaintext connection has no peer identity, so principals, namespaces and service accounts never match it and the DENY rule does not apply (ISTIO-SECURITY-2021-004).",
				"Set PeerAuthentication STRICT on these ports, or add a DENY rule with notPrincipals: ['*'] to refuse plaintext.")
			return true
		}
	}
	return false
}

func wportNames(ps []wport) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s port %d (%s)", p.w.Key(), p.port, p.mode))
	}
	return out
}

// sOnce is the verb ending for a list: "accepts" for one, "accept" for many.
func sOnce(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

// promisesDenial reports whether a policy's name says it denies.
func promisesDenial(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"deny", "block", "reject", "lockdown", "forbid", "default-deny", "drop"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// checkJWT (PAL-1014, PAL-1015): rules on request principals or claims
// where no RequestAuthentication can produce them.
func (l *linter) checkJWT(ap *apInfo, n *nrule) {
	path, uses := n.usesJWT()
	if !uses || len(ap.selected) == 0 {
		return
	}
	var without, with []*config.Workload
	for _, w := range ap.selected {
		if len(l.eng.Workload(w).JWTSources) == 0 {
			without = append(without, w)
		} else {
			with = append(with, w)
		}
	}
	if len(without) > 0 {
		var effect string
		switch {
		case n.requiresJWT() && action(ap) == authz.Allow && len(without) == len(ap.selected):
			effect = "the rule can never match"
		case n.requiresJWT() && action(ap) == authz.Allow:
			effect = "the rule never matches there"
		case n.requiresJWT():
			effect = "the rule never applies there"
		case !n.positiveJWT():
			effect = "its not-conditions on request.auth (notRequestPrincipals, notValues) match every request there"
		default:
			effect = "its conditions on request.auth never hold there"
		}
		l.add("PAL-1014", l.apSource(ap, path), ap.r.String(),
			fmt.Sprintf("rule %d reads request.auth (JWT), but no RequestAuthentication applies to %s, so %s", n.index, keys(without, 3), effect),
			"request.auth.* and requestPrincipals come from the jwt_authn filter, which a sidecar runs only for the RequestAuthentications that select its workload (same namespace or root namespace). Without one, no token is ever validated and the attributes do not exist. "+l.raScope(without[0].Namespace),
			"Add a RequestAuthentication that selects these workloads (or one without a selector for the namespace) with the issuer and jwksUri of the tokens.")
	}
	for _, w := range with {
		issuers := l.issuers(w)
		for _, e := range n.from {
			for _, v := range e.fields["requestPrincipals"].values {
				if v == "*" || strings.HasPrefix(v, "*") {
					continue
				}
				i := strings.LastIndexByte(v, '/')
				if i < 0 {
					if strings.HasSuffix(v, "*") {
						continue // an issuer prefix with any subject
					}
					l.add("PAL-1015", l.apSource(ap, fieldPath(e, "requestPrincipals", false)), ap.r.String(),
						fmt.Sprintf("requestPrincipals value '%s' has no '/', so Istio reads it as issuer '%s' with an empty subject, which no token has", v, v),
						"istiod splits a requestPrincipals value at its last '/' into the token's iss and sub claims; without a '/', sub must be empty.",
						fmt.Sprintf("Write '%s/*' for any subject of that issuer, or '<issuer>/<subject>'.", v))
					continue
				}
				iss := v[:i]
				if strings.Count(v, "/") == 2 && strings.Contains(v, "://") {
					l.add("PAL-1015", l.apSource(ap, fieldPath(e, "requestPrincipals", false)), ap.r.String(),
						fmt.Sprintf("requestPrincipals '%s' is an issuer without a subject: Istio reads it as issuer '%s' and subject '%s'", v, iss, v[i+1:]),
						"istiod splits a requestPrincipals value at its last '/' into the token's iss and sub claims, so an issuer URL alone names a different issuer.",
						fmt.Sprintf("Write '%s/*' for any subject of that issuer.", v))
					continue
				}
				if !contains(issuers, iss) {
					l.add("PAL-1015", l.apSource(ap, fieldPath(e, "requestPrincipals", false)), ap.r.String(),
						fmt.Sprintf("requestPrincipals '%s' wants issuer '%s', which no RequestAuthentication of %s accepts (issuers: %s)", v, iss, w.Key(), strings.Join(issuers, ", ")),
						"A token from an issuer no jwtRule names is rejected with 401 before authorization, so this value never matches.",
						"Use the issuer of a jwtRule that applies to the workload, or add a jwtRule for this issuer.")
				}
			}
		}
	}
}

// issuers lists the issuers of the RequestAuthentications of a workload.
func (l *linter) issuers(w *config.Workload) []string {
	var out []string
	for _, src := range l.eng.Workload(w).JWTSources {
		for _, ra := range l.snap.RequestAuthentications {
			if ra.Key() == src {
				for _, r := range ra.Spec.GetJwtRules() {
					out = append(out, r.GetIssuer())
				}
			}
		}
	}
	return out
}

// raScope says what the RequestAuthentications of a namespace select.
func (l *linter) raScope(ns string) string {
	var parts []string
	for _, ra := range l.snap.RequestAuthentications {
		if ra.Meta.Namespace != ns && ra.Meta.Namespace != l.root {
			continue
		}
		sel := "every workload"
		if m := ra.Spec.GetSelector().GetMatchLabels(); len(m) > 0 {
			sel = labelString(m) + " only"
		}
		parts = append(parts, fmt.Sprintf("RequestAuthentication %s selects %s.", ra.Key(), sel))
	}
	return strings.Join(parts, " ")
}

func labelString(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+": "+m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// checkSelector (PAL-1020) for an AuthorizationPolicy.
func (l *linter) checkSelector(ap *apInfo) {
	if !l.hasInventory() || ap.p.HasTargetRefs || len(ap.selected) > 0 {
		return
	}
	sel := ap.r.Spec.GetSelector().GetMatchLabels()
	if len(sel) == 0 {
		l.add("PAL-1020", sourceOf(ap.r.Source), ap.r.String(),
			fmt.Sprintf("the policy applies to namespace %s, which has no workload in the inventory", ap.r.Meta.Namespace),
			"A policy without a selector applies to the workloads of its namespace (of every namespace in the root namespace); there are none here.",
			"Check the namespace, or add the namespace's workloads to the inventory.")
		return
	}
	l.add("PAL-1020", l.apSource(ap, "spec.selector"), ap.r.String(),
		fmt.Sprintf("selector %s selects no workload in namespace %s", labelString(sel), scopeName(ap.r.Meta.Namespace, l.root)),
		"A workload selector selects the workloads whose labels include all its labels, in the policy's namespace (in every namespace for the root namespace). "+l.labelHint(ap.r.Meta.Namespace, sel),
		"Correct the selector's labels to those of the workload the policy is for.")
}

func scopeName(ns, root string) string {
	if ns == root {
		return ns + " (the root namespace: any namespace)"
	}
	return ns
}

// labelHint names the workloads that carry the selector's keys with other
// values, as the likely intended targets.
func (l *linter) labelHint(ns string, sel map[string]string) string {
	var hints []string
	for _, k := range sortedKeys(sel) {
		var vals []string
		for _, w := range l.workloads {
			if ns != l.root && w.Namespace != ns {
				continue
			}
			if v, ok := w.Labels[k]; ok && !contains(vals, v) {
				vals = append(vals, v)
			}
		}
		if len(vals) > 0 {
			sort.Strings(vals)
			hints = append(hints, fmt.Sprintf("%s there is one of %s", k, list(vals, 8)))
		}
	}
	if len(hints) == 0 {
		return "No workload there has these label keys."
	}
	return "The label " + strings.Join(hints, "; ") + "."
}

// checkIdentities (PAL-1021): principals, namespaces and service accounts
// that no workload of the inventory has.
func (l *linter) checkIdentities(ap *apInfo, n *nrule) {
	if !l.hasInventory() {
		return
	}
	report := func(path, what, why string) {
		l.add("PAL-1021", l.apSource(ap, path), ap.r.String(), what,
			why+" The inventory is what the input declares; if the client runs elsewhere, add it.",
			"Correct the value to the identity of the intended client (spiffe://<trust domain>/ns/<namespace>/sa/<service account>, written without spiffe://).")
	}
	check := func(path, kind string, values []string) {
		for _, v := range values {
			if v == "*" {
				continue
			}
			switch kind {
			case "principals":
				if strings.HasPrefix(v, "spiffe://") {
					report(path, fmt.Sprintf("principal '%s' starts with spiffe://, which Istio adds itself, so it never matches", v),
						"Istio matches principals against the peer's URI SAN with 'spiffe://' prepended, giving spiffe://spiffe://...")
					continue
				}
				if !l.anyWorkload(func(w *config.Workload) bool { return principalMatches(v, l.identity(w), l.tds) }) {
					report(path, fmt.Sprintf("principal '%s' matches no workload in the inventory", v),
						fmt.Sprintf("Workload identities are spiffe://%s/ns/<namespace>/sa/<service account>; none matches. %s", l.snap.Mesh.TrustDomain(), l.saHint(v)))
				}
			case "namespaces":
				if !l.anyWorkload(func(w *config.Workload) bool { return namespaceMatches(v, w.Namespace) }) {
					report(path, fmt.Sprintf("namespace '%s' has no workload in the inventory", v),
						"namespaces matches the namespace part of the peer's identity; no workload runs there.")
				}
			case "serviceAccounts":
				if !l.anyWorkload(func(w *config.Workload) bool { return serviceAccountMatches(v, ap.r.Meta.Namespace, w) }) {
					report(path, fmt.Sprintf("service account '%s' is used by no workload in the inventory", v),
						"serviceAccounts matches the service account of the peer's identity (a value without '/' is in the policy's namespace); no workload runs as it.")
				}
			}
		}
	}
	for _, e := range n.from {
		for _, f := range []string{"principals", "namespaces", "serviceAccounts"} {
			if v, ok := e.fields[f]; ok && len(v.values) > 0 {
				check(fieldPath(e, f, false), f, v.values)
			}
		}
	}
	for _, c := range n.when {
		switch c.key {
		case "source.principal":
			check(c.path, "principals", c.values)
		case "source.namespace":
			check(c.path, "namespaces", c.values)
		case "source.serviceAccount":
			check(c.path, "serviceAccounts", c.values)
		}
	}
}

func (l *linter) anyWorkload(f func(*config.Workload) bool) bool {
	for _, w := range l.workloads {
		if f(w) {
			return true
		}
	}
	return false
}

// saHint names the service accounts workloads of the principal's namespace
// run as.
func (l *linter) saHint(principal string) string {
	parts := strings.Split(principal, "/")
	if len(parts) != 5 || parts[1] != "ns" {
		return ""
	}
	var sas []string
	for _, w := range l.workloads {
		if w.Namespace == parts[2] && !contains(sas, w.ServiceAccount) {
			sas = append(sas, w.ServiceAccount)
		}
	}
	if len(sas) == 0 {
		return fmt.Sprintf("No workload runs in namespace %s.", parts[2])
	}
	sort.Strings(sas)
	return fmt.Sprintf("Workloads in %s run as %s.", parts[2], list(sas, 8))
}

// allMethods are the methods whose presence means "every method".
var allMethods = []string{"GET", "POST", "PUT", "DELETE"}

// checkBroad (PAL-1040): ALLOW rules that grant everything.
func (l *linter) checkBroad(ap *apInfo, n *nrule) {
	if action(ap) != authz.Allow || ap.p.DryRun || len(ap.selected) == 0 {
		return
	}
	noSelector := len(ap.r.Spec.GetSelector().GetMatchLabels()) == 0 && !ap.p.HasTargetRefs
	everyOp := true
	for _, e := range n.to {
		if len(e.fields["paths"].values) > 0 || len(e.fields["ports"].values) > 0 || len(e.fields["hosts"].values) > 0 {
			everyOp = false
		}
		if m := e.fields["methods"].values; len(m) > 0 && !contains(m, "*") {
			for _, want := range allMethods {
				if !contains(m, want) {
					everyOp = false
				}
			}
		}
	}
	scope := fmt.Sprintf("the %d selected workloads", len(ap.selected))
	if noSelector {
		scope = fmt.Sprintf("every workload of namespace %s (%d: %s)", ap.r.Meta.Namespace, len(ap.selected), keys(ap.selected, 4))
		if ap.r.Meta.Namespace == l.root {
			scope = fmt.Sprintf("every workload of the mesh (%d)", len(ap.selected))
		}
	}
	switch {
	case len(n.from) == 0 && len(n.to) == 0 && len(n.when) == 0:
		l.add("PAL-1040", l.apSource(ap, n.path), ap.r.String(),
			fmt.Sprintf("ALLOW rule %d is empty, so it allows every request from every client to %s", n.index, scope),
			"An empty rule always matches (\"allow-all\"): it makes the workload's other ALLOW policies meaningless.",
			"Remove the rule, or give it from (principals, namespaces) and to (ports, methods, paths) for the traffic it is for.")
	case noSelector && everyOp:
		who := "every client"
		if len(n.from) > 0 {
			who = "its sources"
		}
		l.add("PAL-1040", l.apSource(ap, n.path), ap.r.String(),
			fmt.Sprintf("ALLOW rule %d has no selector and no paths or ports, so it grants %s every operation on %s", n.index, who, scope),
			"A policy without a selector applies to every workload of its namespace, and an operation without paths, ports or hosts (methods listing every common verb, or none) matches every request — including databases and caches that were never meant to be reached this way.",
			"Add a selector for the workloads this is for, and `paths`/`ports` for the operations the clients need.")
	}
}

// checkShadowing (PAL-1030, PAL-1031): rules that never decide because
// another rule, of a DENY policy or earlier of the same action, already
// matches everything they match.
func (l *linter) checkShadowing() {
	type ruleRef struct {
		ap *apInfo
		n  nrule
	}
	var allows, denies []ruleRef
	for _, ap := range l.policies {
		if ap.rejected || ap.p.DryRun || len(ap.selected) == 0 {
			continue
		}
		for _, n := range ap.rules {
			ref := ruleRef{ap, n}
			switch action(ap) {
			case authz.Allow:
				allows = append(allows, ref)
			case authz.Deny:
				denies = append(denies, ref)
			}
		}
	}
	within := func(a, b *apInfo) bool { // every workload b selects, a selects
		for _, w := range b.selected {
			if !containsWorkload(a.selected, w) {
				return false
			}
		}
		return true
	}
	name := func(r ruleRef) string { return fmt.Sprintf("%s rule %d", r.ap.r.Key(), r.n.index) }
	for _, b := range allows {
		for _, d := range denies {
			if within(d.ap, b.ap) && ruleCovers(&d.n, &b.n) {
				l.add("PAL-1030", l.apSource(b.ap, b.n.path), b.ap.r.String(),
					fmt.Sprintf("ALLOW rule %d never allows anything: DENY %s matches every request it matches, on every workload it applies to", b.n.index, name(d)),
					"A sidecar evaluates DENY policies before ALLOW policies, and a request any DENY rule matches is denied whatever the ALLOW rules say.",
					"Narrow the DENY rule, or remove the ALLOW rule.")
				break
			}
		}
	}
	redundant := func(list []ruleRef, act string) {
		for j, b := range list {
			for _, a := range list[:j] {
				if within(a.ap, b.ap) && ruleCovers(&a.n, &b.n) {
					l.add("PAL-1031", l.apSource(b.ap, b.n.path), b.ap.r.String(),
						fmt.Sprintf("%s rule %d matches nothing that %s %s does not already match", act, b.n.index, act, name(a)),
						"Rules of one action are ORed: a rule whose every match is matched by another changes no verdict.",
						"Remove the redundant rule, or make it say what it was meant to add.")
					break
				}
			}
		}
	}
	redundant(allows, "ALLOW")
	redundant(denies, "DENY")
}

func containsWorkload(ws []*config.Workload, w *config.Workload) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// checkUnprotected (PAL-1041): workloads without an enforced ALLOW policy
// in a namespace whose other workloads deny by default.
func (l *linter) checkUnprotected() {
	byNS := map[string][]*config.Workload{}
	for _, w := range l.workloads {
		if len(l.ports(w)) > 0 {
			byNS[w.Namespace] = append(byNS[w.Namespace], w)
		}
	}
	for _, ns := range sortedKeys(byNS) {
		var with, without []*config.Workload
		for _, w := range byNS[ns] {
			if l.hasAllow(w) {
				with = append(with, w)
			} else {
				without = append(without, w)
			}
		}
		if len(with) == 0 {
			continue
		}
		for _, w := range without {
			l.add("PAL-1041", sourceOf(w.Source.At("metadata.name")), w.String(),
				fmt.Sprintf("%s has no ALLOW policy, so Istio allows it every request, while %d other workload%s of %s %s by default", w.Key(), len(with), plural(len(with)), ns, map[bool]string{true: "denies", false: "deny"}[len(with) == 1]),
				"A workload with no enforced ALLOW policy allows whatever no DENY policy denies; deny-by-default holds only for workloads that some ALLOW policy selects. Policies selecting the others: "+l.allowPolicyNames(with)+".",
				"Add an ALLOW policy for this workload, or a namespace-wide allow-nothing policy (`spec: {}`) so that every workload denies by default.")
		}
	}
}

func (l *linter) hasAllow(w *config.Workload) bool {
	for _, p := range l.eng.Workload(w).Authz.Policies {
		if p.Action == authz.Allow && !p.DryRun {
			return true
		}
	}
	return false
}

func (l *linter) allowPolicyNames(ws []*config.Workload) string {
	var names []string
	for _, w := range ws {
		for _, p := range l.eng.Workload(w).Authz.Policies {
			if p.Action == authz.Allow && !p.DryRun && !contains(names, p.ID()) {
				names = append(names, p.ID())
			}
		}
	}
	return list(names, 4)
}

// checkOtherSelectors (PAL-1020) for RequestAuthentication and
// PeerAuthentication.
func (l *linter) checkOtherSelectors() {
	if !l.hasInventory() {
		return
	}
	for _, r := range l.snap.RequestAuthentications {
		sel := r.Spec.GetSelector().GetMatchLabels()
		if len(sel) == 0 || r.Spec.GetTargetRef() != nil || len(r.Spec.GetTargetRefs()) > 0 {
			continue
		}
		if !l.anyWorkload(func(w *config.Workload) bool {
			return (r.Meta.Namespace == l.root || w.Namespace == r.Meta.Namespace) && config.Selects(sel, w.Labels)
		}) {
			l.add("PAL-1020", sourceOf(r.Source.At("spec.selector")), r.String(),
				fmt.Sprintf("selector %s selects no workload in namespace %s", labelString(sel), scopeName(r.Meta.Namespace, l.root)),
				"A RequestAuthentication applies to the workloads its selector selects; with none, no token is validated anywhere on its behalf. "+l.labelHint(r.Meta.Namespace, sel),
				"Correct the selector's labels to those of the workloads whose tokens it should validate.")
		}
	}
	for _, r := range l.snap.PeerAuthentications {
		sel := r.Spec.GetSelector().GetMatchLabels()
		if len(sel) == 0 || l.rejected[r.String()] {
			continue
		}
		if r.Meta.Namespace == l.root {
			l.add("PAL-1020", sourceOf(r.Source.At("spec.selector")), r.String(),
				"a PeerAuthentication with a selector in the root namespace is ignored",
				"istiod composes PeerAuthentications from the mesh level (root namespace, no selector), the namespace level and the workload level (a selector outside the root namespace); a selector policy in the root namespace belongs to none of them.",
				"Move it to the namespace of the workloads it selects, or drop the selector to make it mesh-wide.")
			continue
		}
		if !l.anyWorkload(func(w *config.Workload) bool { return w.Namespace == r.Meta.Namespace && config.Selects(sel, w.Labels) }) {
			l.add("PAL-1020", sourceOf(r.Source.At("spec.selector")), r.String(),
				fmt.Sprintf("selector %s selects no workload in namespace %s", labelString(sel), r.Meta.Namespace),
				"A workload-level PeerAuthentication applies to the workloads its selector selects; with none, their mode stays the namespace's. "+l.labelHint(r.Meta.Namespace, sel),
				"Correct the selector's labels to those of the workloads it is for.")
		}
	}
}
