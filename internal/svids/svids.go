// Package svids keeps what the SPIFFE Workload API serves a process — all
// its X.509-SVIDs and the trust bundles — up to date, and hands out
// sources fixed to one SPIFFE ID. A process that runs several proxies, or
// one that learns its identity after it has started, picks per use; a
// go-spiffe X509Source picks once per update.
package svids

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Set is the latest X.509 context the Workload API sent.
type Set struct {
	mu      sync.RWMutex
	svids   []*x509svid.SVID
	bundles *x509bundle.Set
	changed chan struct{} // closed and replaced on every update
	cancel  context.CancelFunc
	done    chan struct{}
}

// Watch connects to the Workload API at addr ("unix:///path") and returns
// once the first update has arrived.
func Watch(ctx context.Context, addr string) (*Set, error) {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s := &Set{changed: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	first := s.changed
	go func() {
		defer close(s.done)
		defer client.Close()
		_ = client.WatchX509Context(wctx, s)
	}()
	select {
	case <-first:
		return s, nil
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("workload API %s: %w", addr, ctx.Err())
	}
}

// Close stops watching.
func (s *Set) Close() {
	s.cancel()
	<-s.done
}

// OnX509ContextUpdate implements workloadapi.X509ContextWatcher.
func (s *Set) OnX509ContextUpdate(c *workloadapi.X509Context) {
	s.mu.Lock()
	s.svids, s.bundles = c.SVIDs, c.Bundles
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// OnX509ContextWatchError implements workloadapi.X509ContextWatcher; the
// client retries on its own and the last context stays in use.
func (s *Set) OnX509ContextWatchError(error) {}

// IDs lists the SPIFFE IDs served now.
func (s *Set) IDs() []spiffeid.ID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]spiffeid.ID, len(s.svids))
	for i, v := range s.svids {
		ids[i] = v.ID
	}
	return ids
}

// WaitFor returns once id is served, or ctx is done.
func (s *Set) WaitFor(ctx context.Context, id spiffeid.ID) error {
	for {
		s.mu.RLock()
		changed := s.changed
		s.mu.RUnlock()
		if _, err := s.For(id).GetX509SVID(); err == nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("the Workload API does not serve %s to this process: %w", id, ctx.Err())
		}
	}
}

// For returns a source of the SVID with id and of the bundles. A zero id
// takes the first SVID served, the Workload API's default.
func (s *Set) For(id spiffeid.ID) *Source { return &Source{set: s, id: id} }

// Source is an x509svid.Source and x509bundle.Source over a Set.
type Source struct {
	set *Set
	id  spiffeid.ID
}

// GetX509SVID returns the current SVID with the source's ID.
func (src *Source) GetX509SVID() (*x509svid.SVID, error) {
	s := src.set
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.svids {
		if src.id.IsZero() || v.ID == src.id {
			return v, nil
		}
	}
	if src.id.IsZero() {
		return nil, errors.New("the Workload API serves no SVID")
	}
	return nil, fmt.Errorf("the Workload API does not serve %s", src.id)
}

// GetX509BundleForTrustDomain returns the current bundle of td.
func (src *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s := src.set
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.bundles == nil {
		return nil, fmt.Errorf("no bundle for trust domain %q", td)
	}
	return s.bundles.GetX509BundleForTrustDomain(td)
}
