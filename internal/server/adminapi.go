package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/palisade-security/palisade/internal/datastore"
	"github.com/palisade-security/palisade/internal/identity"
	"github.com/palisade-security/palisade/internal/nodeapi"
)

// adminHandler serves the CLI on the admin socket, which only the
// server's user can open.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+nodeapi.PathEntries, s.handleCreateEntry)
	mux.HandleFunc("GET "+nodeapi.PathEntries, s.handleListEntries)
	mux.HandleFunc("GET "+nodeapi.PathEntries+"/{id}", s.handleGetEntry)
	mux.HandleFunc("DELETE "+nodeapi.PathEntries+"/{id}", s.handleDeleteEntry)
	mux.HandleFunc("POST "+nodeapi.PathJoinTokens, s.handleJoinToken)
	mux.HandleFunc("GET "+nodeapi.PathBundle, s.handleBundle)
	mux.HandleFunc("GET "+nodeapi.PathAgents, s.handleAgents)
	mux.HandleFunc("GET "+nodeapi.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

func (s *Server) handleCreateEntry(w http.ResponseWriter, r *http.Request) {
	var in nodeapi.Entry
	if !readJSON(w, r, &in) {
		return
	}
	e, err := s.entryFromWire(in)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	created, err := s.CreateEntry(r.Context(), e)
	switch {
	case errors.Is(err, datastore.ErrExists):
		writeError(w, http.StatusConflict, "an entry with this SPIFFE ID, parent and selectors exists")
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, entryToWire(created))
}

// CreateEntry stores a registration entry and wakes the agents' syncs.
func (s *Server) CreateEntry(ctx context.Context, e *identity.Entry) (*identity.Entry, error) {
	created, err := s.store.CreateEntry(ctx, e)
	if err != nil {
		return nil, err
	}
	s.bump()
	s.log.Info("entry created", "id", created.ID, "spiffeId", created.SPIFFEID.String(), "parentId", created.ParentID.String())
	return created, nil
}

// entryFromWire validates an entry: IDs in the server's trust domain, a
// workload ID with a path, at least one well-formed selector.
func (s *Server) entryFromWire(in nodeapi.Entry) (*identity.Entry, error) {
	id, err := spiffeid.FromString(in.SPIFFEID)
	if err != nil {
		return nil, fmt.Errorf("spiffeId %q: %v", in.SPIFFEID, err)
	}
	if id.TrustDomain() != s.cfg.TrustDomain {
		return nil, fmt.Errorf("spiffeId %q is not in trust domain %q", in.SPIFFEID, s.cfg.TrustDomain)
	}
	if id.Path() == "" {
		return nil, fmt.Errorf("spiffeId %q: a workload ID needs a path", in.SPIFFEID)
	}
	parent, err := spiffeid.FromString(in.ParentID)
	if err != nil {
		return nil, fmt.Errorf("parentId %q: %v", in.ParentID, err)
	}
	if parent.TrustDomain() != s.cfg.TrustDomain {
		return nil, fmt.Errorf("parentId %q is not in trust domain %q", in.ParentID, s.cfg.TrustDomain)
	}
	if len(in.Selectors) == 0 {
		return nil, errors.New("at least one selector is required")
	}
	e := &identity.Entry{SPIFFEID: id, ParentID: parent, X509TTL: time.Duration(in.X509TTL), JWTTTL: time.Duration(in.JWTTTL), DNSNames: in.DNSNames, Hint: in.Hint}
	for _, sel := range in.Selectors {
		p, err := identity.ParseSelector(sel)
		if err != nil {
			return nil, err
		}
		e.Selectors = append(e.Selectors, p)
	}
	if e.X509TTL < 0 || e.JWTTTL < 0 {
		return nil, errors.New("TTLs must not be negative")
	}
	return e, nil
}

func entryToWire(e *identity.Entry) nodeapi.Entry {
	out := nodeapi.Entry{
		ID: e.ID, SPIFFEID: e.SPIFFEID.String(), ParentID: e.ParentID.String(),
		X509TTL: nodeapi.Duration(e.X509TTL), JWTTTL: nodeapi.Duration(e.JWTTTL),
		DNSNames: e.DNSNames, Hint: e.Hint, Revision: e.Revision,
	}
	if !e.CreatedAt.IsZero() {
		out.CreatedAt = e.CreatedAt.UTC().Format(time.RFC3339)
	}
	for _, sel := range e.Selectors {
		out.Selectors = append(out.Selectors, sel.String())
	}
	return out
}

func (s *Server) handleListEntries(w http.ResponseWriter, r *http.Request) {
	var f datastore.EntryFilter
	for _, q := range []struct {
		name string
		dst  **spiffeid.ID
	}{{"parentId", &f.ParentID}, {"spiffeId", &f.SPIFFEID}} {
		if v := r.URL.Query().Get(q.name); v != "" {
			id, err := spiffeid.FromString(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q: %v", q.name, v, err))
				return
			}
			*q.dst = &id
		}
	}
	entries, err := s.store.ListEntries(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []nodeapi.Entry{}
	for _, e := range entries {
		out = append(out, entryToWire(e))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetEntry(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.GetEntry(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no entry %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, entryToWire(e))
}

func (s *Server) handleDeleteEntry(w http.ResponseWriter, r *http.Request) {
	if err := s.store.DeleteEntry(r.Context(), r.PathValue("id")); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, datastore.ErrNotFound) {
			status = http.StatusNotFound
		}
		writeError(w, status, err.Error())
		return
	}
	s.bump()
	writeJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("id")})
}

