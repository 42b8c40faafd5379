// Command palisade is Palisade's one binary: policy validation and checks
// today; the identity server, node agent and proxy as they are built.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit status out of a command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// Exit statuses shared by the commands.
const (
	exitOK       = 0
	exitDenied   = 1 // check: denied; validate: problems found
	exitBadInput = 2
)

func main() {
	root := &cobra.Command{
		Use:           "palisade",
		Short:         "Zero-trust policy for Kubernetes: Istio and Cilium semantics, explained",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newValidateCmd(), newCheckCmd(), newServerCmd(), newAgentCmd(), newEntryCmd(),
		newBundleCmd(), newHealthcheckCmd(), newReachCmd(), newExposureCmd(), newDiffCmd(), newUpCmd(), newDemoCmd(), newProxyCmd(), newLintCmd(), newVersionCmd())
	err := root.Execute()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "palisade:", ee.msg)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "palisade:", err)
	os.Exit(exitBadInput)
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "palisade", version)
		},
	}
}
