package validation

import (
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DestinationRule reports why the API server or istiod would refuse a
// DestinationRule, plus istiod's admission warnings. meta may be nil; its
// namespace matters to exportTo and to configmap:// credential names.
func DestinationRule(meta *metav1.ObjectMeta, spec *networkingv1alpha3.DestinationRule) []Problem {
	if spec == nil {
		spec = &networkingv1alpha3.DestinationRule{}
	}
	r := &report{}
	schemaDestinationRule(r, spec)
	if metadata(r, meta, nil) {
		return r.problems
	}
	ns := ""
	if meta != nil {
		ns = meta.Namespace
	}
	webhookDestinationRule(r, ns, spec)
	return r.problems
}

// webhookDestinationRule is istiod's ValidateDestinationRule.
func webhookDestinationRule(r *report, ns string, spec *networkingv1alpha3.DestinationRule) {
	if msg := wildcardDomain(spec.GetHost()); msg != "" {
		r.err("spec.host", msg)
	}
	trafficPolicy(r, "spec.trafficPolicy", ns, spec.GetTrafficPolicy())
	seen := map[string]bool{}
	for i, s := range spec.GetSubsets() {
		sp := at("spec.subsets", i)
		if s == nil {
			r.err(sp, "subset may not be null")
			continue
		}
		// Subsets are looked up by name, so a second one could never be used.
		if seen[s.GetName()] {
			r.errf(sp+".name", "duplicate subset names: %s", s.GetName())
		}
		seen[s.GetName()] = true
		subset(r, sp, ns, s)
	}
	exportTo(r, "spec.exportTo", ns, spec.GetExportTo(), spec.GetWorkloadSelector() != nil)
	workloadSelector(r, "spec.workloadSelector", spec.GetWorkloadSelector())
}

// subset is validateSubset: the name becomes part of Envoy cluster names,
// hence a DNS label; labels must be valid Kubernetes label syntax.
func subset(r *report, sp, ns string, s *networkingv1alpha3.Subset) {
	switch name := s.GetName(); {
	case name == "":
		r.err(sp+".name", "subset name cannot be empty")
	case !isDNSLabel(name):
		r.errf(sp+".name", "subset name is invalid: %s", name)
	}
	for _, k := range sortedKeys(s.GetLabels()) {
		if msg := labelKey(k); msg != "" {
			r.err(key(sp+".labels", k), msg)
		}
		if v := s.GetLabels()[k]; !labelValueRE.MatchString(v) {
			r.errf(key(sp+".labels", k), "invalid tag value: %q", v)
		}
	}
	trafficPolicy(r, sp+".trafficPolicy", ns, s.GetTrafficPolicy())
}

// exportTo is validateExportTo for a resource that is not a ServiceEntry
// (so "~" is never allowed). "." stands for the resource's own namespace.
func exportTo(r *report, path, ns string, list []string, withSelector bool) {
	if len(list) == 0 {
		return
	}
	set := map[string]bool{}
	for i, e := range list {
		k := e
		if e == "." {
			k = ns
		}
		switch {
		case set[k] && k != e:
			r.errf(at(path, i), "duplicate entries in exportTo: . and current namespace %s", ns)
		case set[k]:
			r.errf(at(path, i), "duplicate entries in exportTo for entry %s", e)
		case k == "." || k == "*":
			set[k] = true
		case k == "~":
			r.err(at(path, i), "exportTo ~ (none) is not allowed for Istio configuration objects")
		case !isDNSLabel(k):
			r.err(at(path, i), "only .,*, or a valid DNS 1123 label is allowed as exportTo entry")
		default:
			set[k] = true
		}
	}
	// A selector-scoped rule applies to workloads of its own namespace only,
	// so exporting it elsewhere would be meaningless.
	if withSelector && len(set) > 0 {
		if !set[ns] {
			r.err(path, "destination rule with workload selector cannot have exportTo beyond current namespace")
		} else if len(set) > 1 {
			r.err(path, "destination rule with workload selector cannot have multiple entries in exportTo")
		}
	}
	if set["*"] && len(list) > 1 {
		r.err(path, "cannot have both public (*) and non-public exportTo values for a resource")
	}
}

// trafficPolicy is validateTrafficPolicy, used at top level and per subset.
func trafficPolicy(r *report, p, ns string, tp *networkingv1alpha3.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.OutlierDetection == nil && tp.ConnectionPool == nil && tp.LoadBalancer == nil && tp.Tls == nil &&
		tp.PortLevelSettings == nil && tp.Tunnel == nil && tp.ProxyProtocol == nil && tp.RetryBudget == nil {
		r.err(p, "traffic policy must have at least one field")
		return
	}
	// Both rewrite the upstream connection's first bytes; Envoy cannot do both.
	if tp.Tunnel != nil && tp.ProxyProtocol != nil {
		r.err(p, "tunnel and proxyProtocol must not be set together")
		return
	}
	outlierDetection(r, p+".outlierDetection", tp.OutlierDetection)
	connectionPool(r, p+".connectionPool", tp.ConnectionPool)
	loadBalancer(r, p+".loadBalancer", tp.LoadBalancer, tp.OutlierDetection)
	clientTLS(r, p+".tls", ns, tp.Tls)
	portTrafficPolicies(r, p+".portLevelSettings", ns, tp.PortLevelSettings)
	tunnel(r, p+".tunnel", tp.Tunnel)
	if pp := tp.ProxyProtocol; pp != nil && pp.Version != 0 && pp.Version != 1 {
		r.errf(p+".proxyProtocol.version", "proxy protocol version is invalid: %d", pp.Version)
	}
}

// portTrafficPolicies is validatePortTrafficPolicies.
func portTrafficPolicies(r *report, p, ns string, pls []*networkingv1alpha3.TrafficPolicy_PortTrafficPolicy) {
	for i, pl := range pls {
		pp := at(p, i)
		if pl == nil {
			r.err(pp, "traffic policy may not be null")
			continue
		}
		if pl.Port == nil {
			r.err(pp+".port", "portTrafficPolicy must have valid port")
		}
		if pl.OutlierDetection == nil && pl.ConnectionPool == nil && pl.LoadBalancer == nil && pl.Tls == nil {
			r.err(pp, "port traffic policy must have at least one field")
			continue
		}
		outlierDetection(r, pp+".outlierDetection", pl.OutlierDetection)
		connectionPool(r, pp+".connectionPool", pl.ConnectionPool)
		loadBalancer(r, pp+".loadBalancer", pl.LoadBalancer, pl.OutlierDetection)
		clientTLS(r, pp+".tls", ns, pl.Tls)
	}
}

// duration is agent.ValidateDuration: Envoy's timers tick in milliseconds,
// so anything shorter, or finer, would be silently rounded.
func duration(d *durationpb.Duration) string {
	v := d.AsDuration()
	if v < time.Millisecond {
		return "duration must be greater than 1ms"
	}
	if v%time.Millisecond != 0 {
		return "only durations to ms precision are supported"
	}
	return ""
}

func checkDuration(r *report, path string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if msg := duration(d); msg != "" {
		r.err(path, msg)
	}
}

func percent(r *report, path string, v int32) {
	if v < 0 || v > 100 {
		r.errf(path, "percentage %v is not in range 0..100", v)
	}
}

// outlierDetection is validateOutlierDetection.
func outlierDetection(r *report, p string, od *networkingv1alpha3.OutlierDetection) {
	if od == nil {
		return
	}
	checkDuration(r, p+".baseEjectionTime", od.BaseEjectionTime)
	//lint:ignore SA1019 istiod still inspects the deprecated field
	if od.ConsecutiveErrors != 0 {
		r.warn(p+".consecutiveErrors", "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead")
	}
	// Local-origin failures are only counted separately when split is on;
	// otherwise the threshold would silently never apply.
	if !od.SplitExternalLocalOriginErrors && od.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		r.err(p+".consecutiveLocalOriginFailures", "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false")
	}
	checkDuration(r, p+".interval", od.Interval)
	percent(r, p+".maxEjectionPercent", od.MaxEjectionPercent)
	percent(r, p+".minHealthPercent", od.MinHealthPercent)
}

