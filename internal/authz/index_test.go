package authz

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestIndexMatchesScan compares the indexed decision with a plain scan of
// the same rules on random policies and peers, including identities that
// name a namespace twice and wildcard principals and namespaces.
func TestIndexMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	namespaces := []string{"a", "b", "ns", "c-1"}
	values := func(kind string) string {
		switch kind {
		case "principals":
			opts := []string{"cluster.local/ns/a/sa/x", "cluster.local/ns/b/sa/y", "cluster.local/ns/*", "*/sa/x", "*", "cluster.local/ns/ns/sa/a"}
			return fmt.Sprintf("[%q]", opts[rng.IntN(len(opts))])
		default:
			opts := append([]string{"*", "c-*"}, namespaces...)
			return fmt.Sprintf("[%q]", opts[rng.IntN(len(opts))])
		}
	}
	peers := []string{"", "spiffe://cluster.local/ns/a/sa/x", "spiffe://cluster.local/ns/b/sa/y", "spiffe://cluster.local/ns/ns/sa/a",
		"spiffe://cluster.local/ns/c-1/sa/x", "spiffe://td/ns/a/sa/b/ns/b/x", "spiffe://cluster.local/ns/"}
	defer func(old int) { indexThreshold = old }(indexThreshold)
	for round := 0; round < 200; round++ {
		var docs strings.Builder
		for i := 0; i < 12; i++ {
			action := []string{"ALLOW", "DENY"}[rng.IntN(2)]
			var from []string
			for j := 0; j < 1+rng.IntN(2); j++ {
				field := []string{"principals", "namespaces", "notPrincipals", "ipBlocks"}[rng.IntN(4)]
				v := values(field)
				if field == "ipBlocks" {
					v = "[10.0.0.0/8]"
				}
				from = append(from, fmt.Sprintf("  - source:\n      %s: %s", field, v))
			}
			docs.WriteString(policy("foo", fmt.Sprintf("p%d", i), fmt.Sprintf("action: %s\nrules:\n- from:\n%s", action, strings.Join(from, "\n"))))
		}
		indexThreshold = 1 << 30
		scan := set(t, docs.String(), Options{}, nil)
		indexThreshold = 0
		indexed := set(t, docs.String(), Options{}, nil)
		for _, peer := range peers {
			r := tcpReq(peer, 8000)
			a, b := scan.Evaluate(&r), indexed.Evaluate(&r)
			if a.Allowed != b.Allowed || a.Match.ID() != b.Match.ID() {
				t.Fatalf("peer %q: scan %v %s, index %v %s\n%s", peer, a.Allowed, a.Match.ID(), b.Allowed, b.Match.ID(), docs.String())
			}
		}
	}
}
