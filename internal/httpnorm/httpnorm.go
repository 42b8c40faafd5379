// Package httpnorm reproduces what an Istio sidecar's Envoy does to a
// request's :path, method and header names before the RBAC filter sees them,
// so that Palisade's authorization verdicts are computed on the same bytes.
//
// RBAC in Envoy never sees the path a client sent: the HTTP connection
// manager first rejects some requests outright and rewrites the rest. A
// policy engine that matched AuthorizationPolicy paths against the raw
// request line would allow "/public/%2e%2e/private" where Istio denies it,
// so this package models that pipeline:
//
//   - Envoy source/common/http/conn_manager_impl.cc: an empty :path is answered
//     with 404 (missing_path_rejected) and a :path not starting with '/' with
//     404 (absolute_path_rejected).
//   - Envoy source/common/http/conn_manager_utility.cc (maybeNormalizePath): a
//     '#fragment' is stripped, because Istio's bootstrap (pkg/bootstrap/config.go)
//     sets envoy.reloadable_features.http_reject_path_with_fragment to false;
//     then escaped slashes are handled, the path is canonicalized, and slashes
//     are merged, each according to the HTTP connection manager settings that
//     Istio derives from meshConfig.pathNormalization
//     (pilot/pkg/networking/core/listener_builder.go).
//   - Envoy source/common/http/path_utility.cc (canonicalPath): the
//     strip_dotdot_segments_with_parameters rule, then googleurl's
//     CanonicalizePath (url/url_canon_path.cc, the character-table version that
//     decodes unreserved escapes and fails on NUL).
//   - Envoy source/common/http/http1/balsa_parser.cc: the HTTP/1 codec only
//     accepts a fixed list of upper-case methods and RFC 7230 token header
//     names; anything else is a 400 before the HTTP connection manager runs.
//
// The implementation is written from those behaviours and their tests
// (Envoy test/common/http/path_utility_test.cc, googleurl
// url_canon_unittest.cc, Istio tests/integration/security/normalization_test.go
// and TestAuthz_PathNormalization); it is not a translation of upstream code.
//
// Paths that need no rewriting are returned as sub-strings of the input, so
// the common case does not allocate.
package httpnorm

import (
	"strconv"
	"strings"
)

// Mode is meshConfig.pathNormalization.normalization.
//
// Each mode corresponds to the HTTP connection manager fields Istio sets
// (listener_builder.go): normalize_path, merge_slashes and
// path_with_escaped_slashes_action.
type Mode uint8

const (
	// Base is Istio's DEFAULT and BASE: normalize_path=true,
	// merge_slashes=false, escaped slashes KEEP_UNCHANGED.
	Base Mode = iota
	// None is NONE: normalize_path=false. Only the 404 checks and the
	// fragment stripping, which Envoy does regardless, still apply.
	None
	// MergeSlashes is MERGE_SLASHES: Base plus merge_slashes=true.
	MergeSlashes
	// DecodeAndMergeSlashes is DECODE_AND_MERGE_SLASHES: MergeSlashes plus
	// path_with_escaped_slashes_action=UNESCAPE_AND_FORWARD.
	DecodeAndMergeSlashes
)

// ModeFromMesh maps the istio.io/api/mesh/v1alpha1
// MeshConfig_ProxyPathNormalization_NormalizationType enum value (pass it as
// int32: DEFAULT=0, NONE=1, BASE=2, MERGE_SLASHES=3,
// DECODE_AND_MERGE_SLASHES=4) to a Mode.
//
// An out-of-range value maps to None: Istio's switch in listener_builder.go
// matches no case, leaves normalize_path unset, and Envoy's default for an
// unset normalize_path (runtime http_connection_manager.normalize_path, 0%)
// is not to normalize.
func ModeFromMesh(v int32) Mode {
	switch v {
	case 0, 2:
		return Base
	case 3:
		return MergeSlashes
	case 4:
		return DecodeAndMergeSlashes
	default:
		return None
	}
}

// Error is a request Envoy rejects before authorization, with the HTTP status
// it answers (400 or 404) and Envoy's response-code detail (e.g.
// "path_normalization_failed", "missing_path_rejected",
// "absolute_path_rejected").
//
// Such a request never reaches RBAC, so neither ALLOW nor DENY policies
// apply to it; callers report the status instead of a policy verdict.
type Error struct {
	// Status is the HTTP status Envoy answers with.
	Status int
	// Detail is Envoy's %RESPONSE_CODE_DETAILS% for the local reply.
	Detail string
	// Msg says, for humans, what in the request caused the rejection.
	Msg string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return "httpnorm: " + strconv.Itoa(e.Status) + " " + e.Detail + ": " + e.Msg
}

// Response-code details as Envoy spells them
// (envoy/stream_info/stream_info.h ResponseCodeDetailValues and the HTTP/1
// codec's Http1ResponseCodeDetailValues).
const (
	detailMissingPath       = "missing_path_rejected"
	detailAbsolutePath      = "absolute_path_rejected"
	detailNormalizationFail = "path_normalization_failed"
	detailCodecError        = "http1.codec_error"
)

