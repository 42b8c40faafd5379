// Package jwtauth authenticates a request's JWT the way an Istio sidecar
// does: istiod turns the RequestAuthentications that apply to a workload
// into an Envoy jwt_authn filter, and this package reproduces that filter's
// verdict, status string and accepted payload.
//
// The model, in brief:
//
//   - every jwtRule of every applicable RequestAuthentication becomes one
//     provider, stable-sorted by issuer; rules are never merged, so two
//     rules with the same issuer are two providers whose keys form a union;
//   - a request passes if some provider finds tokens at its own locations
//     and accepts every one of them, or if no provider finds any token;
//     otherwise it is rejected with the status string Envoy would pick;
//   - keys come from istiod, which fetches them (or finds them by OIDC
//     discovery) and, when it cannot, fails closed with a key nobody can
//     sign for: tokens for that rule are rejected, token-less requests pass.
//
// Sources: istio/istio pilot/pkg/security/authn/policy_applier.go and
// pilot/pkg/model/jwks_resolver.go; envoyproxy/envoy
// source/extensions/filters/http/jwt_authn (extractor, verifier,
// authenticator, filter) and source/common/jwt (jwt, jwks, verify,
// check_audience, status).
package jwtauth
