// Package cilium mirrors the parts of Cilium's cilium.io/v2 policy API that
// Palisade reads, together with the validation Cilium (its CRD schema and its
// agent) and the Kubernetes API server apply to those documents.
//
// Cilium's own Go module is far too heavy to import, so the types here are an
// independent re-statement of pkg/policy/api (rule.go, ingress.go, egress.go,
// l4.go, http.go, cidr.go, entity.go, fqdn.go, service.go, icmp.go, l7.go,
// kafka/kafka.go) and of the generated CRD
// pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml. JSON
// field names are exactly the CRD's, so a CiliumNetworkPolicy spec decodes
// strictly (unknown fields rejected) into Rule.
//
// # Presence matters
//
// Several Cilium semantics depend on whether a list is absent, present but
// empty, or present with empty elements (see the comments on Rule,
// IngressCommonRule and EgressCommonRule). The types therefore keep slices as
// plain slices: decoding leaves a nil slice for an absent or null key and a
// non-nil empty slice for "[]", with both encoding/json and
// sigs.k8s.io/json. Callers must not normalise one into the other.
//
// # Version choice
//
// Where Cilium's behaviour differs between releases this package follows the
// Cilium 1.19 API (CRD plus agent), with these documented exceptions:
//
//   - toServices combined with toPorts is reported as an error, as the agent
//     of Cilium 1.16 to 1.18 does ("Combining ToServices and ToPorts is not
//     supported yet", issue cilium/cilium#37057); the newest sources
//     (rule_validation_helpers.go, l3DependentL4Support) accept it.
//   - Kafka and generic l7proto rules (proxylib) are typed and validated as
//     in Cilium 1.18, with a warning, because the newest sources removed
//     them (cilium/cilium#43557).
//   - matchPattern "**." means "any number of labels" (Cilium >= 1.19,
//     pkg/fqdn/matchpattern/matchpattern.go); before 1.19 it behaved like
//     "*.".
//
// Problems carry Warning=true when Cilium accepts the document but logs,
// ignores or overrides part of it; otherwise the document would be rejected
// (by the API server through the CRD schema, or by the agent, which then
// refuses to import the whole policy).
package cilium
