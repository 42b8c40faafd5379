package analysis

import "github.com/palisade-security/palisade/internal/config"

// Change is a connection whose verdict differs between two policy sets.
type Change struct {
	From, To string // workload keys, "namespace/name"
	Port     uint16
	Before   Cell
	After    Cell
}

// DiffReport is what changes between two policy sets: connections that
// become allowed or denied, and workloads only one side has.
type DiffReport struct {
	NowAllowed, NowDenied []Change
	// LayerChanged lists denied connections denied at another layer.
	LayerChanged []Change
	OnlyBefore   []string
	OnlyAfter    []string
}

// Diff compares two matrices over the workloads both inventories have
// (matched by namespace, kind and name).
func Diff(before, after *Matrix) *DiffReport {
	r := &DiffReport{}
	key := func(w *config.Workload) string { return w.Namespace + "/" + w.Kind + "/" + w.Name }
	afterBy := map[string]*config.Workload{}
	for _, w := range after.Workloads {
		afterBy[key(w)] = w
	}
	beforeBy := map[string]*config.Workload{}
	for _, w := range before.Workloads {
		beforeBy[key(w)] = w
		if afterBy[key(w)] == nil {
			r.OnlyBefore = append(r.OnlyBefore, w.Key())
		}
	}
	for _, w := range after.Workloads {
		if beforeBy[key(w)] == nil {
			r.OnlyAfter = append(r.OnlyAfter, w.Key())
		}
	}
	before.Each(func(b Cell) bool {
		from, to := afterBy[key(b.From)], afterBy[key(b.To)]
		if from == nil || to == nil {
			return true
		}
		a, ok := after.Get(from, to, b.Port)
		if !ok {
			return true
		}
		c := Change{From: b.From.Key(), To: b.To.Key(), Port: b.Port, Before: b, After: a}
		switch {
		case !b.Allowed && a.Allowed:
			r.NowAllowed = append(r.NowAllowed, c)
		case b.Allowed && !a.Allowed:
			r.NowDenied = append(r.NowDenied, c)
		case !b.Allowed && !a.Allowed && a.Layer != b.Layer:
			r.LayerChanged = append(r.LayerChanged, c)
		}
		return true
	})
	return r
}
