package controlplane

import (
	"sync/atomic"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
)

// Engines keeps the engine a proxy enforces: its Apply is a Client's Apply,
// its Engine what the proxy decides with (proxy.Config.Policy). A version
// is compiled in full before it replaces the previous engine in one atomic
// store, so a request is always decided by one whole version, never by a
// mix, and an engine that cannot be built leaves the previous one in force.
type Engines struct {
	Options engine.Options
	// Workload, "namespace/name", is compiled before the swap when the
	// snapshot has it, so that the first request after an update does not
	// pay for it.
	Workload string

	cur atomic.Pointer[inForce]
}

// inForce pairs an engine with its version, so both are swapped together.
type inForce struct {
	eng     *engine.Engine
	version string
}

// Apply builds the engine of a version and puts it in force.
func (e *Engines) Apply(version string, snap *config.Snapshot, _ []*config.Error) error {
	eng := engine.New(snap, e.Options)
	if e.Workload != "" {
		if w, err := snap.Inventory.Workload(e.Workload); err == nil {
			eng.Workload(w)
		}
	}
	e.cur.Store(&inForce{eng: eng, version: version})
	return nil
}

// Current returns the engine in force and its version; nil and "" before
// the first version.
func (e *Engines) Current() (*engine.Engine, string) {
	if f := e.cur.Load(); f != nil {
		return f.eng, f.version
	}
	return nil, ""
}

// Engine returns the engine in force, nil before the first version: the
// form proxy.Config.Policy takes.
func (e *Engines) Engine() *engine.Engine {
	eng, _ := e.Current()
	return eng
}
