package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/palisade-security/palisade/internal/lint"
)

func newLintCmd() *cobra.Command {
	var files []string
	var ciliumValues, output, minSeverity string
	cmd := &cobra.Command{
		Use:   "lint -f PATH...",
		Short: "Find policies that are rejected, or accepted but cannot do what they seem to",
		Long: `Lint reads the same input as validate and check and reports findings, each
with a stable ID, a severity, the file and line, a one-line message, the
upstream behaviour that explains it, and a fix:

  PAL-0xxx  what validate reports: decoding errors and the admission rules of
            istiod, Cilium and the API server
  PAL-1xxx  Istio: HTTP-only fields on TCP ports, hosts that never match,
            client headers used as secrets or rate limits, ALLOW rules that
            admit unauthenticated clients, JWT rules without a
            RequestAuthentication, selectors and identities that match nothing,
            shadowed and overly broad rules, unprotected workloads
  PAL-2xxx  network policy: default deny that does not take effect, toFQDNs
            without a DNS rule, L7 rules Cilium cannot apply, selectors that
            match nothing, one-sided allows, policyEnforcementMode always
  PAL-3xxx  telemetry: alerting rules and dashboards querying metrics nobody
            exports; mesh configuration istiod never reads

Output is text (grouped by file), json or sarif (SARIF 2.1.0, for
code-scanning tools). Exit status: 1 when there is an error-severity finding,
0 otherwise, 2 for bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return badInput("give at least one -f PATH")
			}
			min, err := lint.ParseSeverity(minSeverity)
			if err != nil {
				return badInput("--min-severity: %v", err)
			}
			switch output {
			case "text", "json", "sarif":
			default:
				return badInput("-o must be text, json or sarif")
			}
			for _, f := range append(append([]string{}, files...), ciliumValues) {
				if f == "" || f == "-" {
					continue
				}
				if _, err := os.Stat(f); err != nil {
					return badInput("%v", err)
				}
			}
			report, err := lint.Run(lint.Input{Paths: files, Stdin: cmd.InOrStdin(), CiliumValues: ciliumValues})
			if err != nil {
				return badInput("%v", err)
			}
			findings := report.Filter(min)
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				err = lint.WriteJSON(out, findings)
			case "sarif":
				err = lint.WriteSARIF(out, findings, version)
			default:
				err = lint.WriteText(out, findings)
			}
			if err != nil {
				return err
			}
			if lint.HasErrors(findings) {
				return &exitError{code: exitDenied}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	fl.StringVar(&ciliumValues, "cilium-values", "", "Cilium Helm values file")
	fl.StringVarP(&output, "output", "o", "text", "text, json or sarif")
	fl.StringVar(&minSeverity, "min-severity", "info", "report findings at or above: info, warning or error")
	return cmd
}
