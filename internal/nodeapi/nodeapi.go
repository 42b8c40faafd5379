// Package nodeapi defines the messages between a Palisade node agent and
// the server (HTTPS with mutual TLS, JSON bodies) and between the CLI and
// the server's admin socket (HTTP over a unix socket, JSON bodies).
//
// Keys never travel: agents send certificate signing requests and receive
// certificates. Certificates and CSRs are DER, base64-encoded by JSON.
package nodeapi

import "time"

// Paths of the agent API, served on the server's TCP address. Attest is
// the only one an agent calls without its own SVID.
const (
	PathAttest = "/v1/agent/attest"
	PathRenew  = "/v1/agent/renew"
	PathSync   = "/v1/agent/sync"
	PathSign   = "/v1/agent/svids"
	PathJWT    = "/v1/agent/jwt"
)

// Paths of the admin API, served on the server's unix socket.
const (
	PathEntries    = "/v1/entries"
	PathJoinTokens = "/v1/join-tokens"
	PathBundle     = "/v1/bundle"
	PathAgents     = "/v1/agents"
	PathHealth     = "/v1/health"
)

// AttestRequest proves a node with the named node attestor's payload and
// asks for the agent's first SVID.
type AttestRequest struct {
	Attestor string `json:"attestor"` // "join_token"
	Payload  []byte `json:"payload"`  // for join_token: the token
	CSR      []byte `json:"csr"`
}

// AttestorJoinToken is the name of join-token node attestation.
const AttestorJoinToken = "join_token"

// SVIDResponse carries a signed X.509-SVID chain (leaf first) and the
// trust bundle in the SPIFFE bundle format.
type SVIDResponse struct {
	SPIFFEID string   `json:"spiffeId"`
	Chain    [][]byte `json:"chain"`
	Bundle   []byte   `json:"bundle"`
}

// RenewRequest asks for a fresh agent SVID for a new key.
type RenewRequest struct {
	CSR []byte `json:"csr"`
}

// SyncResponse is what an agent needs to serve its workloads: the entries
// parented to it and the trust bundle, at a revision. The server holds a
// sync request open (up to its wait parameter) until the revision is past
// the one the agent has.
type SyncResponse struct {
	Revision int64   `json:"revision"`
	Entries  []Entry `json:"entries"`
	Bundle   []byte  `json:"bundle"`
}

// Entry is a registration entry on the wire.
type Entry struct {
	ID        string   `json:"id"`
	SPIFFEID  string   `json:"spiffeId"`
	ParentID  string   `json:"parentId"`
	Selectors []string `json:"selectors"` // "type:value"
	X509TTL   Duration `json:"x509SvidTtl,omitempty"`
	JWTTTL    Duration `json:"jwtSvidTtl,omitempty"`
	DNSNames  []string `json:"dnsNames,omitempty"`
	Hint      string   `json:"hint,omitempty"`
	CreatedAt string   `json:"createdAt,omitempty"`
	Revision  int64    `json:"revision,omitempty"`
}

// SignRequest asks for X.509-SVIDs for entries of the agent.
type SignRequest struct {
	CSRs []EntryCSR `json:"csrs"`
}

// EntryCSR is one CSR for one entry.
type EntryCSR struct {
	EntryID string `json:"entryId"`
	CSR     []byte `json:"csr"`
}

// SignResponse carries one result per requested CSR, in order.
type SignResponse struct {
	SVIDs []SignedSVID `json:"svids"`
}

// SignedSVID is a signed chain, or why it was refused.
type SignedSVID struct {
	EntryID string   `json:"entryId"`
	Chain   [][]byte `json:"chain,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// JWTRequest asks for a JWT-SVID for an entry of the agent.
type JWTRequest struct {
	EntryID  string   `json:"entryId"`
	Audience []string `json:"audience"`
}

// JWTResponse carries a JWT-SVID.
type JWTResponse struct {
	Token string `json:"token"`
}

// JoinTokenRequest asks the admin API for a join token.
type JoinTokenRequest struct {
	TTL Duration `json:"ttl,omitempty"`
}

// JoinTokenResponse is a new join token and the agent ID it will give.
type JoinTokenResponse struct {
	Token     string `json:"token"`
	AgentID   string `json:"agentId"`
	ExpiresAt string `json:"expiresAt"`
}

// Agent is an attested agent on the wire.
type Agent struct {
	ID         string   `json:"id"`
	Selectors  []string `json:"selectors"`
	AttestedAt string   `json:"attestedAt"`
	ExpiresAt  string   `json:"expiresAt"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// Duration is a time.Duration written as a Go duration string ("1h").
type Duration time.Duration

// MarshalText writes the duration as "1h0m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