// connectionPool is validateConnectionPool.
func connectionPool(r *report, p string, cp *networkingv1alpha3.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if cp.Http == nil && cp.Tcp == nil {
		r.err(p, "connection pool must have at least one field")
		return
	}
	if h := cp.Http; h != nil {
		hp := p + ".http"
		nonNegative := func(field string, v int32, what string) {
			if v < 0 {
				r.errf(hp+"."+field, "%s must be non-negative", what)
			}
		}
		nonNegative("http1MaxPendingRequests", h.Http1MaxPendingRequests, "http1 max pending requests")
		nonNegative("http2MaxRequests", h.Http2MaxRequests, "http2 max requests")
		nonNegative("maxRequestsPerConnection", h.MaxRequestsPerConnection, "max requests per connection")
		nonNegative("maxRetries", h.MaxRetries, "max retries")
		checkDuration(r, hp+".idleTimeout", h.IdleTimeout)
		if h.H2UpgradePolicy == networkingv1alpha3.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			r.err(hp+".useClientProtocol", "use client protocol must not be true when H2UpgradePolicy is UPGRADE")
		}
		nonNegative("maxConcurrentStreams", h.MaxConcurrentStreams, "max concurrent streams")
		if ka := h.Http2KeepAlive; ka != nil {
			kp := hp + ".http2KeepAlive"
			if ka.Interval == nil {
				r.err(kp+".interval", "http2 keepalive interval is required")
			} else {
				checkDuration(r, kp+".interval", ka.Interval)
			}
			if ka.Timeout == nil {
				r.err(kp+".timeout", "http2 keepalive timeout is required")
			} else {
				checkDuration(r, kp+".timeout", ka.Timeout)
			}
		}
	}
	if t := cp.Tcp; t != nil {
		tp := p + ".tcp"
		if t.MaxConnections < 0 {
			r.err(tp+".maxConnections", "max connections must be non-negative")
		}
		checkDuration(r, tp+".connectTimeout", t.ConnectTimeout)
		checkDuration(r, tp+".maxConnectionDuration", t.MaxConnectionDuration)
		// Zero disables the idle timeout. istiod tests whole milliseconds,
		// so anything under 1ms is skipped too.
		if t.IdleTimeout != nil && t.IdleTimeout.AsDuration().Milliseconds() != 0 {
			checkDuration(r, tp+".idleTimeout", t.IdleTimeout)
		}
		if ka := t.TcpKeepalive; ka != nil {
			checkDuration(r, tp+".tcpKeepalive.time", ka.Time)
			checkDuration(r, tp+".tcpKeepalive.interval", ka.Interval)
		}
	}
}

