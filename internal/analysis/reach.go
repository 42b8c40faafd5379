package analysis

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
)

// Layers a connection can be stopped at, in the order traffic meets them;
// index 0 means allowed.
var layers = []string{"", engine.LayerNetworkEgress, engine.LayerNetworkIngress, engine.LayerL7,
	engine.LayerMTLS, engine.LayerHTTP, engine.LayerAuthn, engine.LayerAuthz}

func layerIndex(l string) uint8 {
	if l == "" {
		return 0
	}
	for i, x := range layers {
		if x == l {
			return uint8(i)
		}
	}
	return uint8(len(layers) - 1)
}

// ReachOptions choose what the matrix asks.
type ReachOptions struct {
	// HTTP is the request every cell asks about. nil asks whether any
	// request could pass, the client choosing it (engine.PairHTTP.Any).
	HTTP *engine.PairHTTP
	// Connection asks about a bare TCP connection instead, as check does
	// without a method or path.
	Connection bool
	// Port restricts destinations to one port; 0 means every TCP port a
	// destination declares.
	Port uint16
	// Workers decide in parallel; 0 means one per CPU.
	Workers int
	// Progress, when set, is called as destination classes complete.
	Progress func(done, total int)
}

// Matrix is the reachability of every workload pair on every port.
type Matrix struct {
	Workloads []*config.Workload
	Classes   []*Class
	classOf   []int
	index     map[*config.Workload]int
	// ports[d] lists the ports of destination class d; cells[d][p][s] is
	// the layer index for source class s to port p of class d.
	ports [][]uint16
	cells [][][]uint8
}

// Reach computes the matrix. Workloads no policy can tell apart are
// decided once per class; the rest is exact.
func Reach(e *engine.Engine, opts ReachOptions) *Matrix {
	snap := e.Snapshot
	classes, classOf := classify(snap, e.SelectsClients())
	nNet, nMesh := 0, 0
	for _, c := range classes {
		nNet, nMesh = max(nNet, c.net+1), max(nMesh, c.mesh+1)
	}
	m := &Matrix{Workloads: snap.Inventory.Workloads, Classes: classes, classOf: classOf,
		index: map[*config.Workload]int{}, ports: make([][]uint16, len(classes)), cells: make([][][]uint8, len(classes))}
	for i, w := range m.Workloads {
		m.index[w] = i
	}
	for d, c := range classes {
		for _, p := range c.Members[0].Ports {
			if p.Protocol == "TCP" && (opts.Port == 0 || p.Port == opts.Port) && !contains(m.ports[d], p.Port) {
				m.ports[d] = append(m.ports[d], p.Port)
			}
		}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case opts.Connection:
		opts.HTTP = nil
	case opts.HTTP == nil:
		opts.HTTP = &engine.PairHTTP{Any: true}
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var progressMu sync.Mutex
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pairs := e.Pairs()
			// The network and the sidecar layers are decided once per
			// client group (see Class), and combined per class.
			const unknown = 0xff
			netRes, meshRes := make([]uint8, nNet), make([]uint8, nMesh)
			for {
				d := int(next.Add(1) - 1)
				if d >= len(classes) {
					return
				}
				dst := classes[d].Members[0]
				rows := make([][]uint8, len(m.ports[d]))
				for pi, port := range m.ports[d] {
					for i := range netRes {
						netRes[i] = unknown
					}
					for i := range meshRes {
						meshRes[i] = unknown
					}
					row := make([]uint8, len(classes))
					for s, sc := range classes {
						src := sc.Members[0]
						if s == d && len(sc.Members) == 1 {
							continue // a workload to itself is not a lateral path
						}
						if s == d {
							src = sc.Members[1] // another member of the same class
						}
						r := netRes[sc.net]
						if r == unknown {
							_, layer := pairs.Network(src, dst, port, opts.HTTP)
							r = layerIndex(layer)
							netRes[sc.net] = r
						}
						if r == 0 {
							r = meshRes[sc.mesh]
							if r == unknown {
								_, layer := pairs.Mesh(src, dst, port, opts.HTTP)
								r = layerIndex(layer)
								meshRes[sc.mesh] = r
							}
						}
						row[s] = r
					}
					rows[pi] = row
				}
				m.cells[d] = rows
				if opts.Progress != nil {
					n := int(done.Add(1))
					progressMu.Lock()
					opts.Progress(n, len(classes))
					progressMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return m
}

func contains(ports []uint16, p uint16) bool {
	for _, x := range ports {
		if x == p {
			return true
		}
	}
	return false
}

// Cell is one entry of the matrix.
type Cell struct {
	From, To *config.Workload
	Port     uint16
	Allowed  bool
	Layer    string // where the connection stops; "" when allowed
}

// Get returns the cell for a pair and port; ok is false for a port the
// destination does not declare, or a workload paired with itself.
func (m *Matrix) Get(from, to *config.Workload, port uint16) (Cell, bool) {
	if from == to {
		return Cell{}, false
	}
	fi, ok1 := m.index[from]
	ti, ok2 := m.index[to]
	if !ok1 || !ok2 {
		return Cell{}, false
	}
	s, d := m.classOf[fi], m.classOf[ti]
	for pi, p := range m.ports[d] {
		if p == port {
			l := m.cells[d][pi][s]
			return Cell{From: from, To: to, Port: port, Allowed: l == 0, Layer: layers[l]}, true
		}
	}
	return Cell{}, false
}

// Each calls f for every workload pair and port, sources in inventory
// order; it stops when f returns false.
func (m *Matrix) Each(f func(Cell) bool) {
	for _, from := range m.Workloads {
		for _, to := range m.Workloads {
			if from == to {
				continue
			}
			d := m.classOf[m.index[to]]
			for _, port := range m.ports[d] {
				c, _ := m.Get(from, to, port)
				if !f(c) {
					return
				}
			}
		}
	}
}

// reachesClass reports whether class s reaches class d on some port.
func (m *Matrix) reachesClass(s, d int) bool {
	for pi := range m.ports[d] {
		if m.cells[d][pi][s] == 0 {
			return true
		}
	}
	return false
}

// Stats counts the pairs and how many are allowed.
func (m *Matrix) Stats() (pairs, allowed int) {
	for d, c := range m.Classes {
		for s, sc := range m.Classes {
			n := len(sc.Members) * len(c.Members)
			if s == d {
				n = len(c.Members) * (len(c.Members) - 1)
			}
			for pi := range m.ports[d] {
				pairs += n
				if m.cells[d][pi][s] == 0 {
					allowed += n
				}
			}
		}
	}
	return pairs, allowed
}

// Ports lists the ports the matrix asks about for a destination.
func (m *Matrix) Ports(to *config.Workload) []uint16 {
	i, ok := m.index[to]
	if !ok {
		return nil
	}
	return m.ports[m.classOf[i]]
}