func (s *Server) handleJoinToken(w http.ResponseWriter, r *http.Request) {
	var in nodeapi.JoinTokenRequest
	if !readJSON(w, r, &in) {
		return
	}
	tok, agentID, err := s.NewJoinToken(r.Context(), time.Duration(in.TTL))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, nodeapi.JoinTokenResponse{Token: tok.Token, AgentID: agentID.String(), ExpiresAt: tok.ExpiresAt.UTC().Format(time.RFC3339)})
}

// NewJoinToken creates a one-time join token valid for ttl (the server's
// default when ttl <= 0) and returns it with the SPIFFE ID the agent that
// uses it will have.
func (s *Server) NewJoinToken(ctx context.Context, ttl time.Duration) (identity.JoinToken, spiffeid.ID, error) {
	if ttl <= 0 {
		ttl = s.cfg.JoinTokenTTL
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return identity.JoinToken{}, spiffeid.ID{}, err
	}
	tok := identity.JoinToken{Token: hex.EncodeToString(raw), ExpiresAt: s.cfg.Clock().Add(ttl)}
	if err := s.store.CreateJoinToken(ctx, tok); err != nil {
		return identity.JoinToken{}, spiffeid.ID{}, err
	}
	agentID, err := identity.AgentID(s.cfg.TrustDomain, tok.Token)
	return tok, agentID, err
}

// handleBundle returns the trust bundle: the SPIFFE bundle document, or
// with ?format=pem the X.509 authorities as PEM (for openssl and curl).
func (s *Server) handleBundle(w http.ResponseWriter, r *http.Request) {
	b := s.ca.Bundle()
	if r.URL.Query().Get("format") == "pem" {
		w.Header().Set("Content-Type", "application/x-pem-file")
		for _, c := range b.X509Authorities() {
			pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		return
	}
	data, err := b.Marshal()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

func (s *Server) handleAgents(w http.ResponseWriter, r *http.Request) {
	agents, err := s.store.ListAgents(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []nodeapi.Agent{}
	for _, a := range agents {
		wa := nodeapi.Agent{ID: a.ID.String(), AttestedAt: a.AttestedAt.UTC().Format(time.RFC3339), ExpiresAt: a.ExpiresAt.UTC().Format(time.RFC3339)}
		for _, sel := range a.Selectors {
			wa.Selectors = append(wa.Selectors, sel.String())
		}
		out = append(out, wa)
	}
	writeJSON(w, http.StatusOK, out)
}

// healthHandler serves /live (the process runs) and /ready (the datastore
// answers and the CA has an active authority).
func (s *Server) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "live"})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.store.EntriesRevision(r.Context()); err != nil {
			writeError(w, http.StatusServiceUnavailable, "datastore: "+err.Error())
			return
		}
		if len(s.ca.X509Authorities()) == 0 {
			writeError(w, http.StatusServiceUnavailable, "no CA authority")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}
