package agent

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/identity"
)

// Cache holds what the agent serves to its workloads: the registration
// entries parented to it, an X.509-SVID per entry (keys made here, never
// sent anywhere), JWT-SVIDs already issued, and the trust bundle. It keeps
// serving all of it while the server is unreachable, until SVIDs expire.
type Cache struct {
	mu      sync.RWMutex
	entries []*identity.Entry // sorted by creation, then ID: the first is the default
	svids   map[string]*identity.SVID
	bundle  *spiffebundle.Bundle
	jwts    map[string]jwtSVID // by entry ID and audience
	subs    map[chan struct{}]struct{}

	// signJWT asks the server for a JWT-SVID of an entry.
	signJWT func(ctx context.Context, entryID string, audience []string) (string, error)
	now     func() time.Time
}

type jwtSVID struct {
	token             string
	issued, expiresAt time.Time
}

func newCache(now func() time.Time) *Cache {
	return &Cache{svids: map[string]*identity.SVID{}, jwts: map[string]jwtSVID{}, subs: map[chan struct{}]struct{}{}, now: now}
}

// SVIDs returns the SVIDs of every entry whose selectors are all among
// sel, the default (oldest entry) first; expired SVIDs are not served.
func (c *Cache) SVIDs(sel identity.Selectors) []*identity.SVID {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*identity.SVID
	now := c.now()
	for _, e := range c.entries {
		if !e.Selectors.SubsetOf(sel) {
			continue
		}
		if s, ok := c.svids[e.ID]; ok && now.Before(s.NotAfter()) {
			out = append(out, s)
		}
	}
	return out
}

// X509Bundle is the trust domain's X.509 authorities.
func (c *Cache) X509Bundle() *x509bundle.Bundle {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.bundle == nil {
		return nil
	}
	return c.bundle.X509Bundle()
}

// JWTBundle is the trust domain's JWT authorities.
func (c *Cache) JWTBundle() *jwtbundle.Bundle {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.bundle == nil {
		return nil
	}
	return c.bundle.JWTBundle()
}

// FetchJWTSVID returns a JWT-SVID for id and audience, reusing one until
// half its lifetime has passed, as agents do.
func (c *Cache) FetchJWTSVID(ctx context.Context, id spiffeid.ID, audience []string) (string, error) {
	c.mu.RLock()
	var entryID string
	for _, e := range c.entries {
		if e.SPIFFEID == id {
			entryID = e.ID
			break
		}
	}
	key := entryID + "\x00" + strings.Join(audience, "\x00")
	cached, ok := c.jwts[key]
	c.mu.RUnlock()
	if entryID == "" {
		return "", errNoEntry(id)
	}
	now := c.now()
	if ok && now.Before(cached.issued.Add(cached.expiresAt.Sub(cached.issued)/2)) {
		return cached.token, nil
	}
	token, err := c.signJWT(ctx, entryID, audience)
	if err != nil {
		if ok && now.Before(cached.expiresAt) {
			return cached.token, nil // the server is away; the token is still valid
		}
		return "", err
	}
	exp := jwtExpiry(token, now)
	c.mu.Lock()
	c.jwts[key] = jwtSVID{token: token, issued: now, expiresAt: exp}
	c.mu.Unlock()
	return token, nil
}

// Changes signals every change of SVIDs or bundles.
func (c *Cache) Changes() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

// notify must be called with c.mu held.
func (c *Cache) notify() {
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// setEntries replaces the entries and the bundle, dropping SVIDs of
// entries that are gone.
func (c *Cache) setEntries(entries []*identity.Entry, bundle *spiffebundle.Bundle) {
	sort.SliceStable(entries, func(i, j int) bool {
		if !entries[i].CreatedAt.Equal(entries[j].CreatedAt) {
			return entries[i].CreatedAt.Before(entries[j].CreatedAt)
		}
		return entries[i].ID < entries[j].ID
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := map[string]bool{}
	for _, e := range entries {
		keep[e.ID] = true
	}
	for id := range c.svids {
		if !keep[id] {
			delete(c.svids, id)
		}
	}
	c.entries = entries
	c.bundle = bundle
	c.notify()
}

// setSVID stores a new SVID for an entry and tells subscribers.
func (c *Cache) setSVID(s *identity.SVID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.svids[s.EntryID] = s
	c.notify()
}

// snapshot returns the entries and their current SVIDs.
func (c *Cache) snapshot() ([]*identity.Entry, map[string]*identity.SVID) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	svids := make(map[string]*identity.SVID, len(c.svids))
	for k, v := range c.svids {
		svids[k] = v
	}
	return append([]*identity.Entry(nil), c.entries...), svids
}
