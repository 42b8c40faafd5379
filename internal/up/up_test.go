package up

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
)

const fixed = "../../examples/reference-system-fixed"

// TestReferenceSystemOnTheWire brings up the corrected reference system —
// server, agent, a proxy per workload — sends the demo's traffic through
// it, and checks what the wire did against the engine's prediction and
// against the outcome the example's README promises.
func TestReferenceSystemOnTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole mesh")
	}
	snap, _ := config.Load([]string{fixed}, nil)
	is, err := NewIssuer(snap)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := Start(ctx, Options{Files: []string{fixed}, StateDir: t.TempDir(), Engine: engine.Options{Keys: is.Keys}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	data, err := os.ReadFile("../../examples/traffic/reference-system-fixed.txt")
	if err != nil {
		t.Fatal(err)
	}
	calls, err := ParseTraffic("reference-system-fixed.txt", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"200", "200", "200", "403", "401", "403", "403", "503", "echoed", "echoed", "reset", "echoed", "reset", "200", "403", "200", "403", "200", "403"}
	if len(calls) != len(want) {
		t.Fatalf("%d calls, %d expectations", len(calls), len(want))
	}
	for i, r := range m.Drive(ctx, is, calls) {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Call, r.Err)
			continue
		}
		if !r.Agrees() {
			t.Errorf("%s: wire %s, engine predicts %s (%s %s: %s)", r.Call, r.Got, r.Want, r.Layer, r.Policy, r.Reason)
		}
		if r.Got != want[i] {
			t.Errorf("%s: got %s, the example promises %s", r.Call, r.Got, want[i])
		}
	}
}
