package jwtauth

// status is one of Envoy's JWT verification outcomes (source/common/jwt/
// status.h). Only the ones a sidecar configured by istiod can produce are
// listed; their strings are Envoy's, byte for byte, because they are what a
// client sees as the body of the 401 or 403.
type status uint8

const (
	statusOK status = iota
	statusMissed
	statusNotYetValid
	statusExpired
	statusBadFormat
	statusHeaderBadBase64
	statusHeaderBadJSON
	statusHeaderBadAlg
	statusHeaderNotImplementedAlg
	statusHeaderBadKid
	statusPayloadBadBase64
	statusPayloadBadJSON
	statusIssNotString
	statusSubNotString
	statusIatNotInteger
	statusIatOutOfRange
	statusNbfNotInteger
	statusNbfOutOfRange
	statusExpNotInteger
	statusExpOutOfRange
	statusJtiNotString
	statusAudNotString
	statusSignatureBadBase64
	statusUnknownIssuer
	statusAudienceNotAllowed
	statusVerificationFail
	statusEd25519WrongLength
	statusJwksNoValidKeys
	statusJwksKidAlgMismatch
)

var statusText = [...]string{
	statusOK:                      "OK",
	statusMissed:                  "Jwt is missing",
	statusNotYetValid:             "Jwt not yet valid",
	statusExpired:                 "Jwt is expired",
	statusBadFormat:               "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
	statusHeaderBadBase64:         "Jwt header is an invalid Base64url encoded",
	statusHeaderBadJSON:           "Jwt header is an invalid JSON",
	statusHeaderBadAlg:            "Jwt header [alg] field is required and must be a string",
	statusHeaderNotImplementedAlg: "Jwt header [alg] is not supported",
	statusHeaderBadKid:            "Jwt header [kid] field is not a string",
	statusPayloadBadBase64:        "Jwt payload is an invalid Base64url encoded",
	statusPayloadBadJSON:          "Jwt payload is an invalid JSON",
	statusIssNotString:            "Jwt payload [iss] field is not a string",
	statusSubNotString:            "Jwt payload [sub] field is not a string",
	statusIatNotInteger:           "Jwt payload [iat] field is not an integer",
	statusIatOutOfRange:           "Jwt payload [iat] field is not a positive 64 bit integer",
	statusNbfNotInteger:           "Jwt payload [nbf] field is not an integer",
	statusNbfOutOfRange:           "Jwt payload [nbf] field is not a positive 64 bit integer",
	statusExpNotInteger:           "Jwt payload [exp] field is not an integer",
	statusExpOutOfRange:           "Jwt payload [exp] field is not a positive 64 bit integer",
	statusJtiNotString:            "Jwt payload [jti] field is not a string",
	statusAudNotString:            "Jwt payload [aud] field is not a string or string list",
	statusSignatureBadBase64:      "Jwt signature is an invalid Base64url encoded",
	statusUnknownIssuer:           "Jwt issuer is not configured",
	statusAudienceNotAllowed:      "Audiences in Jwt are not allowed",
	statusVerificationFail:        "Jwt verification fails",
	statusEd25519WrongLength:      "Jwt ED25519 signature is wrong length",
	statusJwksNoValidKeys:         "Jwks doesn't have any valid public key",
	statusJwksKidAlgMismatch:      "Jwks doesn't have key to match kid or alg from Jwt",
}

func (s status) String() string { return statusText[s] }

// httpStatus is the response code Envoy's jwt_authn filter sends for a
// final status: 403 only for an audience mismatch (envoyproxy/envoy#7679),
// 401 for every other failure.
func (s status) httpStatus() int {
	switch s {
	case statusOK:
		return 0
	case statusAudienceNotAllowed:
		return 403
	default:
		return 401
	}
}
