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
	"sync/atomic"

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
	lastErr error         // the last watch error, until the next update
	changed chan struct{} // closed and replaced on every update
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // why the watch ended, once done is closed
}

// Watch connects to the Workload API at addr ("unix:///path") and returns
// once the first update has arrived. Until then the client retries as
// go-spiffe does (a caller without an identity is refused and retries);
// ctx bounds the wait, and the error then says what the API last answered.
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
		s.err = client.WatchX509Context(wctx, s)
	}()
	select {
	case <-first:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("workload API %s: %w", addr, s.err)
	case <-ctx.Done():
		s.mu.RLock()
		last := s.lastErr
		s.mu.RUnlock()
		s.Close()
		if last != nil {
			return nil, fmt.Errorf("workload API %s: no SVID: %w", addr, last)
		}
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
	s.svids, s.bundles, s.lastErr = c.SVIDs, c.Bundles, nil
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// OnX509ContextWatchError implements workloadapi.X509ContextWatcher; the
// client retries on its own and the last context stays in use.
func (s *Set) OnX509ContextWatchError(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

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
// takes the first SVID served, the Workload API's default, until Pin.
func (s *Set) For(id spiffeid.ID) *Source {
	src := &Source{set: s}
	src.id.Store(&id)
	return src
}

// Source is an x509svid.Source and x509bundle.Source over a Set.
type Source struct {
	set *Set
	id  atomic.Pointer[spiffeid.ID]
}

// Pin makes the source serve id from now on: a process that learns its
// identity after it started (from its first policy) keeps one source.
func (src *Source) Pin(id spiffeid.ID) { src.id.Store(&id) }

// GetX509SVID returns the current SVID with the source's ID.
func (src *Source) GetX509SVID() (*x509svid.SVID, error) {
	id := *src.id.Load()
	s := src.set
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.svids {
		if id.IsZero() || v.ID == id {
			return v, nil
		}
	}
	if id.IsZero() {
		return nil, errors.New("the Workload API serves no SVID")
	}
	return nil, fmt.Errorf("the Workload API does not serve %s", id)
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