// Path normalizes a request's :path as the sidecar does before RBAC,
// returning the path RBAC compares (normalized, query and fragment removed)
// and the full normalized :path (with the query, fragment stripped as Istio's
// bootstrap configures) that request.headers[:path] sees.
//
// The steps run in Envoy's order: NUL, CR and LF are rejected first because
// no codec lets them into a header (400, http1.codec_error); then missing path
// (404), path not starting with '/' (404), fragment stripped, escaped slashes
// decoded when m is DecodeAndMergeSlashes, canonicalization (400 on %00),
// slash merging when m merges. Mode values other than the four constants
// behave as Base.
func Path(raw string, m Mode) (path, full string, err *Error) {
	// Envoy test/common/http/path_utility_test.cc notes that NUL, CR and LF
	// "should be excluded by http parser": the HTTP/1 parser and the HTTP/2
	// header validation both refuse them, so such a request is rejected
	// before the connection manager's path checks.
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c == 0 || c == '\r' || c == '\n' {
			return "", "", &Error{Status: 400, Detail: detailCodecError,
				Msg: "NUL, CR or LF in :path is rejected by the codec"}
		}
	}
	if raw == "" {
		return "", "", &Error{Status: 404, Detail: detailMissingPath, Msg: "empty :path"}
	}
	if raw[0] != '/' {
		return "", "", &Error{Status: 404, Detail: detailAbsolutePath,
			Msg: "only relative paths starting with '/' are served"}
	}
	// Istio turns http_reject_path_with_fragment off; Envoy then cuts the
	// :path at the first '#', wherever it is (even inside the query).
	full = raw
	if i := strings.IndexByte(full, '#'); i >= 0 {
		full = full[:i]
	}
	if m == None {
		return beforeQuery(full), full, nil
	}

	p, query := full, ""
	if i := strings.IndexByte(full, '?'); i >= 0 {
		p, query = full[:i], full[i:]
	}
	merge := m == MergeSlashes || m == DecodeAndMergeSlashes
	if isCanonical(p, merge) {
		return p, full, nil
	}

	in := p
	if m == DecodeAndMergeSlashes {
		in = unescapeSlashes(p)
	}
	c, ok := canonicalPath(in)
	if !ok {
		return "", "", &Error{Status: 400, Detail: detailNormalizationFail,
			Msg: "path contains NUL (%00), which the canonicalizer rejects"}
	}
	if merge {
		c = mergeSlashes(c)
	}
	if c == p {
		// Nothing changed (e.g. "/%2F"): hand back the caller's string.
		return full[:len(p)], full, nil
	}
	if query == "" {
		return c, c, nil
	}
	full = c + query
	return full[:len(c)], full, nil
}

// beforeQuery is Envoy's PathUtil::removeQueryAndFragment: RBAC matches the
// path up to the first '?' or '#'.
func beforeQuery(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i]
	}
	return s
}

// Method reports whether Envoy's HTTP/1 codec accepts the method (uppercase
// known methods; lowercase -> 400).
//
// Envoy's Balsa parser (balsa_parser.cc isMethodValid) compares the request
// method against a fixed upper-case list; any other token, including "get",
// is a codec error answered with 400 http1.codec_error, so RBAC never sees
// it. (HTTP/2 only checks that :method is a token; RBAC's :method matching is
// case-sensitive there, so a lower-case method still fails upper-case rules.)
func Method(m string) *Error {
	switch m {
	case "ACL", "BIND", "CHECKOUT", "CONNECT", "COPY", "DELETE", "GET",
		"HEAD", "LINK", "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL",
		"MOVE", "MSEARCH", "NOTIFY", "OPTIONS", "PATCH", "POST", "PROPFIND",
		"PROPPATCH", "PURGE", "PUT", "REBIND", "REPORT", "SEARCH", "SOURCE",
		"SUBSCRIBE", "TRACE", "UNBIND", "UNLINK", "UNLOCK", "UNSUBSCRIBE":
		return nil
	}
	return &Error{Status: 400, Detail: detailCodecError,
		Msg: "method " + strconv.Quote(m) + " is not one the HTTP/1 codec accepts"}
}

// HeaderName reports whether a header name is acceptable (RFC 7230 token;
// whitespace -> 400).
//
// The HTTP/1 codec fails the request (400 http1.codec_error) on a header
// name containing anything outside RFC 7230 tchar, whitespace included, as
// Istio's normalization doc states. The request pseudo-headers an RBAC rule
// may name (:method, :path, :authority, :scheme, :protocol) are accepted
// because Envoy's header map carries them for every protocol.
func HeaderName(n string) *Error {
	switch n {
	case ":method", ":path", ":authority", ":scheme", ":protocol":
		return nil
	}
	if n == "" {
		return &Error{Status: 400, Detail: detailCodecError, Msg: "empty header name"}
	}
	for i := 0; i < len(n); i++ {
		if !isTchar(n[i]) {
			return &Error{Status: 400, Detail: detailCodecError,
				Msg: "header name " + strconv.Quote(n) + " is not an RFC 7230 token"}
		}
	}
	return nil
}

// isTchar reports whether c is an RFC 7230 §3.2.6 tchar.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
