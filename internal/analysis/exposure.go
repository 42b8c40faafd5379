package analysis

import (
	"math/bits"
	"sort"

	"github.com/palisade-security/palisade/internal/config"
)

// Exposure is the lateral-movement exposure of one workload: how many
// other workloads it reaches directly (on some port), and transitively, a
// compromised pod pivoting through whatever it reaches.
type Exposure struct {
	Workload   *config.Workload
	Direct     int
	Transitive int
	// Possible is how many it would reach with no policy at all: the
	// other workloads that declare a port the matrix asks about.
	Possible int
}

// ExposureReport is the exposure of every workload, against the same
// inventory without any policy, where every workload reaches every other
// that listens on a port.
type ExposureReport struct {
	Workloads []Exposure // largest blast radius first
	// Paths counts the lateral paths: ordered pairs (a, b) where a
	// reaches b, directly or not. Baseline is the same without policy.
	Paths, Baseline int
	DirectPaths     int
}

// Reduction is the share of lateral paths the policies remove.
func (r *ExposureReport) Reduction() float64 {
	if r.Baseline == 0 {
		return 0
	}
	return 1 - float64(r.Paths)/float64(r.Baseline)
}

// Exposure computes the exposure of every workload from the matrix. The
// graph is built over classes (members are interchangeable), its strongly
// connected components collapsed, and reachability propagated with bit
// sets in reverse topological order.
func (m *Matrix) Exposure() *ExposureReport {
	n := len(m.Classes)
	succ := make([][]int, n)
	for s := range m.Classes {
		for d := range m.Classes {
			if m.reachesClass(s, d) && (s != d || len(m.Classes[s].Members) > 1) {
				succ[s] = append(succ[s], d)
			}
		}
	}
	comp, ncomp := scc(succ)
	// Members of each component, and the component DAG.
	compClasses := make([][]int, ncomp)
	for c := range m.Classes {
		compClasses[comp[c]] = append(compClasses[comp[c]], c)
	}
	words := (n + 63) / 64
	reach := make([][]uint64, ncomp) // classes reachable from the component, by one step or more
	// Tarjan numbers components in reverse topological order: a
	// component's successors come first.
	for ci := 0; ci < ncomp; ci++ {
		r := make([]uint64, words)
		for _, c := range compClasses[ci] {
			for _, d := range succ[c] {
				r[d/64] |= 1 << (d % 64)
				if dc := comp[d]; dc != ci {
					for w, x := range reach[dc] {
						r[w] |= x
					}
				}
			}
		}
		// Within a cycle every class reaches every class of the cycle.
		if len(compClasses[ci]) > 1 {
			for _, c := range compClasses[ci] {
				r[c/64] |= 1 << (c % 64)
			}
		}
		reach[ci] = r
	}
	report := &ExposureReport{}
	listening := 0 // workloads with a port: what no policy lets everyone reach
	for d, class := range m.Classes {
		if len(m.ports[d]) > 0 {
			listening += len(class.Members)
		}
	}
	for c, class := range m.Classes {
		possible := listening
		if len(m.ports[c]) > 0 {
			possible-- // not itself
		}
		direct, transitive := 0, 0
		for _, d := range succ[c] {
			direct += len(m.Classes[d].Members)
		}
		r := reach[comp[c]]
		for w, x := range r {
			for x != 0 {
				d := w*64 + bits.TrailingZeros64(x)
				x &= x - 1
				transitive += len(m.Classes[d].Members)
			}
		}
		// A workload never counts itself.
		if hasBit(r, c) {
			transitive--
		}
		if contains64(succ[c], c) {
			direct--
		}
		for _, w := range class.Members {
			report.Workloads = append(report.Workloads, Exposure{Workload: w, Direct: direct, Transitive: transitive, Possible: possible})
			report.Paths += transitive
			report.DirectPaths += direct
			report.Baseline += possible
		}
	}
	sort.SliceStable(report.Workloads, func(i, j int) bool {
		a, b := report.Workloads[i], report.Workloads[j]
		if a.Transitive != b.Transitive {
			return a.Transitive > b.Transitive
		}
		if a.Direct != b.Direct {
			return a.Direct > b.Direct
		}
		return a.Workload.Key() < b.Workload.Key()
	})
	return report
}

func hasBit(r []uint64, i int) bool { return r[i/64]&(1<<(i%64)) != 0 }

func contains64(list []int, x int) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

// scc labels the strongly connected components of a graph (Tarjan's
// algorithm, iterative); components are numbered in reverse topological
// order.
func scc(succ [][]int) ([]int, int) {
	n := len(succ)
	index, low := make([]int, n), make([]int, n)
	comp := make([]int, n)
	for i := range index {
		index[i], comp[i] = -1, -1
	}
	onStack := make([]bool, n)
	var stack []int
	next, ncomp := 0, 0
	type frame struct{ v, i int }
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.i < len(succ[f.v]) {
				w := succ[f.v][f.i]
				f.i++
				switch {
				case index[w] < 0:
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, 0})
				case onStack[w]:
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = ncomp
					if w == v {
						break
					}
				}
				ncomp++
			}
		}
	}
	return comp, ncomp
}
