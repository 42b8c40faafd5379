package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
)

func newValidateCmd() *cobra.Command {
	var files []string
	var verbose bool
	var ciliumValues string
	cmd := &cobra.Command{
		Use:   "validate -f PATH...",
		Short: "Report every problem istiod or the API server would reject, with file and line",
		Long: `Validate reads resources from files, directories (recursively) or stdin ("-")
and reports every problem: YAML syntax, unknown fields and wrong types (strict
decoding, as kubectl apply --validate=strict), and the rules istiod's admission
webhook applies, and Cilium's and the API server's rules for network
policy. Warnings istiod or Cilium would return are printed but do not fail.
It exits 1 when there is an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return &exitError{code: exitBadInput, msg: "give at least one -f PATH"}
			}
			snap, loadErrs := config.LoadInput(config.Input{Paths: files, Stdin: cmd.InOrStdin(), CiliumValues: ciliumValues})
			eng := engine.New(snap, engine.Options{})
			out := cmd.OutOrStdout()
			errs, warnings := 0, 0
			for _, e := range loadErrs {
				fmt.Fprintf(out, "error: %v\n", e)
				errs++
			}
			for _, p := range eng.Problems {
				level := "error"
				if p.Warning {
					level = "warning"
					warnings++
				} else {
					errs++
				}
				fmt.Fprintf(out, "%s: %v\n", level, &p.Error)
			}
			if verbose {
				for _, n := range snap.Notes {
					fmt.Fprintf(out, "note: %v\n", n)
				}
			}
			fmt.Fprintf(out, "%d error(s), %d warning(s); %d AuthorizationPolicies, %d PeerAuthentications, %d RequestAuthentications, %d DestinationRules, %d network policies, %d workloads read; %d documents skipped%s\n",
				errs, warnings, len(snap.AuthorizationPolicies), len(snap.PeerAuthentications), len(snap.RequestAuthentications),
				len(snap.DestinationRules), len(snap.NetworkPolicies)+len(snap.CiliumNetworkPolicies)+len(snap.CiliumClusterwideNetworkPolicies), len(snap.Inventory.Workloads), len(snap.Notes), map[bool]string{true: "", false: " (-v lists them)"}[verbose || len(snap.Notes) == 0])
			if errs > 0 {
				return &exitError{code: exitDenied}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list the documents that were skipped")
	cmd.Flags().StringVar(&ciliumValues, "cilium-values", "", "Cilium Helm values file")
	return cmd
}
