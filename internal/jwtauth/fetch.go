package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySource fetches a JWKS. issuer and jwksURI are the rule's; jwksURI is
// empty when the keys are to be found by OIDC discovery. timeout is the
// rule's timeout (DefaultTimeout when the rule sets none). A returned error
// makes the rule fail closed.
type KeySource interface {
	JWKS(ctx context.Context, issuer, jwksURI string, timeout time.Duration) (*jose.JSONWebKeySet, error)
}

// Default cache lifetimes of a Fetcher.
const (
	// DefaultTTL is istiod's steady-state JWKS refresh interval
	// (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL): a key set this old is fetched
	// again.
	DefaultTTL = 20 * time.Minute
	// DefaultFailureTTL is how long a failed fetch is remembered, istiod's
	// first retry interval after a failure, so that checking many requests
	// does not hammer a dead endpoint.
	DefaultFailureTTL = time.Minute
)

// maxBody bounds a JWKS or discovery document; real ones are a few KiB.
const maxBody = 10 << 20

// Fetcher is the real KeySource. It does what istiod's JWKS resolver does
// for a rule: an HTTP(S) GET of jwksUri with the rule's timeout or, when
// jwksUri is empty, OpenID discovery first (GET <issuer without trailing
// "/">/.well-known/openid-configuration and read "jwks_uri"). The body must
// be a JSON object with a "keys" array. Results are cached per (issuer,
// jwksUri): successes for TTL, failures for FailureTTL; concurrent requests
// for the same entry share one fetch.
//
// Static key sets, keyed by jwksUri or by issuer, take precedence over
// fetching; they serve offline use (palisade check --jwks URI=FILE).
//
// A Fetcher is safe for concurrent use. Set TTL and FailureTTL before the
// first call.
type Fetcher struct {
	TTL        time.Duration
	FailureTTL time.Duration

	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	static  map[string]*jose.JSONWebKeySet
	entries map[fetchKey]*fetchEntry
}

type fetchKey struct{ issuer, uri string }

type fetchEntry struct {
	done    chan struct{} // closed once set/err are final
	set     *jose.JSONWebKeySet
	err     error
	expires time.Time
}

// NewFetcher returns a Fetcher using client, or, when client is nil, one
// like istiod's: proxies from the environment, system roots, and dials to
// link-local and known cloud-metadata addresses refused (a jwksUri must not
// reach the instance metadata service).
func NewFetcher(client *http.Client) *Fetcher {
	if client == nil {
		client = defaultClient()
	}
	return &Fetcher{
		TTL:        DefaultTTL,
		FailureTTL: DefaultFailureTTL,
		client:     client,
		now:        time.Now,
		static:     map[string]*jose.JSONWebKeySet{},
		entries:    map[fetchKey]*fetchEntry{},
	}
}

// AddStatic serves set for every rule whose jwksUri, or else issuer, is key.
func (f *Fetcher) AddStatic(key string, set *jose.JSONWebKeySet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.static[key] = set
}

// JWKS implements KeySource.
func (f *Fetcher) JWKS(ctx context.Context, issuer, jwksURI string, timeout time.Duration) (*jose.JSONWebKeySet, error) {
	k := fetchKey{issuer, jwksURI}
	f.mu.Lock()
	if set, ok := f.static[jwksURI]; ok && jwksURI != "" {
		f.mu.Unlock()
		return set, nil
	}
	if set, ok := f.static[issuer]; ok && issuer != "" {
		f.mu.Unlock()
		return set, nil
	}
	if e, ok := f.entries[k]; ok {
		select {
		case <-e.done:
			if f.now().Before(e.expires) {
				f.mu.Unlock()
				return e.set, e.err
			}
		default: // in flight: wait for it rather than fetch twice
			f.mu.Unlock()
			select {
			case <-e.done:
				return e.set, e.err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	e := &fetchEntry{done: make(chan struct{})}
	f.entries[k] = e
	f.mu.Unlock()

	set, err := f.fetch(ctx, issuer, jwksURI, timeout)

	f.mu.Lock()
	e.set, e.err = set, err
	if err == nil {
		e.expires = f.now().Add(f.TTL)
	} else {
		e.expires = f.now().Add(f.FailureTTL)
	}
	f.mu.Unlock()
	close(e.done)
	return set, err
}

func (f *Fetcher) fetch(ctx context.Context, issuer, uri string, timeout time.Duration) (*jose.JSONWebKeySet, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if uri == "" {
		if issuer == "" {
			return nil, errors.New("jwksURI and issuer are both empty")
		}
		disc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
		body, err := f.get(ctx, disc, timeout)
		if err != nil {
			return nil, fmt.Errorf("OpenID discovery %s: %w", disc, err)
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("OpenID discovery %s: %w", disc, err)
		}
		u, ok := doc["jwks_uri"].(string)
		if !ok {
			return nil, fmt.Errorf("invalid jwks_uri %v in openID discovery configuration", doc["jwks_uri"])
		}
		uri = u
	}
	body, err := f.get(ctx, uri, timeout)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS %s: %w", uri, err)
	}
	set, err := ParseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("content fetched from %s is not a valid JWKS: %w", uri, err)
	}
	return set, nil
}

// get is one attempt, as on istiod's push path (it retries only in the
// background refresher, whose later success this cache stands in for).
func (f *Fetcher) get(ctx context.Context, uri string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("response larger than %d bytes", maxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		// istiod's wording, body quoted and cut at 100 characters.
		msg := strconv.Quote(string(body))
		if len(msg) > 100 {
			return nil, fmt.Errorf("status %d, message %s(truncated)", resp.StatusCode, msg[:100])
		}
		return nil, fmt.Errorf("status %d, message %s", resp.StatusCode, msg)
	}
	return body, nil
}

func defaultClient() *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: refuseMetadataDial}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dialer.DialContext
	return &http.Client{Transport: tr}
}

// metadataNets are cloud metadata addresses outside the link-local range
// that istiod also refuses (Alibaba Cloud, AWS IMDS over IPv6).
var metadataNets = func() []*net.IPNet {
	var nets []*net.IPNet
	for _, cidr := range []string{"100.100.100.200/32", "fd00:ec2::/32"} {
		_, n, _ := net.ParseCIDR(cidr)
		nets = append(nets, n)
	}
	return nets
}()

// refuseMetadataDial runs after name resolution, on the address actually
// dialled, so a hostname that resolves to a metadata address is refused
// too.
func refuseMetadataDial(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil
	}
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
		return fmt.Errorf("connection blocked: resolved IP %s is link-local", ip)
	}
	for _, n := range metadataNets {
		if n.Contains(ip) {
			return fmt.Errorf("connection blocked: resolved IP %s is a known cloud metadata address", ip)
		}
	}
	return nil
}
