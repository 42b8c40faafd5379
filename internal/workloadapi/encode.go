package workloadapi

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/palisade-security/palisade/internal/identity"
)

// The encodings below follow workloadapi.proto and the X509-SVID and
// JWT-SVID specs: certificates and bundles as DER (a bundle or chain is the
// certificates' DER concatenated, not PEM), private keys as unencrypted
// PKCS#8 DER, JWT bundles as RFC 7517 JWK Sets.

// x509SVIDResponse encodes the caller's SVIDs, each with the bundle of its
// own trust domain, plus the federated bundles.
func (h *handler) x509SVIDResponse(c *caller, svids []*identity.SVID) (*workload.X509SVIDResponse, error) {
	own := h.cache.X509Bundle()
	if own == nil {
		return nil, status.Error(codes.Unavailable, "trust bundle not available yet")
	}
	ownDER := concatDER(own.X509Authorities())
	resp := &workload.X509SVIDResponse{
		Svids:            make([]*workload.X509SVID, 0, len(svids)),
		FederatedBundles: make(map[string][]byte),
	}
	for _, fb := range h.federated() {
		if fb == nil || fb.TrustDomain() == own.TrustDomain() || len(fb.X509Authorities()) == 0 {
			continue
		}
		resp.FederatedBundles[fb.TrustDomain().IDString()] = concatDER(fb.X509Authorities())
	}
	for _, s := range svids {
		key, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
		if err != nil {
			// The error names the key type only, never key material.
			c.log.Error("cannot encode X.509-SVID private key as PKCS#8", "spiffe_id", s.ID.String(), "error", err)
			return nil, status.Errorf(codes.Unavailable, "could not serialize response: private key of %s: %v", s.ID, err)
		}
		bundle := ownDER
		if td := s.ID.TrustDomain(); td != own.TrustDomain() {
			// The bundle field is the bundle of the SVID's own trust
			// domain (go-spiffe keys it by the SVID's trust domain).
			if b, ok := resp.FederatedBundles[td.IDString()]; ok {
				bundle = b
			}
		}
		resp.Svids = append(resp.Svids, &workload.X509SVID{
			SpiffeId:    s.ID.String(),
			X509Svid:    concatDER(s.Certificates),
			X509SvidKey: key,
			Bundle:      bundle,
			Hint:        s.Hint,
		})
	}
	return resp, nil
}

// x509BundlesResponse encodes the X.509 bundles, keyed by trust domain ID
// (spiffe://td); the own trust domain's is mandatory (§5.2.2).
func (h *handler) x509BundlesResponse() (*workload.X509BundlesResponse, error) {
	own := h.cache.X509Bundle()
	if own == nil {
		return nil, status.Error(codes.Unavailable, "trust bundle not available yet")
	}
	bundles := map[string][]byte{own.TrustDomain().IDString(): concatDER(own.X509Authorities())}
	for _, fb := range h.federated() {
		if fb == nil || fb.TrustDomain() == own.TrustDomain() || len(fb.X509Authorities()) == 0 {
			continue
		}
		bundles[fb.TrustDomain().IDString()] = concatDER(fb.X509Authorities())
	}
	return &workload.X509BundlesResponse{Bundles: bundles}, nil
}

// jwtBundlesResponse encodes the JWT bundles, keyed by trust domain ID;
// the own trust domain's is mandatory (§6.2.2).
func (h *handler) jwtBundlesResponse() (*workload.JWTBundlesResponse, error) {
	own := h.cache.JWTBundle()
	if own == nil {
		return nil, status.Error(codes.Unavailable, "JWT bundle not available yet")
	}
	doc, err := marshalJWKS(own)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "could not serialize response: %v", err)
	}
	bundles := map[string][]byte{own.TrustDomain().IDString(): doc}
	for _, fb := range h.federated() {
		if fb == nil || fb.TrustDomain() == own.TrustDomain() || len(fb.JWTAuthorities()) == 0 {
			continue
		}
		doc, err := marshalJWKS(fb.JWTBundle())
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "could not serialize response: %v", err)
		}
		bundles[fb.TrustDomain().IDString()] = doc
	}
	return &workload.JWTBundlesResponse{Bundles: bundles}, nil
}

// marshalJWKS encodes a JWT bundle as a JWK Set holding only JWT-SVID
// signing keys: each with use "jwt-svid" and its kid, which JWT-SVID
// validators need to pick the key (JWT-SVID spec §6, Workload API §6.2.2).
// Keys are sorted by kid so that an unchanged bundle encodes to the same
// bytes and no spurious stream update is sent.
func marshalJWKS(b *jwtbundle.Bundle) ([]byte, error) {
	auth := b.JWTAuthorities()
	kids := make([]string, 0, len(auth))
	for kid := range auth {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(kids))}
	for _, kid := range kids {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: auth[kid], KeyID: kid, Use: "jwt-svid"})
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("JWKS of %s: %w", b.TrustDomain(), err)
	}
	return doc, nil
}

// validateJWTSVID checks token with go-spiffe against the JWT bundles this
// agent knows, the token's trust domain choosing the bundle (§6.3).
func (h *handler) validateJWTSVID(token, audience string) (*workload.ValidateJWTSVIDResponse, error) {
	set := jwtbundle.NewSet()
	for _, fb := range h.federated() {
		if fb != nil {
			set.Add(fb.JWTBundle())
		}
	}
	// Added last so that the own trust domain's bundle wins over a
	// federated bundle claiming the same name.
	if own := h.cache.JWTBundle(); own != nil {
		set.Add(own)
	}
	svid, err := jwtsvid.ParseAndValidate(token, set, []string{audience})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	claims := svid.Claims
	// RFC 7519 lets a single audience be a bare string; SPIRE always
	// returns an array, and clients written against it expect one.
	if aud, ok := claims["aud"].(string); ok {
		claims["aud"] = []any{aud}
	}
	// Round-trip through JSON: the claims came from JSON, and protojson
	// maps every JSON value to structpb, whatever Go types the JWT library
	// decoded them into.
	raw, err := json.Marshal(claims)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "JWT-SVID claims: %v", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(raw, s); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "JWT-SVID claims: %v", err)
	}
	return &workload.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: s}, nil
}

func concatDER(certs []*x509.Certificate) []byte {
	n := 0
	for _, c := range certs {
		n += len(c.Raw)
	}
	out := make([]byte, 0, n)
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}
