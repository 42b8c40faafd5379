package ca

import "errors"

// Reasons a signing request is refused. They are returned wrapped in a
// *RequestError, so callers can map every one of them to "invalid argument"
// with errors.As, or test for a particular reason with errors.Is.
var (
	// ErrInvalidCSR: the CSR is not DER PKCS#10, or its self-signature does
	// not verify (the requester does not hold the private key).
	ErrInvalidCSR = errors.New("certificate signing request is malformed or its signature is invalid")
	// ErrWeakKey: the CSR's public key is EC below P-256, RSA below 2048
	// bits, or of another type (Ed25519, DSA, ...), which SPIFFE peers are
	// not required to support.
	ErrWeakKey = errors.New("public key is too weak or of an unsupported type (want EC P-256/P-384/P-521 or RSA >= 2048 bits)")
	// ErrCSRRequestsCA: the CSR carries a basicConstraints extension with
	// cA=true. An X509-SVID leaf MUST NOT be a CA (X509-SVID §4.1).
	ErrCSRRequestsCA = errors.New("certificate signing request asks for a CA certificate")
	// ErrForeignTrustDomain: the SPIFFE ID is not in this CA's trust domain.
	ErrForeignTrustDomain = errors.New("SPIFFE ID is not in the CA's trust domain")
	// ErrRootID: the SPIFFE ID has no path; workload SVIDs need a non-root
	// path (X509-SVID §3.1).
	ErrRootID = errors.New("SPIFFE ID has no path (the trust domain ID cannot be a workload identity)")
	// ErrInvalidDNSName: a requested DNS SAN is not a DNS name.
	ErrInvalidDNSName = errors.New("invalid DNS name")
	// ErrInvalidTTL: the requested TTL is negative.
	ErrInvalidTTL = errors.New("TTL is negative")
	// ErrNoAudience: a JWT-SVID needs at least one non-empty audience
	// (JWT-SVID §3).
	ErrNoAudience = errors.New("JWT-SVID audience is required")
)

// ErrNoActiveCA is returned when the active authority has expired and
// Rotate has not replaced it yet (for example when the process was stopped
// for longer than the CA lifetime and signing raced the first Rotate).
// It is a server condition, not a bad request.
var ErrNoActiveCA = errors.New("ca: no unexpired active authority")

// RequestError is a refusal to sign because of the request itself. Err is
// one of the Err* reasons above; Detail says which field was wrong. Neither
// ever contains key material.
type RequestError struct {
	Err    error
	Detail string
}

func (e *RequestError) Error() string {
	if e.Detail == "" {
		return "ca: " + e.Err.Error()
	}
	return "ca: " + e.Err.Error() + ": " + e.Detail
}

// Unwrap lets errors.Is match the reason.
func (e *RequestError) Unwrap() error { return e.Err }

func reject(reason error, detail string) error {
	return &RequestError{Err: reason, Detail: detail}
}
