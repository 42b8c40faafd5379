// Package validation decides which Istio security and traffic resources the
// cluster would refuse, and says why in istiod's own words.
//
// Palisade must accept exactly the configuration a real mesh accepts: a
// policy that istiod would reject never takes effect there, so evaluating it
// here would report protection that does not exist. Two layers stand between
// `kubectl apply` and the mesh, and this package reproduces both:
//
//   - The Kubernetes API server checks the CustomResourceDefinition schema
//     published by istio/api (kubernetes/customresourcedefinitions.gen.yaml):
//     maxItems, maxLength, patterns and the x-kubernetes-validations (CEL)
//     rules. These run before any webhook, so a violation rejects the object
//     even where istiod would have let it through (for example jwks together
//     with jwksUri). CEL findings carry the rule's message; structural ones
//     carry the API server's wording ("Too many: 513: must have at most 512
//     items") without its field prefix, which is in Problem.Path instead.
//   - istiod's validating admission webhook runs the kind's validator from
//     istio/istio pkg/config/validation/validation.go (validateMetadata,
//     ValidateAuthorizationPolicy, ValidateRequestAuthentication,
//     ValidatePeerAuthentication, ValidateDestinationRule and their helpers),
//     pkg/config/validation/agent/validation.go (ValidateDuration,
//     ValidateTLS, ValidateWildcardDomain, the locality checks) and
//     pkg/config/security/security.go (ValidateAttribute, CheckValidPathTemplate,
//     CheckServiceAccount and friends). Inline JWKS are parsed with the rules
//     of lestrrat-go/jwx v1, the parser istiod uses (see jwks.go). Checks
//     run in istiod's order and
//     messages are istiod's text; only the multierror wrapper and the
//     "invalid policy <name>.<namespace>:" prefix are dropped, and an error
//     that istiod nests (several bad IPs in one `when` value list) becomes one
//     Problem per inner error, each with the outer prefix.
//
// Both layers are reported together, schema findings first, so a user sees
// everything wrong at once; either kind of error means the object is
// rejected. Like istiod, a failed metadata check (annotations) stops the
// webhook layer: the kind's own validator never runs in that case.
//
// The spec arrives already decoded by protojson, which, like istiod's jsonpb,
// turns an empty list into nil. Consequences that follow istiod exactly:
// `from: []` is the same as no `from`, and the "must not be empty" checks on
// from/to fire only for callers that build specs in Go. Where protojson hides
// a distinction the schema makes (a string field that is absent versus
// empty), the package assumes the field was absent.
package validation