// Topology labels that zone-aware and locality load balancing already
// order by themselves.
const (
	labelRegion  = "topology.kubernetes.io/region"
	labelZone    = "topology.kubernetes.io/zone"
	labelSubzone = "topology.istio.io/subzone"
)

func isTopologyLabel(l string) bool {
	return l == labelRegion || l == labelZone || l == labelSubzone
}

const failoverNeedsOutlier = "outlier detection policy must be provided for failover"

// maglevMaxTableSize is Envoy's limit on the Maglev lookup table.
const maglevMaxTableSize = 5000011

// loadBalancer is validateLoadBalancer. od is the outlier detection of the
// same policy level: failover only happens for hosts it ejects.
func loadBalancer(r *report, p string, lb *networkingv1alpha3.LoadBalancerSettings, od *networkingv1alpha3.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := p + ".consistentHash"
		if c := ch.GetHttpCookie(); c != nil {
			if c.GetName() == "" {
				r.err(cp+".httpCookie.name", "name required for HttpCookie")
			}
			names := map[string]bool{}
			for i, a := range c.GetAttributes() {
				ap := at(cp+".httpCookie.attributes", i) + ".name"
				switch {
				case a.GetName() == "":
					r.err(ap, "cookie attribute name cannot be empty")
				case names[a.GetName()]:
					r.errf(ap, "duplicate cookie attribute name: %s", a.GetName())
				default:
					names[a.GetName()] = true
				}
			}
		}
		//lint:ignore SA1019 istiod still inspects the deprecated field
		if ch.MinimumRingSize != 0 {
			r.warn(cp+".minimumRingSize", "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead")
			if ch.GetHashAlgorithm() != nil {
				r.err(cp, "only one of MinimumRingSize or Maglev/Ringhash can be specified")
			}
		}
		if m := ch.GetMaglev(); m != nil {
			mp := cp + ".maglev.tableSize"
			if m.TableSize == 0 {
				r.err(mp, "tableSize must be set for maglev")
			}
			if m.TableSize >= maglevMaxTableSize {
				r.err(mp, "tableSize must be less than 5000011 for maglev")
			}
			if !maglevPrime(m.TableSize) {
				r.err(mp, "tableSize must be a prime number for maglev")
			}
		}
	}
	if lb.LocalityLbSetting != nil && lb.ZoneAwareLbSetting != nil {
		r.err(p, "only one of localityLbSetting and zoneAwareLbSetting can be set")
	}
	localityLB(r, p+".localityLbSetting", lb.LocalityLbSetting, od)
	zoneAwareLB(r, p+".zoneAwareLbSetting", lb.ZoneAwareLbSetting, od)
	if w := lb.Warmup; w != nil {
		if w.Duration == nil {
			r.err(p+".warmup.duration", "duration is required")
		} else {
			checkDuration(r, p+".warmup.duration", w.Duration)
		}
		if w.MinimumPercent.GetValue() > 100 {
			r.err(p+".warmup.minimumPercent", "minimumPercent value should be less than or equal to 100")
		}
		if w.Aggression != nil && w.Aggression.GetValue() <= 0 {
			r.err(p+".warmup.aggression", "aggression should be greater than 0")
		}
	}
}

