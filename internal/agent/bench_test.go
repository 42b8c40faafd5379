package agent_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/identity"
)

// BenchmarkEntryToSVID measures the time from creating a registration
// entry on the server to the agent serving its SVID: the agent's
// long-polling sync wakes at once, it makes a key and a CSR, the server
// signs, and the cache serves the result.
func BenchmarkEntryToSVID(b *testing.B) {
	r := startRig(b, rigConfig{})
	uid := identity.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := spiffeid.RequireFromPath(td, fmt.Sprintf("/bench/%d", i))
		// A selector of its own, so only this entry matches the probe.
		sel := identity.Selectors{uid, {Type: "bench", Value: strconv.Itoa(i)}}
		if _, err := r.server.CreateEntry(context.Background(), &identity.Entry{SPIFFEID: id, ParentID: r.agentID, Selectors: sel}); err != nil {
			b.Fatal(err)
		}
		for len(r.agent.Cache().SVIDs(sel)) == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
}
