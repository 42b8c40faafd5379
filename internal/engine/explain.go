package engine

import (
	"fmt"
	"strings"

	"github.com/palisade-security/palisade/internal/authz"
)

// explainAuthz turns an authorization decision into the verdict's outcome
// and trace.
func (e *Engine) explainAuthz(d authz.Decision, w *Workload, proto string, v *Verdict) {
	status := 0
	if proto == "http" {
		status = 403
	}
	by := DecidedBy{Layer: LayerAuthz}
	if d.Match.Policy != nil {
		p := d.Match.Policy
		rule := d.Match.Rule
		by.Kind, by.Policy, by.Action, by.Rule, by.RuleID = "AuthorizationPolicy", p.ID(), p.Action.String(), &rule, d.Match.ID()
	}
	selected := policyList(w.Authz.Policies)
	v.Warnings = append(v.Warnings, w.Authz.CustomProblems...)
	switch d.Reason {
	case authz.AllowedNoAllowPolicy:
		by.Reason = "no ALLOW policy selects the workload, so Istio allows what no DENY policy denies"
		if len(w.Authz.Policies) == 0 {
			by.Reason = "no AuthorizationPolicy selects the workload: Istio allows everything"
		}
	case authz.AllowedByRule:
		by.Reason = "an ALLOW rule matched"
	case authz.DeniedByRule:
		by.Reason = "a DENY rule matched"
	case authz.DeniedNoAllowMatch:
		by.Reason = "ALLOW policies select the workload and no ALLOW rule matched"
	case authz.DeniedBadCustom:
		by.Reason = fmt.Sprintf("a CUSTOM rule matched and its provider %q is not usable, so istiod made the rule deny", d.Match.Policy.Provider)
	case authz.DeniedByExtAuthz:
		by.Reason = fmt.Sprintf("a CUSTOM rule sends the request to the external authorizer %q, which cannot be asked offline; assumed to deny (see --assume-ext-authz-allows)", d.Match.Policy.Provider)
	}
	if d.ExtAuthz.Policy != nil && d.Reason != authz.DeniedByExtAuthz {
		v.step(LayerAuthz, "info", fmt.Sprintf("CUSTOM rule %s sends the request to %q, assumed to allow", d.ExtAuthz.ID(), d.ExtAuthz.Policy.Provider))
	}
	if d.Allowed {
		v.Allowed, v.Status = true, 0
		if proto == "http" {
			v.Status = 200
		}
	} else {
		v.Allowed, v.Status = false, status
	}
	v.DecidedBy = by
	result := "pass"
	if !d.Allowed {
		result = "deny"
	}
	detail := by.Reason
	if by.RuleID != "" {
		detail = fmt.Sprintf("%s: %s (%s %s, rule %d)", by.Reason, by.RuleID, by.Action, by.Policy, *by.Rule)
	}
	if len(w.Authz.Policies) > 0 {
		detail += fmt.Sprintf("; policies selecting %s: %s", w.Key(), selected)
	}
	if proto == "tcp" {
		detail += "; evaluated as TCP: HTTP-only fields make ALLOW rules match nothing and are ignored in DENY rules"
	}
	v.step(LayerAuthz, result, detail)
	chain := 0
	if proto == "tcp" {
		chain = 1
	}
	for _, p := range w.Authz.Policies {
		for i, why := range p.Skipped[chain] {
			if why != "" {
				v.step(LayerAuthz, "info", fmt.Sprintf("%s has no effect on %s: istiod drops it (%s)", p.RuleID(i), strings.ToUpper(proto), why))
			}
		}
	}
	if d.Audit.Policy != nil {
		v.Audit = &RuleRef{Policy: d.Audit.Policy.ID(), Rule: d.Audit.Rule, RuleID: d.Audit.ID()}
		v.step(LayerAuthz, "info", fmt.Sprintf("AUDIT rule %s matched: the request is marked for auditing", d.Audit.ID()))
	}
	for _, s := range []struct {
		action string
		sh     authz.Shadow
	}{{"DENY", d.DryDeny}, {"ALLOW", d.DryAllow}} {
		if !s.sh.Present {
			continue
		}
		dr := DryRun{Action: s.action, Allowed: s.sh.Allowed}
		if s.sh.Match.Policy != nil {
			dr.Rule = &RuleRef{Policy: s.sh.Match.Policy.ID(), Rule: s.sh.Match.Rule, RuleID: s.sh.Match.ID()}
		}
		v.DryRun = append(v.DryRun, dr)
		word := "allow"
		if !s.sh.Allowed {
			word = "deny"
		}
		v.step(LayerAuthz, "info", fmt.Sprintf("dry-run %s policies would %s this request (istio.io/dry-run: reported, not enforced)", s.action, word))
	}
}

func policyList(ps []*authz.Policy) string {
	var out []string
	for _, p := range ps {
		s := fmt.Sprintf("%s (%s", p.ID(), p.Action)
		if p.DryRun {
			s += ", dry-run"
		}
		out = append(out, s+")")
	}
	return strings.Join(out, ", ")
}
