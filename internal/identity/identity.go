// Package identity holds Palisade's SPIFFE identity vocabulary, shared by
// the server (CA and registration), the node agent and the Workload API:
// registration entries, selectors and SVIDs.
package identity

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Selector is one attested property of a workload or a node, such as
// unix:uid:1000 (type "unix", value "uid:1000") or join_token:<token>.
type Selector struct {
	Type  string
	Value string
}

func (s Selector) String() string { return s.Type + ":" + s.Value }

// ParseSelector reads "type:value". The value may contain colons.
func ParseSelector(s string) (Selector, error) {
	t, v, ok := strings.Cut(s, ":")
	if !ok || t == "" || v == "" {
		return Selector{}, fmt.Errorf("selector %q: want TYPE:VALUE, such as unix:uid:1000", s)
	}
	return Selector{Type: t, Value: v}, nil
}

// Selectors is a set of selectors.
type Selectors []Selector

// Sorted returns the selectors sorted by type, then value.
func (ss Selectors) Sorted() Selectors {
	out := append(Selectors(nil), ss...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// SubsetOf reports whether every selector of ss is in of: an entry applies
// to a workload when all of the entry's selectors are among the workload's.
func (ss Selectors) SubsetOf(of Selectors) bool {
	for _, s := range ss {
		found := false
		for _, o := range of {
			if s == o {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Entry is a registration entry: workloads matching its selectors, on
// nodes whose agent has ParentID, are entitled to SPIFFEID.
type Entry struct {
	ID        string // assigned by the server
	SPIFFEID  spiffeid.ID
	ParentID  spiffeid.ID
	Selectors Selectors
	X509TTL   time.Duration // 0: the server's default
	JWTTTL    time.Duration // 0: the server's default
	DNSNames  []string
	Hint      string
	CreatedAt time.Time
	// Revision increases with every change, so agents can tell what to
	// refresh.
	Revision int64
}

// SVID is an X.509-SVID with its private key.
type SVID struct {
	ID           spiffeid.ID
	Certificates []*x509.Certificate // leaf first, then intermediates
	PrivateKey   crypto.Signer
	Hint         string
	EntryID      string
}

// NotAfter is when the leaf certificate expires.
func (s *SVID) NotAfter() time.Time { return s.Certificates[0].NotAfter }

// Agent is an attested node agent.
type Agent struct {
	ID           spiffeid.ID
	Selectors    Selectors // node selectors from attestation
	AttestedAt   time.Time
	SerialNumber string // of the agent's current SVID
	ExpiresAt    time.Time
	Banned       bool
}

// JoinToken is a one-time secret an agent attests with.
type JoinToken struct {
	Token     string
	ExpiresAt time.Time
}

// AgentID is the SPIFFE ID an agent attested with a join token gets:
// spiffe://<td>/spire/agent/join_token/<token>, as SPIRE names it.
func AgentID(td spiffeid.TrustDomain, token string) (spiffeid.ID, error) {
	return spiffeid.FromSegments(td, "spire", "agent", "join_token", token)
}

// ServerID is the SPIFFE ID of the server itself.
func ServerID(td spiffeid.TrustDomain) spiffeid.ID {
	id, _ := spiffeid.FromSegments(td, "spire", "server")
	return id
}
