package validation

import (
	"fmt"
	"slices"

	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PeerAuthentication reports why the API server or istiod would refuse a
// PeerAuthentication, plus istiod's admission warnings. meta may be nil.
func PeerAuthentication(meta *metav1.ObjectMeta, spec *securityv1beta1.PeerAuthentication) []Problem {
	if spec == nil {
		spec = &securityv1beta1.PeerAuthentication{}
	}
	r := &report{}
	schemaPeerAuthentication(r, spec)
	if metadata(r, meta, nil) {
		return r.problems
	}
	webhookPeerAuthentication(r, spec)
	return r.problems
}

// portKeys returns the portLevelMtls ports in ascending order, for stable
// reports.
func portKeys(m map[uint32]*securityv1beta1.PeerAuthentication_MutualTLS) []uint32 {
	ports := make([]uint32, 0, len(m))
	for p := range m {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// schemaPeerAuthentication applies the CRD schema. Its rules on
// portLevelMtls are CEL over the whole map, so each fires once.
func schemaPeerAuthentication(r *report, spec *securityv1beta1.PeerAuthentication) {
	schemaSelector(r, "spec.selector", spec.GetSelector())
	schemaEnums(r, "spec", spec)
	plm := spec.GetPortLevelMtls()
	if plm == nil {
		return
	}
	if len(spec.GetSelector().GetMatchLabels()) == 0 {
		r.err("spec", "portLevelMtls requires selector")
	}
	if len(plm) == 0 {
		r.err("spec.portLevelMtls", "Invalid value: 0: should have at least 1 properties")
	}
	if slices.ContainsFunc(portKeys(plm), func(p uint32) bool { return p == 0 || p > 65535 }) {
		r.err("spec.portLevelMtls", "port must be between 1-65535")
	}
}

// webhookPeerAuthentication is istiod's ValidatePeerAuthentication.
// Port-level settings need a selector because only a workload's own ports
// are known; a mesh- or namespace-wide policy cannot name them.
func webhookPeerAuthentication(r *report, spec *securityv1beta1.PeerAuthentication) {
	plm := spec.GetPortLevelMtls()
	if len(spec.GetSelector().GetMatchLabels()) == 0 && len(plm) != 0 {
		r.err("spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS")
	}
	if plm != nil && len(plm) == 0 {
		r.err("spec.portLevelMtls", "port level mTLS, if defined, must have at least one element")
	}
	for _, p := range portKeys(plm) {
		if p == 0 || p > 65535 {
			r.err(key("spec.portLevelMtls", fmt.Sprint(p)), "port must be in range 1..65535")
		}
	}
	workloadSelector(r, "spec.selector", spec.GetSelector())
}