// maglevPrime is primality as Envoy's (and so istiod's) isPrime decides
// it, which counts 1 as prime. Baillie-PSW is exact below 2^64, and unlike
// trial division it stays fast on huge table sizes.
func maglevPrime(x uint64) bool {
	if x == 1 {
		return true
	}
	return new(big.Int).SetUint64(x).ProbablyPrime(0)
}

// localityLB is agent.ValidateLocalityLbSetting. Several of its checks end
// the validation at once, as istiod's do.
func localityLB(r *report, p string, lb *networkingv1alpha3.LocalityLoadBalancerSetting, od *networkingv1alpha3.OutlierDetection) {
	if lb == nil {
		return
	}
	if len(lb.GetDistribute()) > 0 && len(lb.GetFailover()) > 0 {
		r.err(p, "can not simultaneously specify 'distribute' and 'failover'")
		return
	}
	if len(lb.GetFailover()) > 0 {
		for i, l := range lb.GetFailoverPriority() {
			if isTopologyLabel(l) {
				r.errf(at(p+".failoverPriority", i), "can not simultaneously set 'failover' and topology label '%s' in 'failover_priority'", l)
				return
			}
		}
	}
	from := make([]string, 0, len(lb.GetDistribute()))
	for i, d := range lb.GetDistribute() {
		dp := at(p+".distribute", i)
		from = append(from, d.GetFrom())
		var total uint32
		// Weights are read in key order (istiod's map order is random; only
		// which bad entry is named could differ).
		to := sortedKeys(d.GetTo())
		for _, loc := range to {
			w := d.GetTo()[loc]
			if w == 0 || w > 100 {
				r.err(key(dp+".to", loc), "locality weight must be in range [1, 100]")
				return
			}
			total += w
		}
		if total != 100 {
			r.errf(dp+".to", "total locality weight %v != 100", total)
			return
		}
		if msg := localities(to); msg != "" {
			r.err(dp+".to", msg)
		}
	}
	if msg := localities(from); msg != "" {
		r.err(p+".distribute", msg)
	}
	if (len(lb.GetFailover()) != 0 || len(lb.GetFailoverPriority()) != 0) && od == nil {
		r.warn(p, failoverNeedsOutlier)
	}
	for i, f := range lb.GetFailover() {
		fp := at(p+".failover", i)
		if f.GetFrom() == f.GetTo() {
			r.err(fp, "locality lb failover settings must specify different regions")
		}
		if strings.Contains(f.GetFrom(), "/") || strings.Contains(f.GetTo(), "/") {
			r.err(fp, "locality lb failover only specify region")
		}
		if strings.Contains(f.GetFrom(), "*") || strings.Contains(f.GetTo(), "*") {
			r.err(fp, "locality lb failover region should not contain '*' wildcard")
		}
	}
}

