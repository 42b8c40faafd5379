package cilium

import (
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateNetworkPolicy checks a networking.k8s.io/v1 NetworkPolicy spec
// with the API server's rules (kubernetes pkg/apis/networking/validation:
// ValidateNetworkPolicySpec, ValidateNetworkPolicyPort,
// ValidateNetworkPolicyPeer, ValidateIPBlock) for a create, with the
// StrictIPCIDRValidation gate at its default (off). It also returns, as
// warnings, the CIDR warnings the API server sends back for ipBlock values
// (GetWarningsForCIDR). Paths are relative to the spec.
func ValidateNetworkPolicy(spec *networkingv1.NetworkPolicySpec) []Problem {
	rep := &report{}
	if spec == nil {
		return nil
	}
	validateK8sSelector(rep, "podSelector", &spec.PodSelector)
	for i, in := range spec.Ingress {
		p := index("ingress", i)
		for j := range in.Ports {
			validateNetworkPolicyPort(rep, index(child(p, "ports"), j), &in.Ports[j])
		}
		for j := range in.From {
			validateNetworkPolicyPeer(rep, index(child(p, "from"), j), &in.From[j])
		}
	}
	for i, eg := range spec.Egress {
		p := index("egress", i)
		for j := range eg.Ports {
			validateNetworkPolicyPort(rep, index(child(p, "ports"), j), &eg.Ports[j])
		}
		for j := range eg.To {
			validateNetworkPolicyPeer(rep, index(child(p, "to"), j), &eg.To[j])
		}
	}
	if len(spec.PolicyTypes) > 2 {
		rep.errorf("policyTypes", "may not specify more than two policyTypes")
		return rep.probs
	}
	for i, t := range spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			rep.errorf(index("policyTypes", i), "unsupported value %q: supported values: \"Ingress\", \"Egress\"", t)
		}
	}
	return rep.probs
}

// validateNetworkPolicyPort is ValidateNetworkPolicyPort.
func validateNetworkPolicyPort(rep *report, path string, port *networkingv1.NetworkPolicyPort) {
	if pr := port.Protocol; pr != nil && *pr != corev1.ProtocolTCP && *pr != corev1.ProtocolUDP && *pr != corev1.ProtocolSCTP {
		rep.errorf(child(path, "protocol"), "unsupported value %q: supported values: \"TCP\", \"UDP\", \"SCTP\"", *pr)
	}
	endPath := child(path, "endPort")
	switch {
	case port.Port == nil:
		if port.EndPort != nil {
			rep.errorf(endPath, "may not be specified when `port` is not specified")
		}
	case port.Port.Type == intstr.Int:
		for _, msg := range validation.IsValidPortNum(int(port.Port.IntVal)) {
			rep.errorf(child(path, "port"), "invalid value %d: %s", port.Port.IntVal, msg)
		}
		if port.EndPort != nil {
			if *port.EndPort < port.Port.IntVal {
				rep.errorf(endPath, "invalid value %d: must be greater than or equal to `port`", *port.EndPort)
			}
			for _, msg := range validation.IsValidPortNum(int(*port.EndPort)) {
				rep.errorf(endPath, "invalid value %d: %s", *port.EndPort, msg)
			}
		}
	default:
		if port.EndPort != nil {
			rep.errorf(endPath, "may not be specified when `port` is non-numeric")
		}
		for _, msg := range validation.IsValidPortName(port.Port.StrVal) {
			rep.errorf(child(path, "port"), "invalid value %q: %s", port.Port.StrVal, msg)
		}
	}
}

// validateNetworkPolicyPeer is ValidateNetworkPolicyPeer: a peer needs at
// least one of podSelector, namespaceSelector and ipBlock, and ipBlock
// excludes the other two.
func validateNetworkPolicyPeer(rep *report, path string, peer *networkingv1.NetworkPolicyPeer) {
	n := 0
	if peer.PodSelector != nil {
		n++
		validateK8sSelector(rep, child(path, "podSelector"), peer.PodSelector)
	}
	if peer.NamespaceSelector != nil {
		n++
		validateK8sSelector(rep, child(path, "namespaceSelector"), peer.NamespaceSelector)
	}
	if peer.IPBlock != nil {
		n++
		validateIPBlock(rep, child(path, "ipBlock"), peer.IPBlock)
	}
	switch {
	case n == 0:
		rep.errorf(path, "must specify a peer")
	case n > 1 && peer.IPBlock != nil:
		rep.errorf(path, "may not specify both ipBlock and another peer")
	}
}

// validateIPBlock is ValidateIPBlock: a valid CIDR (legacy, non-strict
// parsing) and excepts that are strict subsets of it.
func validateIPBlock(rep *report, path string, b *networkingv1.IPBlock) {
	cidrPath := child(path, "cidr")
	if b.CIDR == "" {
		rep.errorf(cidrPath, "required value")
		return
	}
	if !checkLegacyCIDR(rep, cidrPath, b.CIDR) {
		return
	}
	_, cidr, _ := parseCIDRSloppy(b.CIDR)
	cidrLen, _ := cidr.Mask.Size()
	for i, e := range b.Except {
		p := index(child(path, "except"), i)
		if !checkLegacyCIDR(rep, p, e) {
			continue
		}
		_, except, _ := parseCIDRSloppy(e)
		exceptLen, _ := except.Mask.Size()
		if !cidr.Contains(except.IP) || cidrLen >= exceptLen {
			rep.errorf(p, "invalid value %q: must be a strict subset of `cidr`", e)
		}
	}
}

// checkLegacyCIDR applies IsValidCIDRForLegacyField (non-strict) and adds
// GetWarningsForCIDR's warnings. It reports whether the value parsed.
func checkLegacyCIDR(rep *report, path, value string) bool {
	fp := field.NewPath(path)
	errs := validation.IsValidCIDRForLegacyField(fp, value, false, nil)
	for _, e := range errs {
		rep.errorf(path, "%s", e.ErrorBody())
	}
	if len(errs) > 0 {
		return false
	}
	for _, w := range validation.GetWarningsForCIDR(fp, value) {
		rep.warnf(path, "%s", strings.TrimPrefix(w, fp.String()+": "))
	}
	return true
}

// parseCIDRSloppy parses a CIDR the way k8s.io/utils/net.ParseCIDRSloppy
// does: like net.ParseCIDR, but IPv4 octets and the prefix length may have
// leading zeros, which are read as decimal.
func parseCIDRSloppy(s string) (net.IP, *net.IPNet, error) {
	addr, bits, ok := strings.Cut(s, "/")
	if ok {
		bits = trimLeadingZeros(bits)
	}
	head, tail := "", addr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		head, tail = addr[:i+1], addr[i+1:]
	}
	if strings.Contains(tail, ".") {
		octets := strings.Split(tail, ".")
		for i, o := range octets {
			octets[i] = trimLeadingZeros(o)
		}
		tail = strings.Join(octets, ".")
	}
	s = head + tail
	if ok {
		s += "/" + bits
	}
	return net.ParseCIDR(s)
}

// trimLeadingZeros removes leading '0's from a decimal number, keeping a
// lone "0".
func trimLeadingZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" && s != "" {
		return "0"
	}
	return t
}
