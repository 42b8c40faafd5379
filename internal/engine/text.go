package engine

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes a verdict for people: the outcome, what decided it, and
// each layer of the trace.
func WriteText(w io.Writer, v *Verdict) {
	outcome := "ALLOWED"
	if !v.Allowed {
		outcome = "DENIED"
	}
	r := v.Request
	what := strings.ToUpper(r.Protocol) + " connection"
	if r.Protocol == "http" {
		what = fmt.Sprintf("HTTP %s %s (host %s)", r.Method, r.Path, r.Host)
	}
	status := ""
	if v.Status != 0 {
		status = fmt.Sprintf(" with %d", v.Status)
	}
	fmt.Fprintf(w, "%s%s: %s -> %s port %d, %s\n", outcome, status, r.From, r.To, r.Port, what)
	d := v.DecidedBy
	fmt.Fprintf(w, "decided by %s", d.Layer)
	if d.Policy != "" {
		fmt.Fprintf(w, ": %s %s", d.Kind, d.Policy)
		if d.Action != "" {
			fmt.Fprintf(w, " (%s)", d.Action)
		}
		switch {
		case d.Rule != nil:
			fmt.Fprintf(w, ", rule %d, %s", *d.Rule, d.RuleID)
		case d.RuleID != "":
			fmt.Fprintf(w, ", %s", d.RuleID)
		}
	}
	fmt.Fprintf(w, "\n  %s\n", d.Reason)
	fmt.Fprintln(w, "trace:")
	for _, s := range v.Trace {
		fmt.Fprintf(w, "  %-5s %-4s %s\n", s.Layer, s.Result, s.Detail)
	}
	if len(v.LeftOut) > 0 {
		var names []string
		for _, l := range v.LeftOut {
			if l.Object != "" {
				names = append(names, l.Object)
			} else {
				names = append(names, l.Where)
			}
		}
		fmt.Fprintf(w, "left out (invalid; palisade validate says why): %s\n", strings.Join(names, ", "))
	}
	if len(v.Warnings) > 0 {
		fmt.Fprintln(w, "warnings:")
		for _, s := range v.Warnings {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
}
