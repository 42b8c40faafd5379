package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// state is an immutable snapshot of the CA's authorities. Signers read it
// through an atomic pointer without locking; Rotate builds a new one and
// swaps it in after the journal has been saved.
type state struct {
	slots    []*slot // in creation order
	seq      uint64
	active   *slot
	prepared *slot
	// Derived views, computed once per change.
	roots   []*x509.Certificate
	jwtKeys map[string]crypto.PublicKey
	bundle  *spiffebundle.Bundle
}

func newState(slots []*slot, seq uint64, refreshHint time.Duration, td spiffeid.TrustDomain) (*state, error) {
	st := &state{slots: slots, seq: seq, jwtKeys: make(map[string]crypto.PublicKey)}
	seen := make(map[string]bool)
	for _, s := range slots {
		switch s.state {
		case StateActive:
			if st.active != nil {
				return nil, fmt.Errorf("ca: more than one active authority")
			}
			st.active = s
		case StatePrepared:
			if st.prepared != nil {
				return nil, fmt.Errorf("ca: more than one prepared authority")
			}
			st.prepared = s
		}
		for _, r := range s.x509.roots {
			if !seen[string(r.Raw)] {
				seen[string(r.Raw)] = true
				st.roots = append(st.roots, r)
			}
		}
		st.jwtKeys[s.jwt.kid] = s.jwt.public
	}
	b := spiffebundle.New(td)
	b.SetX509Authorities(st.roots)
	b.SetJWTAuthorities(st.jwtKeys)
	b.SetSequenceNumber(seq)
	b.SetRefreshHint(refreshHint)
	st.bundle = b
	return st, nil
}

// sameContent reports whether two states publish the same trust bundle
// (ignoring the sequence number): the sequence only moves when they differ.
func sameContent(a, b *state) bool {
	if len(a.roots) != len(b.roots) || len(a.jwtKeys) != len(b.jwtKeys) {
		return false
	}
	for i := range a.roots {
		if !bytes.Equal(a.roots[i].Raw, b.roots[i].Raw) {
			return false
		}
	}
	for kid := range a.jwtKeys {
		if _, ok := b.jwtKeys[kid]; !ok {
			return false
		}
	}
	return true
}

// keyFiles lists the key files the state still needs.
func (st *state) keyFiles() map[string]bool {
	keep := make(map[string]bool)
	for _, s := range st.slots {
		if s.x509.keyFile != "" {
			keep[s.x509.keyFile] = true
		}
		if s.jwt.keyFile != "" {
			keep[s.jwt.keyFile] = true
		}
	}
	return keep
}
