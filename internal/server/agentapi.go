package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/palisade-security/palisade/internal/datastore"
	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/nodeapi"
)

// maxBody bounds request bodies: a few CSRs, never megabytes.
const maxBody = 1 << 20

// agentTLSConfig serves the server's SVID and asks for, but does not
// require, a client certificate: attestation comes before an agent has
// one. Handlers other than attestation require a verified agent SVID.
func (s *Server) agentTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.tlsCert, nil
		},
	}
}

// peerAgent verifies the client certificate chain against the current
// trust bundle and returns the attested agent it belongs to.
func (s *Server) peerAgent(r *http.Request) (*identity.Agent, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, errors.New("an agent SVID is required")
	}
	bundle := x509bundle.FromX509Authorities(s.cfg.TrustDomain, s.ca.X509Authorities())
	id, _, err := x509svid.Verify(r.TLS.PeerCertificates, bundle)
	if err != nil {
		return nil, fmt.Errorf("agent SVID: %v", err)
	}
	agent, err := s.store.GetAgent(r.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("%s is not an attested agent", id)
	}
	if agent.Banned {
		return nil, fmt.Errorf("agent %s is banned", id)
	}
	return agent, nil
}

func (s *Server) agentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+nodeapi.PathAttest, s.handleAttest)
	mux.HandleFunc("POST "+nodeapi.PathRenew, s.withAgent(s.handleRenew))
	mux.HandleFunc("GET "+nodeapi.PathSync, s.withAgent(s.handleSync))
	mux.HandleFunc("POST "+nodeapi.PathSign, s.withAgent(s.handleSign))
	mux.HandleFunc("POST "+nodeapi.PathJWT, s.withAgent(s.handleJWT))
	return mux
}

func (s *Server) withAgent(h func(http.ResponseWriter, *http.Request, *identity.Agent)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		agent, err := s.peerAgent(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		h(w, r, agent)
	}
}

// NodeAttestor proves a node's identity from what its agent sends. Join
// tokens are the first; Kubernetes service account tokens can follow.
type NodeAttestor interface {
	// AgentID names the agent the payload claims to be, without checking
	// or consuming anything.
	AgentID(payload []byte) (spiffeid.ID, error)
	// Attest checks the payload, consuming it if it is single-use, and
	// returns the node's selectors. It runs only after the agent's CSR was
	// accepted, so a bad request changes nothing.
	Attest(ctx context.Context, payload []byte) (identity.Selectors, error)
}

// joinTokenAttestor attests nodes with one-time join tokens.
type joinTokenAttestor struct{ s *Server }

func (a joinTokenAttestor) AgentID(payload []byte) (spiffeid.ID, error) {
	if len(payload) == 0 {
		return spiffeid.ID{}, errors.New("the join token is empty")
	}
	id, err := identity.AgentID(a.s.cfg.TrustDomain, string(payload))
	if err != nil {
		return spiffeid.ID{}, errors.New("the join token is malformed")
	}
	return id, nil
}

func (a joinTokenAttestor) Attest(ctx context.Context, payload []byte) (identity.Selectors, error) {
	if err := a.s.store.ConsumeJoinToken(ctx, string(payload), a.s.cfg.Clock()); err != nil {
		if errors.Is(err, datastore.ErrExpired) {
			return nil, errors.New("join token has expired")
		}
		return nil, errors.New("join token does not exist or has already been used")
	}
	return identity.Selectors{{Type: "join_token", Value: string(payload)}}, nil
}