// localities is agent.validateLocalities: each "region[/zone[/subzone]]",
// optionally ending in one "*", must not overlap an earlier one. Its
// overlap notion is istiod's (it does not expand "*" below region level).
func localities(list []string) string {
	const wild = "*"
	tree := map[string]map[string]map[string]bool{}
	for _, loc := range list {
		if n := strings.Count(loc, "*"); n > 1 || (n == 1 && !strings.HasSuffix(loc, "*")) {
			return fmt.Sprintf("locality %s wildcard '*' number can not exceed 1 and must be in the end", loc)
		}
		overlap := fmt.Sprintf("locality %s overlap with previous specified ones", loc)
		if _, ok := tree[wild]; ok {
			return overlap
		}
		parts := strings.SplitN(loc, "/", 3)
		for _, part := range parts {
			if part == "" {
				return fmt.Sprintf("locality %s must not contain empty region/zone/subzone info", loc)
			}
		}
		region := parts[0]
		zones, haveRegion := tree[region]
		switch len(parts) {
		case 1:
			if haveRegion {
				return overlap
			}
			tree[region] = map[string]map[string]bool{wild: {wild: true}}
		case 2:
			zone := parts[1]
			if !haveRegion {
				tree[region] = map[string]map[string]bool{zone: {wild: true}}
				continue
			}
			if _, ok := zones[wild]; ok {
				return overlap
			}
			if _, ok := zones[zone]; ok {
				return overlap
			}
			zones[zone] = map[string]bool{wild: true}
		case 3:
			zone, sub := parts[1], parts[2]
			if !haveRegion {
				tree[region] = map[string]map[string]bool{zone: {sub: true}}
				continue
			}
			if _, ok := zones[wild]; ok {
				return overlap
			}
			subs, haveZone := zones[zone]
			if !haveZone {
				zones[zone] = map[string]bool{sub: true}
				continue
			}
			if subs[wild] || subs[sub] {
				return overlap
			}
			subs[sub] = true
		}
	}
	return ""
}

// zoneAwareLB is agent.ValidateZoneAwareLbSetting: Envoy already orders
// endpoints by region and zone, so only cross-region failover is
// configurable.
func zoneAwareLB(r *report, p string, lb *networkingv1alpha3.ZoneAwareLoadBalancerSetting, od *networkingv1alpha3.OutlierDetection) {
	if lb == nil {
		return
	}
	for i, l := range lb.GetFailoverPriority() {
		if isTopologyLabel(l) {
			r.errf(at(p+".failoverPriority", i), "'failover_priority' for zone aware lb must not use topology label '%s'; region- and zone-level routing are handled automatically", l)
		}
	}
	if (len(lb.GetFailover()) != 0 || len(lb.GetFailoverPriority()) != 0) && od == nil {
		r.warn(p, failoverNeedsOutlier)
	}
	for i, f := range lb.GetFailover() {
		fp := at(p+".failover", i)
		if f.GetFrom() == f.GetTo() {
			r.err(fp, "zone aware lb failover settings must specify different regions")
		}
		if strings.Contains(f.GetFrom(), "/") || strings.Contains(f.GetTo(), "/") {
			r.err(fp, "zone aware lb failover only specifies region; zone and subzone failover are handled automatically")
		}
		if strings.Contains(f.GetFrom(), "*") || strings.Contains(f.GetTo(), "*") {
			r.err(fp, "zone aware lb failover region should not contain '*' wildcard")
		}
	}
}

