package validation

import (
	"fmt"
	"strings"
	"unicode/utf8"

	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthorizationPolicy reports why the API server or istiod would refuse an
// AuthorizationPolicy, plus istiod's admission warnings. meta may be nil.
func AuthorizationPolicy(meta *metav1.ObjectMeta, spec *securityv1beta1.AuthorizationPolicy) []Problem {
	if spec == nil {
		spec = &securityv1beta1.AuthorizationPolicy{}
	}
	r := &report{}
	schemaAuthorizationPolicy(r, spec)
	if metadata(r, meta, spec) {
		return r.problems
	}
	webhookAuthorizationPolicy(r, spec)
	return r.problems
}

// Schema limits of the AuthorizationPolicy CRD.
const (
	maxRules = 512
	maxFrom  = 512
)

// schemaAuthorizationPolicy applies the CRD schema. `when[].key` is required
// there, but protojson cannot tell a missing key from an empty one, and
// istiod refuses both anyway, so only istiod's message is reported.
func schemaAuthorizationPolicy(r *report, spec *securityv1beta1.AuthorizationPolicy) {
	schemaPolicyTarget(r, spec.GetSelector(), spec.GetTargetRef(), spec.GetTargetRefs())
	schemaEnums(r, "spec", spec)
	if n := len(spec.GetRules()); n > maxRules {
		r.err("spec.rules", schemaTooMany(n, maxRules))
	}
	for i, rule := range spec.GetRules() {
		rp := at("spec.rules", i)
		if n := len(rule.GetFrom()); n > maxFrom {
			r.err(rp+".from", schemaTooMany(n, maxFrom))
		}
		for j, from := range rule.GetFrom() {
			src := from.GetSource()
			if src == nil {
				continue
			}
			sp := at(rp+".from", j) + ".source"
			schemaServiceAccounts(r, sp+".serviceAccounts", src.GetServiceAccounts())
			schemaServiceAccounts(r, sp+".notServiceAccounts", src.GetNotServiceAccounts())
			if len(src.GetServiceAccounts())+len(src.GetNotServiceAccounts()) > 0 &&
				len(src.GetPrincipals())+len(src.GetNotPrincipals())+len(src.GetNamespaces())+len(src.GetNotNamespaces()) > 0 {
				r.err(sp, "Cannot set serviceAccounts with namespaces or principals")
			}
		}
	}
}

func schemaServiceAccounts(r *report, path string, values []string) {
	if len(values) > maxServiceAccounts {
		r.err(path, schemaTooMany(len(values), maxServiceAccounts))
	}
	for i, v := range values {
		if utf8.RuneCountInString(v) > maxServiceAccountLen {
			r.err(at(path, i), schemaTooLong(maxServiceAccountLen))
		}
	}
}

const noRulesMsg = "%s action without `rules` is meaningless as it will never be triggered, " +
	"add an empty rule `{}` if you want it be triggered for every request"

const denyTCPWarning = "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope " +
	"due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port"

// webhookAuthorizationPolicy is istiod's ValidateAuthorizationPolicy, check
// for check and in its order.
func webhookAuthorizationPolicy(r *report, spec *securityv1beta1.AuthorizationPolicy) {
	policyTarget(r, spec.GetSelector(), spec.GetTargetRef(), spec.GetTargetRefs())

	action := spec.GetAction()
	if action == securityv1beta1.AuthorizationPolicy_CUSTOM {
		customAction(r, spec)
	}
	// A provider only means something to the CUSTOM action; elsewhere it
	// would be silently ignored, so istiod refuses it.
	if spec.GetProvider() != nil && action != securityv1beta1.AuthorizationPolicy_CUSTOM {
		r.errf("spec.provider", "`provider` must not be with non CUSTOM action, found %s", action)
	}
	// A DENY policy with no rules matches nothing, which is never what was
	// meant; ALLOW and AUDIT without rules have defined meanings.
	if action == securityv1beta1.AuthorizationPolicy_DENY && spec.GetRules() == nil {
		r.errf("spec.rules", noRulesMsg, "DENY")
	}

	for i, rule := range spec.GetRules() {
		rp := at("spec.rules", i)
		if rule == nil {
			r.errf(rp, "`rule` must not be nil, found at rule %d", i)
			continue
		}
		fromExists, tcpInFrom := ruleFrom(r, rp, i, rule)
		toExists, tcpInTo := ruleTo(r, rp, i, rule)
		ruleWhen(r, rp, rule)

		// A DENY rule that only an HTTP request can match cannot be
		// evaluated on a TCP connection, so Envoy's RBAC filter for TCP
		// drops the unmatched attributes and denies the whole port.
		if action == securityv1beta1.AuthorizationPolicy_DENY &&
			((fromExists && !toExists && !tcpInFrom) || (toExists && !tcpInTo)) {
			r.warn(rp, denyTCPWarning)
		}
	}
}

// customAction holds the checks istiod applies only to CUSTOM policies: the
// external authorizer is consulted before identities are known, so
// identity-based matchers cannot be offered to it.
func customAction(r *report, spec *securityv1beta1.AuthorizationPolicy) {
	if spec.GetRules() == nil {
		r.errf("spec.rules", noRulesMsg, "CUSTOM")
	} else if spec.GetProvider().GetName() == "" {
		path := "spec.provider"
		if spec.GetProvider() != nil {
			path += ".name"
		}
		r.err(path, "`provider.name` must not be empty")
	}
	for i, rule := range spec.GetRules() {
		rp := at("spec.rules", i)
		for j, from := range rule.GetFrom() {
			src := from.GetSource()
			if src == nil {
				continue
			}
			sp := at(rp+".from", j) + ".source"
			for _, f := range []struct {
				json, name string
				values     []string
			}{
				{"namespaces", "From.Namespaces", src.GetNamespaces()},
				{"notNamespaces", "From.NotNamespaces", src.GetNotNamespaces()},
				{"serviceAccounts", "From.ServiceAccounts", src.GetServiceAccounts()},
				{"notServiceAccounts", "From.NotServiceAccounts", src.GetNotServiceAccounts()},
				{"trustDomains", "From.TrustDomains", src.GetTrustDomains()},
				{"notTrustDomains", "From.NotTrustDomains", src.GetNotTrustDomains()},
				{"principals", "From.Principals", src.GetPrincipals()},
				{"notPrincipals", "From.NotPrincipals", src.GetNotPrincipals()},
				{"requestPrincipals", "From.RequestPrincipals", src.GetRequestPrincipals()},
				{"notRequestPrincipals", "From.NotRequestPrincipals", src.GetNotRequestPrincipals()},
			} {
				if len(f.values) != 0 {
					r.errf(sp+"."+f.json, "%s is currently not supported with CUSTOM action", f.name)
				}
			}
		}
		for k, when := range rule.GetWhen() {
			wp := at(rp+".when", k)
			if when == nil {
				r.err(wp, "when field cannot be nil")
				continue
			}
			switch key := when.GetKey(); {
			case key == "source.namespace", key == "source.serviceAccount", key == "source.trustDomain",
				key == "source.principal", strings.HasPrefix(key, "request.auth."):
				r.errf(wp+".key", "%s is currently not supported with CUSTOM action", key)
			}
		}
	}
}

// ruleFrom checks a rule's `from` entries and reports whether any has a
// source and whether any source uses an attribute a TCP connection carries
// (trustDomains and requestPrincipals do not count, as in istiod).
func ruleFrom(r *report, rp string, i int, rule *securityv1beta1.Rule) (exists, tcp bool) {
	if rule.From != nil && len(rule.From) == 0 {
		r.errf(rp+".from", "`from` must not be empty, found at rule %d", i)
	}
	for j, from := range rule.From {
		fp := at(rp+".from", j)
		if from == nil {
			r.errf(fp, "`from` must not be nil, found at rule %d", i)
			continue
		}
		src := from.GetSource()
		if src == nil {
			r.errf(fp+".source", "`from.source` must not be nil, found at rule %d", i)
			continue
		}
		exists = true
		source(r, fp+".source", i, src)
		if src.NotPrincipals != nil || src.Principals != nil || src.IpBlocks != nil || src.NotIpBlocks != nil ||
			src.Namespaces != nil || src.NotNamespaces != nil || src.RemoteIpBlocks != nil ||
			src.NotRemoteIpBlocks != nil || src.ServiceAccounts != nil || src.NotServiceAccounts != nil {
			tcp = true
		}
	}
	return exists, tcp
}

func source(r *report, sp string, i int, src *securityv1beta1.Source) {
	// serviceAccounts is shorthand for a principal; mixing the two would
	// make the generated principal matcher ambiguous.
	if len(src.Principals)+len(src.NotPrincipals)+len(src.Namespaces)+len(src.NotNamespaces) > 0 &&
		len(src.ServiceAccounts)+len(src.NotServiceAccounts) > 0 {
		r.errf(sp, "cannot set serviceAccounts with namespaces or principals, found at rule %d", i)
	}
	if len(src.Principals) == 0 && len(src.RequestPrincipals) == 0 && len(src.Namespaces) == 0 &&
		len(src.IpBlocks) == 0 && len(src.RemoteIpBlocks) == 0 && len(src.NotPrincipals) == 0 &&
		len(src.NotRequestPrincipals) == 0 && len(src.NotNamespaces) == 0 && len(src.NotIpBlocks) == 0 &&
		len(src.NotRemoteIpBlocks) == 0 && len(src.ServiceAccounts) == 0 && len(src.NotServiceAccounts) == 0 &&
		len(src.TrustDomains) == 0 && len(src.NotTrustDomains) == 0 {
		r.errf(sp, "`from.source` must not be empty, found at rule %d", i)
	}
	r.findings(sp+".ipBlocks", validateIPs(src.IpBlocks))
	r.findings(sp+".notIpBlocks", validateIPs(src.NotIpBlocks))
	r.findings(sp+".remoteIpBlocks", validateIPs(src.RemoteIpBlocks))
	r.findings(sp+".notRemoteIpBlocks", validateIPs(src.NotRemoteIpBlocks))
	r.findings(sp+".principals", checkEmptyValues("Principals", src.Principals))
	r.findings(sp+".requestPrincipals", checkEmptyValues("RequestPrincipals", src.RequestPrincipals))
	r.findings(sp+".namespaces", checkEmptyValues("Namespaces", src.Namespaces))
	r.findings(sp+".serviceAccounts", checkServiceAccount("ServiceAccounts", src.ServiceAccounts))
	r.findings(sp+".trustDomains", checkTrustDomainValues("TrustDomains", src.TrustDomains))
	r.findings(sp+".ipBlocks", checkEmptyValues("IpBlocks", src.IpBlocks))
	r.findings(sp+".remoteIpBlocks", checkEmptyValues("RemoteIpBlocks", src.RemoteIpBlocks))
	r.findings(sp+".notPrincipals", checkEmptyValues("NotPrincipals", src.NotPrincipals))
	r.findings(sp+".notRequestPrincipals", checkEmptyValues("NotRequestPrincipals", src.NotRequestPrincipals))
	r.findings(sp+".notNamespaces", checkEmptyValues("NotNamespaces", src.NotNamespaces))
	r.findings(sp+".notServiceAccounts", checkServiceAccount("NotServiceAccounts", src.NotServiceAccounts))
	r.findings(sp+".notTrustDomains", checkTrustDomainValues("NotTrustDomains", src.NotTrustDomains))
	r.findings(sp+".notIpBlocks", checkEmptyValues("NotIpBlocks", src.NotIpBlocks))
	r.findings(sp+".notRemoteIpBlocks", checkEmptyValues("NotRemoteIpBlocks", src.NotRemoteIpBlocks))
}

// ruleTo checks a rule's `to` entries and reports whether any has an
// operation and whether any operation names ports, the only operation field
// a TCP connection can match.
func ruleTo(r *report, rp string, i int, rule *securityv1beta1.Rule) (exists, tcp bool) {
	if rule.To != nil && len(rule.To) == 0 {
		r.errf(rp+".to", "`to` must not be empty, found at rule %d", i)
	}
	for j, to := range rule.To {
		tp := at(rp+".to", j)
		if to == nil {
			r.errf(tp, "`to` must not be nil, found at rule %d", i)
			continue
		}
		op := to.GetOperation()
		if op == nil {
			r.errf(tp+".operation", "`to.operation` must not be nil, found at rule %d", i)
			continue
		}
		exists = true
		operation(r, tp+".operation", i, op)
		if op.Ports != nil || op.NotPorts != nil {
			tcp = true
		}
	}
	return exists, tcp
}

func operation(r *report, op string, i int, o *securityv1beta1.Operation) {
	if len(o.Ports) == 0 && len(o.Methods) == 0 && len(o.Paths) == 0 && len(o.Hosts) == 0 &&
		len(o.NotPorts) == 0 && len(o.NotMethods) == 0 && len(o.NotPaths) == 0 && len(o.NotHosts) == 0 {
		r.errf(op, "`to.operation` must not be empty, found at rule %d", i)
	}
	r.findings(op+".ports", validatePorts(o.Ports))
	r.findings(op+".notPorts", validatePorts(o.NotPorts))
	r.findings(op+".ports", checkEmptyValues("Ports", o.Ports))
	r.findings(op+".methods", checkEmptyValues("Methods", o.Methods))
	r.findings(op+".paths", checkEmptyValues("Paths", o.Paths))
	r.findings(op+".hosts", checkEmptyValues("Hosts", o.Hosts))
	r.findings(op+".notPorts", checkEmptyValues("NotPorts", o.NotPorts))
	r.findings(op+".notMethods", checkEmptyValues("NotMethods", o.NotMethods))
	r.findings(op+".notPaths", checkEmptyValues("NotPaths", o.NotPaths))
	r.findings(op+".notHosts", checkEmptyValues("NotHosts", o.NotHosts))
	r.findings(op+".paths", checkValidPathTemplate("Paths", o.Paths))
	r.findings(op+".notPaths", checkValidPathTemplate("NotPaths", o.NotPaths))
}

// ruleWhen checks a rule's conditions. A finding about the key itself is
// placed on `key`, one about a value on that value; istiod reports the key
// problem once for `values` and once for `notValues`, and so does this.
func ruleWhen(r *report, rp string, rule *securityv1beta1.Rule) {
	for k, cond := range rule.GetWhen() {
		wp := at(rp+".when", k)
		key := cond.GetKey()
		if key == "" {
			r.err(wp+".key", "`key` must not be empty")
			continue
		}
		if len(cond.GetValues()) == 0 && len(cond.GetNotValues()) == 0 {
			r.errf(wp, "at least one of `values` or `notValues` must be set for key %s", key)
			continue
		}
		for _, list := range []struct {
			json, label string
			values      []string
		}{
			{"values", "value", cond.GetValues()},
			{"notValues", "notValue", cond.GetNotValues()},
		} {
			prefix := fmt.Sprintf("invalid `%s` for `key` %s: ", list.label, key)
			for _, f := range attribute(key, list.values) {
				path := wp + ".key"
				if f.index >= 0 {
					path = at(wp+"."+list.json, f.index)
				}
				r.err(path, prefix+f.msg)
			}
		}
	}
}