// handleAttest trades a node attestor's proof and a CSR for the agent's
// first SVID. The CSR is signed before the proof is checked and consumed,
// so a bad CSR leaves a join token usable and changes nothing.
func (s *Server) handleAttest(w http.ResponseWriter, r *http.Request) {
	var req nodeapi.AttestRequest
	if !readJSON(w, r, &req) {
		return
	}
	attestor, ok := s.attestors[req.Attestor]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown node attestor %q", req.Attestor))
		return
	}
	agentID, err := attestor.AgentID(req.Payload)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	chain, err := s.ca.SignX509SVID(r.Context(), req.CSR, agentID, s.cfg.SVIDTTL, nil)
	if err != nil {
		writeError(w, http.StatusBadRequest, "CSR refused: "+err.Error())
		return
	}
	selectors, err := attestor.Attest(r.Context(), req.Payload)
	if err != nil {
		s.log.Info("attestation refused", "attestor", req.Attestor, "reason", err.Error(), "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	agent := &identity.Agent{
		ID: agentID, Selectors: selectors, AttestedAt: s.cfg.Clock(),
		SerialNumber: chain[0].SerialNumber.String(), ExpiresAt: chain[0].NotAfter,
	}
	if err := s.store.UpsertAgent(r.Context(), agent); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("agent attested", "agent", agentID.String(), "attestor", req.Attestor)
	s.writeSVID(w, agentID, chain)
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request, agent *identity.Agent) {
	var req nodeapi.RenewRequest
	if !readJSON(w, r, &req) {
		return
	}
	chain, err := s.ca.SignX509SVID(r.Context(), req.CSR, agent.ID, s.cfg.SVIDTTL, nil)
	if err != nil {
		writeError(w, http.StatusBadRequest, "CSR refused: "+err.Error())
		return
	}
	agent.SerialNumber, agent.ExpiresAt = chain[0].SerialNumber.String(), chain[0].NotAfter
	if err := s.store.UpsertAgent(r.Context(), agent); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.writeSVID(w, agent.ID, chain)
}

func (s *Server) writeSVID(w http.ResponseWriter, id spiffeid.ID, chain []*x509.Certificate) {
	bundle, err := s.ca.Bundle().Marshal()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	resp := nodeapi.SVIDResponse{SPIFFEID: id.String(), Bundle: bundle}
	for _, c := range chain {
		resp.Chain = append(resp.Chain, c.Raw)
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleSync returns the agent's entries and the bundle. When the agent
// already has the current revision (?revision=N), the request waits, up to
// ?wait= (at most 60s), for the next change: that is how a new entry
// reaches its agent within moments.
func (s *Server) handleSync(w http.ResponseWriter, r *http.Request, agent *identity.Agent) {
	have, _ := strconv.ParseInt(r.URL.Query().Get("revision"), 10, 64)
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	wait = min(wait, 60*time.Second)
	rev, changed := s.state()
	if rev == have && wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-changed:
		case <-timer.C:
		case <-r.Context().Done():
		}
		timer.Stop()
		rev, _ = s.state()
	}
	entries, err := s.store.ListEntries(r.Context(), datastore.EntryFilter{ParentID: &agent.ID})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	bundle, err := s.ca.Bundle().Marshal()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	resp := nodeapi.SyncResponse{Revision: rev, Bundle: bundle, Entries: []nodeapi.Entry{}}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, entryToWire(e))
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleSign signs CSRs for entries parented to the calling agent. An
// entry of another agent, or a bad CSR, fails that item only.
func (s *Server) handleSign(w http.ResponseWriter, r *http.Request, agent *identity.Agent) {
	var req nodeapi.SignRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.CSRs) > 500 {
		writeError(w, http.StatusBadRequest, "at most 500 CSRs per request")
		return
	}
	resp := nodeapi.SignResponse{SVIDs: make([]nodeapi.SignedSVID, 0, len(req.CSRs))}
	for _, c := range req.CSRs {
		out := nodeapi.SignedSVID{EntryID: c.EntryID}
		entry, err := s.ownEntry(r.Context(), agent, c.EntryID)
		if err == nil {
			var chain []*x509.Certificate
			chain, err = s.ca.SignX509SVID(r.Context(), c.CSR, entry.SPIFFEID, entry.X509TTL, entry.DNSNames)
			for _, cert := range chain {
				out.Chain = append(out.Chain, cert.Raw)
			}
		}
		if err != nil {
			out.Error = err.Error()
		}
		resp.SVIDs = append(resp.SVIDs, out)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleJWT(w http.ResponseWriter, r *http.Request, agent *identity.Agent) {
	var req nodeapi.JWTRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Audience) == 0 {
		writeError(w, http.StatusBadRequest, "audience is required")
		return
	}
	entry, err := s.ownEntry(r.Context(), agent, req.EntryID)
	if err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	token, err := s.ca.SignJWTSVID(r.Context(), entry.SPIFFEID, req.Audience, entry.JWTTTL)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, nodeapi.JWTResponse{Token: token})
}

// ownEntry returns an entry the agent is entitled to sign for.
func (s *Server) ownEntry(ctx context.Context, agent *identity.Agent, id string) (*identity.Entry, error) {
	entry, err := s.store.GetEntry(ctx, id)
	if err != nil || entry.ParentID != agent.ID {
		return nil, fmt.Errorf("entry %q is not parented to %s", id, agent.ID)
	}
	return entry, nil
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, nodeapi.Error{Error: msg})
}