const configMapPrefix = "configmap://"

// clientTLS is agent.ValidateTLS. With credentialName the certificates come
// from a secret, so inline file paths would be ignored; with
// insecureSkipVerify nothing is verified, so verification material would be
// ignored. istiod refuses both rather than ignore configuration silently.
func clientTLS(r *report, p, ns string, tls *networkingv1alpha3.ClientTLSSettings) {
	if tls == nil {
		return
	}
	if cred := tls.CredentialName; strings.HasPrefix(cred, configMapPrefix) {
		// A ConfigMap is read from the config cluster, so it must live in
		// the resource's own namespace.
		if cmNS, msg := configMapNamespace(cred); msg != "" {
			r.errf(p+".credentialName", "invalid configmap:// credentialName: %s", msg)
		} else if cmNS != ns || ns == "" {
			r.errf(p+".credentialName", "invalid configmap:// credentialName: namespace must match the configuration namespace %q", ns)
		}
	}
	mode := tls.Mode
	if tls.GetInsecureSkipVerify().GetValue() {
		if mode == networkingv1alpha3.ClientTLSSettings_SIMPLE &&
			(tls.CaCertificates != "" || tls.CredentialName != "" || tls.SubjectAltNames != nil) {
			r.err(p+".insecureSkipVerify", "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true")
		}
		if mode == networkingv1alpha3.ClientTLSSettings_MUTUAL && (tls.CaCertificates != "" || tls.SubjectAltNames != nil) {
			r.err(p+".insecureSkipVerify", "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true")
		}
	}
	if (mode == networkingv1alpha3.ClientTLSSettings_SIMPLE || mode == networkingv1alpha3.ClientTLSSettings_MUTUAL) && tls.CredentialName != "" {
		if tls.ClientCertificate != "" || tls.CaCertificates != "" || tls.PrivateKey != "" || tls.CaCrl != "" {
			r.err(p+".credentialName", "cannot specify client certificates or CA certificate or CA CRL If credentialName is set")
		}
		return
	}
	if mode == networkingv1alpha3.ClientTLSSettings_MUTUAL {
		if tls.ClientCertificate == "" {
			r.err(p+".clientCertificate", "client certificate required for mutual tls")
		}
		if tls.PrivateKey == "" {
			r.err(p+".privateKey", "private key required for mutual tls")
		}
	}
}

// configMapNamespace returns the namespace of a configmap:// name, or why
// it lacks the namespace/name form credentials.ParseResourceName requires.
func configMapNamespace(cred string) (string, string) {
	parts := strings.Split(strings.TrimPrefix(cred, configMapPrefix), "/")
	switch {
	case len(parts) <= 1:
		return "", fmt.Sprintf("invalid resource name %q. Expected namespace and name", cred)
	case parts[0] == "":
		return "", fmt.Sprintf("invalid resource name %q. Expected namespace", cred)
	case parts[1] == "":
		return "", fmt.Sprintf("invalid resource name %q. Expected name", cred)
	}
	return parts[0], ""
}

// tunnel is validateTunnelSettings.
func tunnel(r *report, p string, t *networkingv1alpha3.TrafficPolicy_TunnelSettings) {
	if t == nil {
		return
	}
	if t.Protocol != "" && t.Protocol != "CONNECT" && t.Protocol != "POST" {
		r.err(p+".protocol", `tunnel protocol must be "CONNECT" or "POST"`)
	}
	if hostErr := fqdn(t.TargetHost); hostErr != "" {
		if _, err := netip.ParseAddr(t.TargetHost); err != nil {
			r.errf(p+".targetHost", "tunnel target host must be valid FQDN or IP address: %s; %s is not a valid IP", hostErr, t.TargetHost)
		}
	}
	if t.TargetPort < 1 || t.TargetPort > 65535 {
		r.errf(p+".targetPort", "tunnel target port is invalid: port number %d must be in the range 1..65535", t.TargetPort)
	}
}
