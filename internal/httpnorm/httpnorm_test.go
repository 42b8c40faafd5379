package httpnorm

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// all is a test-only Mode meaning "every one of the four modes".
const all Mode = 255

var modes = []Mode{Base, None, MergeSlashes, DecodeAndMergeSlashes}

func modeName(m Mode) string {
	switch m {
	case Base:
		return "Base"
	case None:
		return "None"
	case MergeSlashes:
		return "MergeSlashes"
	case DecodeAndMergeSlashes:
		return "DecodeAndMergeSlashes"
	case all:
		return "all"
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// pathCase is one request :path and what the sidecar makes of it.
type pathCase struct {
	m    Mode
	in   string
	full string // normalized :path (query kept); empty when status != 0
	rbac string // path RBAC compares; empty means "same as full"
	// status and detail describe a rejection; status 0 means accepted.
	status int
	detail string
}

const (
	missing = "missing_path_rejected"
	absPath = "absolute_path_rejected"
	normErr = "path_normalization_failed"
	codec   = "http1.codec_error"
)

var pathCases = []pathCase{
	// ----- Checks before normalization, every mode -----
	{m: all, in: "", status: 404, detail: missing},                                        // Envoy conn_manager_impl.cc decodeHeaders: empty :path → 404 MissingPath
	{m: all, in: "a/b", status: 404, detail: absPath},                                     // Envoy conn_manager_impl.cc: :path not starting with '/' → 404 AbsolutePath
	{m: all, in: "http://example.com/a", status: 404, detail: absPath},                    // Envoy conn_manager_impl.cc: absolute-form :path (not rewritten by a codec) → 404 AbsolutePath
	{m: all, in: "*", status: 404, detail: absPath},                                       // Envoy conn_manager_impl.cc: "OPTIONS *" has :path "*", not '/' → 404 AbsolutePath
	{m: all, in: "#frag", status: 404, detail: absPath},                                   // Envoy conn_manager_impl.cc: the '/' check runs before maybeNormalizePath strips '#'
	{m: all, in: "?a=b", status: 404, detail: absPath},                                    // Envoy conn_manager_impl.cc: a bare query does not start with '/' → 404
	{m: all, in: "/a\x00b", status: 400, detail: codec},                                   // Envoy path_utility_test.cc: literal '\0' "should be excluded by http parser" → codec 400
	{m: all, in: "/../c\r\n", status: 400, detail: codec},                                 // Envoy path_utility_test.cc: '\n' '\r' "should be excluded by http parser" → codec 400
	{m: all, in: "/a\nb", status: 400, detail: codec},                                     // Envoy path_utility_test.cc: LF is excluded by the http parser
	{m: all, in: "/a#\x00", status: 400, detail: codec},                                   // Envoy http1 codec sees the whole request line, fragment included, before the HCM strips it
	{m: all, in: "/", full: "/"},                                                          // Istio normalization_test.go TestNormalization (every mode): / → /
	{m: all, in: "/app/", full: "/app/"},                                                  // Istio normalization_test.go TestNormalization (every mode): /app/ → /app/
	{m: all, in: "/app", full: "/app"},                                                    // Istio normalization_test.go TestNormalization (every mode): /app → /app
	{m: all, in: "/api/v1/users?id=3", full: "/api/v1/users?id=3", rbac: "/api/v1/users"}, // Envoy path_utility.cc removeQueryAndFragment: RBAC path stops at '?'
	{m: all, in: "/A/B/C", full: "/A/B/C"},                                                // Envoy path_utility_test.cc NormalizeCasePath: /A/B/C not lower-cased
	{m: all, in: "/Admin", full: "/Admin"},                                                // Istio normalization_test.go NotNormalized: /Admin unchanged
	{m: all, in: "/ADMIN", full: "/ADMIN"},                                                // Istio normalization_test.go NotNormalized: /ADMIN unchanged

	// ----- Fragment: Istio's bootstrap disables the reject, Envoy strips -----
	{m: all, in: "/app#foo", full: "/app"},                                            // Istio normalization_test.go TestNormalization (None, Base, MergeSlashes, DecodeAndMergeSlashes): /app#foo → /app
	{m: all, in: "/abc#", full: "/abc"},                                               // Envoy path_utility_test.cc RemoveQueryAndFragment: /abc# → /abc; conn_manager_utility.cc strips from '#'
	{m: all, in: "/abc##", full: "/abc"},                                              // Envoy path_utility_test.cc RemoveQueryAndFragment: /abc## → /abc
	{m: all, in: "/abc#fragment?param=value", full: "/abc"},                           // Envoy path_utility_test.cc RemoveQueryAndFragment: /abc#fragment?param=value → /abc
	{m: all, in: "/abc#?", full: "/abc"},                                              // Envoy path_utility_test.cc RemoveQueryAndFragment: /abc#? → /abc
	{m: all, in: "/abc?#fragment", full: "/abc?", rbac: "/abc"},                       // Envoy path_utility_test.cc RemoveQueryAndFragment: /abc?#fragment; maybeNormalizePath find('#') includes the query
	{m: all, in: "/abc?param=value#fragment", full: "/abc?param=value", rbac: "/abc"}, // Envoy path_utility_test.cc RemoveQueryAndFragment: /abc?param=value#fragment → /abc
	{m: None, in: "/a/../b#x/../../c", full: "/a/../b"},                               // Envoy conn_manager_utility.cc maybeNormalizePath: fragment stripped even when normalize_path is false
	{m: Base, in: "/public/..#/private", full: "/"},                                   // Envoy conn_manager_utility.cc: '#' is cut before canonicalPath runs
	{m: Base, in: "/a/%2e%2e#", full: "/"},                                            // Envoy conn_manager_utility.cc: fragment cut, then %2e%2e resolved by canonicalPath
	{m: DecodeAndMergeSlashes, in: "/a#%2F..%2Fb", full: "/a"},                        // Envoy conn_manager_utility.cc: fragment stripped before unescapeSlashes

	// ----- RBAC path: query removed, query never normalized -----
	{m: all, in: "/abc?", full: "/abc?", rbac: "/abc"},                                                                   // Envoy path_utility_test.cc RemoveQueryAndFragment: /abc? → /abc
	{m: all, in: "/abc??param=value", full: "/abc??param=value", rbac: "/abc"},                                           // Envoy path_utility_test.cc RemoveQueryAndFragment: /abc??param=value → /abc
	{m: all, in: "/abc?param=value1&param=value2", full: "/abc?param=value1&param=value2", rbac: "/abc"},                 // Envoy path_utility_test.cc RemoveQueryAndFragment
	{m: all, in: "/allow/admin?param=value", full: "/allow/admin?param=value", rbac: "/allow/admin"},                     // Istio TestAuthz_PathPrecedence: /allow/admin?param=value hits the exact /allow/admin rule
	{m: Base, in: "/a/../b?x=/../y%41", full: "/b?x=/../y%41", rbac: "/b"},                                               // Envoy path_utility.cc canonicalPath: query re-appended verbatim
	{m: Base, in: "/a?b%2e%2e/../\\", full: "/a?b%2e%2e/../\\", rbac: "/a"},                                              // Envoy path_utility.cc canonicalPath: only the part before '?' is canonicalized
	{m: MergeSlashes, in: "/a//b?a=///c", full: "/a/b?a=///c", rbac: "/a/b"},                                             // Envoy path_utility_test.cc MergeSlashes: slashes in the query are ignored
	{m: DecodeAndMergeSlashes, in: "/%2fa%5Cb%2fc%5c?%2fabcd%5C%%2f%", full: "/a/b/c/?%2fabcd%5C%%2f%", rbac: "/a/b/c/"}, // Envoy path_utility_test.cc UnescapeSlashes: query is untouched

	// ----- Envoy path_utility_test.cc NormalizeValidPaths / InvalidPaths / NormalizeCasePath -----
	{m: Base, in: "/xyz", full: "/xyz"},                                                    // Envoy path_utility_test.cc AlreadyNormalPaths: /xyz
	{m: Base, in: "/x/y/z", full: "/x/y/z"},                                                // Envoy path_utility_test.cc AlreadyNormalPaths: /x/y/z
	{m: Base, in: "/a/b/../c", full: "/a/c"},                                               // Envoy path_utility_test.cc NormalizeValidPaths: parent dir
	{m: Base, in: "/a/b/./c", full: "/a/b/c"},                                              // Envoy path_utility_test.cc NormalizeValidPaths: current dir
	{m: Base, in: "/a/b/../../../../c", full: "/c"},                                        // Envoy path_utility_test.cc NormalizeValidPaths: out number parent
	{m: Base, in: "/a/..\\c", full: "/c"},                                                  // Envoy path_utility_test.cc NormalizeValidPaths: "..\\" canonicalization
	{m: Base, in: "/%c0%af", full: "/%c0%af"},                                              // Envoy path_utility_test.cc NormalizeValidPaths: 2 bytes unicode reserved characters
	{m: Base, in: "/%5c%25", full: "/%5c%25"},                                              // Envoy path_utility_test.cc NormalizeValidPaths: reserved characters
	{m: Base, in: "/a/b/%2E%2E/c", full: "/a/c"},                                           // Envoy path_utility_test.cc NormalizeValidPaths/NormalizeCasePath: %2E escape
	{m: Base, in: "/a/b/%2e%2e/c", full: "/a/c"},                                           // Envoy path_utility_test.cc NormalizeCasePath: %2e can be normalized to .
	{m: Base, in: "/a/%2F%2f/c", full: "/a/%2F%2f/c"},                                      // Envoy path_utility_test.cc NormalizeCasePath: %2F is not normalized to %2f
	{m: Base, in: "/xyz/..;foo=bar/abc", full: "/abc"},                                     // Envoy path_utility_test.cc NormalizeValidPaths: dotdot in the middle with parameters
	{m: Base, in: "/..;foo=bar/abc", full: "/abc"},                                         // Envoy path_utility_test.cc NormalizeValidPaths: starting dotdot with parameters
	{m: Base, in: "/xyz/..;foo=bar", full: "/"},                                            // Envoy path_utility_test.cc NormalizeValidPaths: ending dotdot with parameters
	{m: Base, in: "/xyz/.;foo=bar/abc", full: "/xyz/abc"},                                  // Envoy path_utility_test.cc NormalizeValidPaths: dot in the middle with parameters
	{m: Base, in: "/.;foo=bar/abc", full: "/abc"},                                          // Envoy path_utility_test.cc NormalizeValidPaths: starting dot with parameters
	{m: Base, in: "/xyz/.;foo=bar", full: "/xyz/"},                                         // Envoy path_utility_test.cc NormalizeValidPaths: ending dot with parameters
	{m: Base, in: "/xyz/..;foo=bar/.;v1=2,v2=3/abc", full: "/abc"},                         // Envoy path_utility_test.cc NormalizeValidPaths: mixed dot segments with parameters
	{m: Base, in: "/..;foo=bar/abc/.;mmm", full: "/abc/"},                                  // Envoy path_utility_test.cc NormalizeValidPaths: mixed dot segments with parameters
	{m: Base, in: "/.;aaa/..;foo=bar/abc/.;mmm", full: "/abc/"},                            // Envoy path_utility_test.cc NormalizeValidPaths: mixed dot segments with parameters
	{m: Base, in: "/xyz/..;foo=bar/.;fff=zzz", full: "/"},                                  // Envoy path_utility_test.cc NormalizeValidPaths: mixed dot segments with parameters
	{m: Base, in: "/xyz/..;foo=bar/.;fff=zzz?blah=woops", full: "/?blah=woops", rbac: "/"}, // Envoy path_utility_test.cc NormalizeValidPaths: /xyz/..;foo=bar/.;fff=zzz?blah=woops → /?blah=woops
	{m: Base, in: "/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query", full: "/remain;blah-bluh?query", rbac: "/remain;blah-bluh"}, // Envoy path_utility_test.cc NormalizeValidPaths: parameters on ordinary segments kept
	{m: Base, in: "/xyz/..;", full: "/"},                                                        // Envoy path_utility_test.cc StripDotSegmentWithParameters: /xyz/..; → /xyz/..
	{m: Base, in: "/a/..;param1;param2/b", full: "/b"},                                          // Envoy path_utility_test.cc StripDotSegmentWithParameters: /a/..;param1;param2/b → /a/../b
	{m: Base, in: "/a/..;foo/b/..;bar/c", full: "/c"},                                           // Envoy path_utility_test.cc StripDotSegmentWithParameters: /a/..;foo/b/..;bar/c → /a/../b/../c
	{m: Base, in: "/xyz/..foo", full: "/xyz/..foo"},                                             // Envoy path_utility_test.cc StripDotSegmentWithParameters: /xyz/..foo untouched
	{m: Base, in: "/xyz/...;foo", full: "/xyz/...;foo"},                                         // Envoy path_utility_test.cc StripDotSegmentWithParameters: /xyz/...;foo untouched
	{m: Base, in: "/xyz/.foo", full: "/xyz/.foo"},                                               // Envoy path_utility_test.cc StripDotSegmentWithParameters: /xyz/.foo untouched
	{m: Base, in: "/xyz/remove/..;foo?param=/.;foo", full: "/xyz/?param=/.;foo", rbac: "/xyz/"}, // Envoy path_utility_test.cc StripDotSegmentWithParameters: query left alone
	{m: Base, in: "/xyz/.%00../abc", status: 400, detail: normErr},                              // Envoy path_utility_test.cc InvalidPaths: /xyz/.%00../abc
	{m: Base, in: "/xyz/%00.%00./abc", status: 400, detail: normErr},                            // Envoy path_utility_test.cc InvalidPaths: /xyz/%00.%00./abc
	{m: Base, in: "/xyz/AAAAA%%0000/abc", status: 400, detail: normErr},                         // Envoy path_utility_test.cc InvalidPaths: /xyz/AAAAA%%0000/abc
	{m: None, in: "/xyz/AAAAA%%0000/abc", full: "/xyz/AAAAA%%0000/abc"},                         // Istio listener_builder.go NONE: normalize_path=false, so canonicalPath (and its %00 check) never runs
	{m: MergeSlashes, in: "/a/%00", status: 400, detail: normErr},                               // Envoy conn_manager_utility.cc: canonicalPath failure → Reject before merge_slashes
	{m: None, in: "/xyz/..;foo=bar/abc", full: "/xyz/..;foo=bar/abc"},                           // Envoy strip_dotdot_segments_with_parameters release note: dot-segment parameters stripped "only if normalize_path is enabled"

	// The ";" rewrite is literal and splits on '/' only, before googleurl
	// decodes %2e and turns '\' into '/', so these survive as "..;x".
	{m: Base, in: "/a/%2e%2e;x/b", full: "/a/..;x/b"}, // Envoy path_utility.cc stripParametersFromDotSegments matches literal "..;" only; googleurl then decodes %2e
	{m: Base, in: "/a\\..;x/b", full: "/a/..;x/b"},    // Envoy path_utility.cc stripParametersFromDotSegments splits on '/' only; googleurl then maps '\' to '/'

	// ----- Istio normalization_test.go TestNormalization, mode None -----
	{m: None, in: "/app/../admin", full: "/app/../admin"},                                                 // Istio normalization_test.go None
	{m: None, in: "/app//", full: "/app//"},                                                               // Istio normalization_test.go None
	{m: None, in: "/app/%2f", full: "/app/%2f"},                                                           // Istio normalization_test.go None
	{m: None, in: "/app%2f/", full: "/app%2f/"},                                                           // Istio normalization_test.go None
	{m: None, in: "/xyz%30..//abc", full: "/xyz%30..//abc"},                                               // Istio normalization_test.go None
	{m: None, in: "/app/%2E./admin", full: "/app/%2E./admin"},                                             // Istio normalization_test.go None
	{m: None, in: `/app\admin`, full: `/app\admin`},                                                       // Istio normalization_test.go None
	{m: None, in: `/app/\/\/\admin`, full: `/app/\/\/\admin`},                                             // Istio normalization_test.go None
	{m: None, in: `/%2Fapp%5cadmin%5Cabc`, full: `/%2Fapp%5cadmin%5Cabc`},                                 // Istio normalization_test.go None
	{m: None, in: `/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, full: `/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`}, // Istio normalization_test.go None
	{m: None, in: `/app//../admin`, full: `/app//../admin`},                                               // Istio normalization_test.go None
	{m: None, in: `/app//../../admin`, full: `/app//../../admin`},                                         // Istio normalization_test.go None
	{m: None, in: "/a b\x7f", full: "/a b\x7f"},                                                           // Istio listener_builder.go NONE: no canonicalPath, so nothing is percent-encoded

	// ----- Istio normalization_test.go TestNormalization, mode Base -----
	{m: Base, in: "/app/../admin", full: "/admin"},                                                    // Istio normalization_test.go Base
	{m: Base, in: "/app//", full: "/app//"},                                                           // Istio normalization_test.go Base
	{m: Base, in: "/app/%2f", full: "/app/%2f"},                                                       // Istio normalization_test.go Base
	{m: Base, in: "/app%2f/", full: "/app%2f/"},                                                       // Istio normalization_test.go Base
	{m: Base, in: "/xyz%30..//abc", full: "/xyz0..//abc"},                                             // Istio normalization_test.go Base
	{m: Base, in: "/app/%2E./admin", full: "/admin"},                                                  // Istio normalization_test.go Base
	{m: Base, in: `/app\admin`, full: `/app/admin`},                                                   // Istio normalization_test.go Base
	{m: Base, in: `/app/\/\/\admin`, full: `/app//////admin`},                                         // Istio normalization_test.go Base
	{m: Base, in: `/%2Fapp%5cadmin%5Cabc`, full: `/%2Fapp%5cadmin%5Cabc`},                             // Istio normalization_test.go Base
	{m: Base, in: `/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, full: `/%5Capp%2f%5c%2F..%2fadmin%5c/abc`}, // Istio normalization_test.go Base
	{m: Base, in: `/app//../admin`, full: `/app/admin`},                                               // Istio normalization_test.go Base
	{m: Base, in: `/app//../../admin`, full: `/admin`},                                                // Istio normalization_test.go Base

	// ----- Istio normalization_test.go TestNormalization, mode MergeSlashes -----
	{m: MergeSlashes, in: "/app/../admin", full: "/admin"},                                                    // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: "/app//", full: "/app/"},                                                            // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: "/app/%2f", full: "/app/%2f"},                                                       // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: "/app%2f/", full: "/app%2f/"},                                                       // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: "/xyz%30..//abc", full: "/xyz0../abc"},                                              // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: "/app/%2E./admin", full: "/admin"},                                                  // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: `/app\admin`, full: `/app/admin`},                                                   // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: `/app/\/\/\admin`, full: `/app/admin`},                                              // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: `/%2Fapp%5cadmin%5Cabc`, full: `/%2Fapp%5cadmin%5Cabc`},                             // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: `/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, full: `/%5Capp%2f%5c%2F..%2fadmin%5c/abc`}, // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: `/app//../admin`, full: `/app/admin`},                                               // Istio normalization_test.go MergeSlashes
	{m: MergeSlashes, in: `/app//../../admin`, full: `/admin`},                                                // Istio normalization_test.go MergeSlashes

	// ----- Istio normalization_test.go TestNormalization, mode DecodeAndMergeSlashes -----
	{m: DecodeAndMergeSlashes, in: "/app/../admin", full: "/admin"},                                 // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: "/app//", full: "/app/"},                                         // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: "/app/%2f", full: "/app/"},                                       // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: "/app%2f/", full: "/app/"},                                       // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: "/xyz%30..//abc", full: "/xyz0../abc"},                           // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: "/app/%2E./admin", full: "/admin"},                               // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/app\admin`, full: `/app/admin`},                                // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/app/\/\/\admin`, full: `/app/admin`},                           // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/%2Fapp%5cadmin%5Cabc`, full: `/app/admin/abc`},                 // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, full: `/app/admin/abc`}, // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/app//../admin`, full: `/app/admin`},                            // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/app//../../admin`, full: `/admin`},                             // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/%c0%2e%c0%2e/admin`, full: `/%c0.%c0./admin`},                  // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/%c0%2fadmin`, full: `/%c0/admin`},                              // Istio normalization_test.go DecodeAndMergeSlashes
	{m: DecodeAndMergeSlashes, in: `/admin%00`, status: 400, detail: normErr},                       // Istio normalization_test.go Invalid: /admin%00 → 400

	// ----- Istio normalization_test.go TestNormalization, NotNormalized (DecodeAndMergeSlashes) -----
	{m: DecodeAndMergeSlashes, in: `/0x2e0x2e/admin`, full: `/0x2e0x2e/admin`},                         // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/0x2e0x2e0x2fadmin`, full: `/0x2e0x2e0x2fadmin`},                   // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/0x2e0x2e0x5cadmin`, full: `/0x2e0x2e0x5cadmin`},                   // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/0x2f0x2fadmin`, full: `/0x2f0x2fadmin`},                           // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/0x5c0x5cadmin`, full: `/0x5c0x5cadmin`},                           // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/%25c0%25ae%25c1%259cadmin`, full: `/%25c0%25ae%25c1%259cadmin`},   // Istio normalization_test.go NotNormalized: %25 is never decoded
	{m: DecodeAndMergeSlashes, in: `/%25c0%25ae%25c0%25ae/admin`, full: `/%25c0%25ae%25c0%25ae/admin`}, // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/%25c0%25afadmin`, full: `/%25c0%25afadmin`},                       // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/%25c1%259cadmin`, full: `/%25c1%259cadmin`},                       // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/%252e%252e/admin`, full: `/%252e%252e/admin`},                     // Istio normalization_test.go NotNormalized: no double decoding
	{m: DecodeAndMergeSlashes, in: `/%252e%252e%252fadmin`, full: `/%252e%252e%252fadmin`},             // Istio normalization_test.go NotNormalized: no double decoding
	{m: DecodeAndMergeSlashes, in: `/%c1%9cadmin`, full: `/%c1%9cadmin`},                               // Istio normalization_test.go NotNormalized: overlong UTF-8 kept
	{m: DecodeAndMergeSlashes, in: `/%c0%ae%c0%ae/admin`, full: `/%c0%ae%c0%ae/admin`},                 // Istio normalization_test.go NotNormalized: overlong UTF-8 dots kept
	{m: DecodeAndMergeSlashes, in: `/%c0%afadmin`, full: `/%c0%afadmin`},                               // Istio normalization_test.go NotNormalized: overlong UTF-8 slash kept
	{m: DecodeAndMergeSlashes, in: `/.../admin`, full: `/.../admin`},                                   // Istio normalization_test.go NotNormalized: "..." is a name
	{m: DecodeAndMergeSlashes, in: `/..../admin`, full: `/..../admin`},                                 // Istio normalization_test.go NotNormalized: "...." is a name
	{m: DecodeAndMergeSlashes, in: `/;/admin`, full: `/;/admin`},                                       // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/admin;a=b`, full: `/admin;a=b`},                                   // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/admin;a=b/xyz`, full: `/admin;a=b/xyz`},                           // Istio normalization_test.go NotNormalized
	{m: DecodeAndMergeSlashes, in: `/admin,a=b/xyz`, full: `/admin,a=b/xyz`},                           // Istio normalization_test.go NotNormalized
	// Istio normalization_test.go NotNormalized still expects /..;/admin unchanged; Envoy's
	// strip_dotdot_segments_with_parameters (path_utility_test.cc "/..;foo=bar/abc" → "/abc") now resolves it.
	{m: DecodeAndMergeSlashes, in: `/..;/admin`, full: `/admin`}, // Envoy path_utility_test.cc NormalizeValidPaths: starting dotdot with parameters

	// ----- Istio TestAuthz_PathNormalization (default mode): these must reach RBAC as /public or /private -----
	{m: Base, in: "/public", full: "/public"},                     // Istio TestAuthz_PathNormalization: /public allowed
	{m: Base, in: "/public/../public", full: "/public"},           // Istio TestAuthz_PathNormalization: /public/../public allowed
	{m: Base, in: "/private", full: "/private"},                   // Istio TestAuthz_PathNormalization: /private denied
	{m: Base, in: "/public/../private", full: "/private"},         // Istio TestAuthz_PathNormalization: /public/../private denied
	{m: Base, in: "/public/./../private", full: "/private"},       // Istio TestAuthz_PathNormalization: /public/./../private denied
	{m: Base, in: "/public/.././private", full: "/private"},       // Istio TestAuthz_PathNormalization: /public/.././private denied
	{m: Base, in: "/public/%2E%2E/private", full: "/private"},     // Istio TestAuthz_PathNormalization: /public/%2E%2E/private denied
	{m: Base, in: "/public/%2e%2e/private", full: "/private"},     // Istio TestAuthz_PathNormalization: /public/%2e%2e/private denied
	{m: Base, in: "/public/%2E/%2E%2E/private", full: "/private"}, // Istio TestAuthz_PathNormalization: /public/%2E/%2E%2E/private denied
	{m: Base, in: "/public/%2e/%2e%2e/private", full: "/private"}, // Istio TestAuthz_PathNormalization: /public/%2e/%2e%2e/private denied
	{m: Base, in: "/public/%2E%2E/%2E/private", full: "/private"}, // Istio TestAuthz_PathNormalization: /public/%2E%2E/%2E/private denied
	{m: Base, in: "/public/%2e%2e/%2e/private", full: "/private"}, // Istio TestAuthz_PathNormalization: /public/%2e%2e/%2e/private denied

	// ----- Istio normalization doc (reference/config/security/normalization) -----
	{m: Base, in: "/a%2db%5fc%7ed", full: "/a-b_c~d"},                 // Istio normalization doc: BASE decodes %2d %5f %7e
	{m: Base, in: "/%2D%5F%7E%2E", full: "/-_~."},                     // Istio normalization doc: the same escapes with upper-case hex
	{m: Base, in: "/%41%5A%61%7a%30%39", full: "/AZaz09"},             // Istio normalization doc: BASE decodes %30-%39 %41-%5a %61-%7a
	{m: Base, in: "/%40%3A%2F%5C%25%20", full: "/%40%3A%2F%5C%25%20"}, // Istio normalization doc: only the listed escapes are decoded; googleurl keeps the rest as written
	{m: Base, in: "/a\\b", full: "/a/b"},                              // Istio normalization doc: BASE turns backslash into forward slash
	{m: Base, in: "/a/./b/../c", full: "/a/c"},                        // Istio normalization doc: BASE resolves /./ and /../ (RFC 3986)
	{m: Base, in: "/admin%00", status: 400, detail: normErr},          // Istio normalization doc: %00 → 400
	{m: Base, in: "/a%2Fb%5Cc", full: "/a%2Fb%5Cc"},                   // Istio normalization doc: %2F/%5C decoding is opt-in (DECODE_AND_MERGE_SLASHES)
	{m: Base, in: "/a//b", full: "/a//b"},                             // Istio normalization doc: slash merging is opt-in (MERGE_SLASHES)
	{m: MergeSlashes, in: "/a//b", full: "/a/b"},                      // Istio mesh proto MERGE_SLASHES "/a//b" (its "a/b" is a typo; Envoy mergeSlashes keeps the leading '/')
	{m: DecodeAndMergeSlashes, in: "/a%2Fb%5Cc", full: "/a/b/c"},      // Istio normalization doc: DECODE_AND_MERGE_SLASHES decodes %2F and %5C

	// ----- Escaped slashes: only DecodeAndMergeSlashes (listener_builder.go UNESCAPE_AND_FORWARD) -----
	{m: MergeSlashes, in: "/a%2Fb", full: "/a%2Fb"},                                 // Istio listener_builder.go MERGE_SLASHES: escaped slashes KEEP_UNCHANGED
	{m: Base, in: "/%2e%2e%2fadmin", full: "/..%2fadmin"},                           // Istio listener_builder.go BASE: KEEP_UNCHANGED, so "..%2f" is a name, not a dot segment
	{m: DecodeAndMergeSlashes, in: "/%2e%2e%2fadmin", full: "/admin"},               // Envoy conn_manager_utility.cc: unescapeSlashes runs before canonicalPath
	{m: DecodeAndMergeSlashes, in: "/a%2F..%2Fb", full: "/b"},                       // Envoy conn_manager_utility.cc: decoded slashes then dot segments resolved
	{m: DecodeAndMergeSlashes, in: "/a%2Fb%2fc/", full: "/a/b/c/"},                  // Envoy path_utility_test.cc UnescapeSlashes: between other characters
	{m: DecodeAndMergeSlashes, in: "/a%5Cb%5cc/", full: "/a/b/c/"},                  // Envoy path_utility_test.cc UnescapeSlashes: %5C/%5c then googleurl '\' → '/'
	{m: DecodeAndMergeSlashes, in: "/x/%2E%2e/z%2f%2Fabc%5C../def", full: "/z/def"}, // Envoy path_utility_test.cc UnescapeSlashes: /x/%2E%2e/z//abc\../def, then canonicalPath and mergeSlashes
	{m: DecodeAndMergeSlashes, in: "/%%2fa/", full: "/%/a/"},                        // Envoy path_utility_test.cc UnescapeSlashes: double escape %%2fa/ → %/a/
	{m: DecodeAndMergeSlashes, in: "/%2%2fa/", full: "/%2/a/"},                      // Envoy path_utility_test.cc UnescapeSlashes: incomplete escape %2%2fa/ → %2/a/
	{m: DecodeAndMergeSlashes, in: "/abc%2", full: "/abc%2"},                        // Envoy path_utility_test.cc UnescapeSlashes: incomplete
	{m: DecodeAndMergeSlashes, in: "/foo%", full: "/foo%"},                          // Envoy path_utility_test.cc UnescapeSlashes: incomplete
	{m: DecodeAndMergeSlashes, in: "/%2b", full: "/%2b"},                            // Envoy path_utility_test.cc UnescapeSlashes: %2b is not %2f (and '+' is not decoded)
	{m: DecodeAndMergeSlashes, in: "/a%252Fb", full: "/a%252Fb"},                    // Envoy path_utility.cc unescapeSlashes: one pass, %25 is not decoded first

	// ----- Merge slashes (Envoy path_utility_test.cc MergeSlashes) -----
	{m: MergeSlashes, in: "/a//b/c/", full: "/a/b/c/"},           // Envoy path_utility_test.cc MergeSlashes: ends with slash
	{m: MergeSlashes, in: "//a/b/c", full: "/a/b/c"},             // Envoy path_utility_test.cc MergeSlashes: double / start
	{m: MergeSlashes, in: "/a/b/c//", full: "/a/b/c/"},           // Envoy path_utility_test.cc MergeSlashes: double / end
	{m: MergeSlashes, in: "/a///b/c", full: "/a/b/c"},            // Envoy path_utility_test.cc MergeSlashes: triple / in the middle
	{m: MergeSlashes, in: "/a////b/c", full: "/a/b/c"},           // Envoy path_utility_test.cc MergeSlashes: quadruple / in the middle
	{m: MergeSlashes, in: "/a//b?", full: "/a/b?", rbac: "/a/b"}, // Envoy path_utility_test.cc MergeSlashes: empty query
	{m: MergeSlashes, in: "//a/?b", full: "/a/?b", rbac: "/a/"},  // Envoy path_utility_test.cc MergeSlashes: ends with slash + query
	{m: MergeSlashes, in: "/a", full: "/a"},                      // Envoy path_utility_test.cc MergeSlashes: no-op
	{m: MergeSlashes, in: "//", full: "//"},                      // Envoy path_utility.cc mergeSlashes: leading '/' + no segments + trailing '/' leaves "//"
	{m: DecodeAndMergeSlashes, in: "/%2F%2f", full: "//"},        // Envoy path_utility.cc mergeSlashes: same all-slash quirk after unescaping
	{m: MergeSlashes, in: "/a/%2e//b", full: "/a/b"},             // Envoy conn_manager_utility.cc: "merge slashes after path normalization"

	// ----- googleurl url_canon_unittest.cc (character-table version), TEST(URLCanonTest, Path) -----
	{m: Base, in: "/././foo", full: "/foo"},                                                                           // googleurl url_canon_unittest.cc Path: /././foo → /foo
	{m: Base, in: "/./.foo", full: "/.foo"},                                                                           // googleurl url_canon_unittest.cc Path: /./.foo → /.foo
	{m: Base, in: "/foo/.", full: "/foo/"},                                                                            // googleurl url_canon_unittest.cc Path: /foo/. → /foo/
	{m: Base, in: "/foo/./", full: "/foo/"},                                                                           // googleurl url_canon_unittest.cc Path: /foo/./ → /foo/
	{m: Base, in: "/foo/bar/..", full: "/foo/"},                                                                       // googleurl url_canon_unittest.cc Path: /foo/bar/.. → /foo/
	{m: Base, in: "/foo/bar/../", full: "/foo/"},                                                                      // googleurl url_canon_unittest.cc Path: /foo/bar/../ → /foo/
	{m: Base, in: "/foo/..bar", full: "/foo/..bar"},                                                                   // googleurl url_canon_unittest.cc Path: double dots not followed by a slash
	{m: Base, in: "/foo/bar/../ton", full: "/foo/ton"},                                                                // googleurl url_canon_unittest.cc Path: some in the middle
	{m: Base, in: "/foo/bar/../ton/../../a", full: "/a"},                                                              // googleurl url_canon_unittest.cc Path: some in the middle
	{m: Base, in: "/foo/../../..", full: "/"},                                                                         // googleurl url_canon_unittest.cc Path: not able to go above the root
	{m: Base, in: "/foo/../../../ton", full: "/ton"},                                                                  // googleurl url_canon_unittest.cc Path: not able to go above the root
	{m: Base, in: "/foo/%2e", full: "/foo/"},                                                                          // googleurl url_canon_unittest.cc Path: escaped dots treated the same as dots
	{m: Base, in: "/foo/%2e%2", full: "/foo/.%2"},                                                                     // googleurl url_canon_unittest.cc Path: /foo/%2e%2 → /foo/.%2
	{m: Base, in: "/foo/%2e./%2e%2e/.%2e/%2e.bar", full: "/..bar"},                                                    // googleurl url_canon_unittest.cc Path: mixed escaped dots
	{m: Base, in: "////../..", full: "//"},                                                                            // googleurl url_canon_unittest.cc Path: multiple slashes kept as empty names
	{m: Base, in: "/%20foo", full: "/%20foo"},                                                                         // googleurl url_canon_unittest.cc Path: valid escape sequence kept
	{m: Base, in: "/foo%", full: "/foo%"},                                                                             // googleurl url_canon_unittest.cc Path: invalid escape passed through
	{m: Base, in: "/foo%2", full: "/foo%2"},                                                                           // googleurl url_canon_unittest.cc Path: invalid escape passed through
	{m: Base, in: "/foo%2zbar", full: "/foo%2zbar"},                                                                   // googleurl url_canon_unittest.cc Path: invalid escape passed through
	{m: Base, in: "/foo%2\xc2\xa9zbar", full: "/foo%2%C2%A9zbar"},                                                     // googleurl url_canon_unittest.cc Path: bytes after an invalid escape escaped normally
	{m: Base, in: "/foo%41%7a", full: "/fooAz"},                                                                       // googleurl url_canon_unittest.cc Path (table version): escaped regular characters unescaped
	{m: Base, in: "/foo\x09\x91%91", full: "/foo%09%91%91"},                                                           // googleurl url_canon_unittest.cc Path: funny characters escaped
	{m: Base, in: "/foo%00%51", status: 400, detail: normErr},                                                         // googleurl url_canon_unittest.cc Path (table version): escaped invalid characters fail
	{m: Base, in: "/(%28:%3A%29)", full: "/(%28:%3A%29)"},                                                             // googleurl url_canon_unittest.cc Path: passed through regardless of escaping
	{m: Base, in: "/%3A%3a%3C%3c", full: "/%3A%3a%3C%3c"},                                                             // googleurl url_canon_unittest.cc Path: hex case of kept escapes preserved
	{m: Base, in: "/foo\tbar", full: "/foo%09bar"},                                                                    // googleurl url_canon_unittest.cc Path: tab escaped
	{m: Base, in: "/%7Ffp3%3Eju%3Dduvgw%3Dd", full: "/%7Ffp3%3Eju%3Dduvgw%3Dd"},                                       // googleurl url_canon_unittest.cc Path: %7f allowed, %3D not unescaped
	{m: Base, in: "/@asdf%40", full: "/@asdf%40"},                                                                     // googleurl url_canon_unittest.cc Path: @ passed through escaped or not
	{m: Base, in: "/\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xbd\xa0\xe5\xa5\xbd", full: "/%E4%BD%A0%E5%A5%BD%E4%BD%A0%E5%A5%BD"}, // googleurl url_canon_unittest.cc Path: UTF-8 bytes escaped
	{m: Base, in: "/\xef\xb7\x90zyx", full: "/%EF%B7%90zyx"},                                                          // googleurl url_canon_unittest.cc Path: noncharacter bytes escaped, no failure

	// ----- googleurl url_canon_path.cc character table (ESCAPE / PASS rows) -----
	{m: Base, in: "/a b\"c", full: "/a%20b%22c"},                        // googleurl url_canon_path.cc table: space and '"' ESCAPE
	{m: Base, in: "/<a>^`{|}", full: "/%3Ca%3E%5E%60%7B%7C%7D"},         // googleurl url_canon_path.cc table: < > ^ ` { | } ESCAPE with upper-case hex
	{m: Base, in: "/\x01\x1f\x7f\x80\xff", full: "/%01%1F%7F%80%FF"},    // googleurl url_canon_path.cc table: controls, DEL and high bytes ESCAPE
	{m: Base, in: "/!$&'()*+,;=:@[]-._~", full: "/!$&'()*+,;=:@[]-._~"}, // googleurl url_canon_path.cc table: PASS and unreserved bytes copied
	{m: Base, in: "/a?b c", full: "/a?b c", rbac: "/a"},                 // Envoy path_utility.cc canonicalPath: the query is not canonicalized

	// ----- googleurl url_canon_path.cc dot handling -----
	{m: Base, in: "/../a", full: "/a"},            // googleurl url_canon_path.cc BackUpToPreviousSlash: never above the first slash
	{m: Base, in: "/xyz/..", full: "/"},           // googleurl url_canon_path.cc ClassifyAfterDot: ".." at the end goes up
	{m: Base, in: "/xyz/.", full: "/xyz/"},        // googleurl url_canon_path.cc ClassifyAfterDot: "." at the end is removed
	{m: Base, in: "/a/.\\b", full: "/a/b"},        // googleurl url_canon_path.cc ClassifyAfterDot: IsURLSlash accepts '\' after "."
	{m: Base, in: "/a/b/..\\..\\c", full: "/c"},   // googleurl url_canon_path.cc ClassifyAfterDot: IsURLSlash accepts '\' after ".."
	{m: Base, in: "/a/...", full: "/a/..."},       // googleurl url_canon_path.cc ClassifyAfterDot: "..." is NOT_A_DIRECTORY
	{m: Base, in: "/a.%2e/b", full: "/a../b"},     // googleurl url_canon_path.cc: a dot not after '/' is just part of the name (%2e decoded)
	{m: Base, in: "/a/%2E%2e%2E", full: "/a/..."}, // googleurl url_canon_path.cc IsDot: "%2E%2e%2E" is three dots, a name

	// ----- googleurl url_canon_path.cc CheckForNestedEscapes -----
	{m: Base, in: "/%%30%30", full: "/%2500"}, // googleurl url_canon_path.cc CheckForNestedEscapes: "%%30%30" must not become "%00"
	{m: Base, in: "/%%300", full: "/%2500"},   // googleurl url_canon_path.cc CheckForNestedEscapes: "%%300" must not become "%00"
	{m: Base, in: "/%A%42", full: "/%25AB"},   // googleurl url_canon_path.cc CheckForNestedEscapes: invalid '%' + decoded hex → %25
	{m: Base, in: "/%%41B", full: "/%25AB"},   // googleurl url_canon_path.cc CheckForNestedEscapes: decoded hex + next input hex → %25
	{m: Base, in: "/%%41%42", full: "/%25AB"}, // googleurl url_canon_path.cc CheckForNestedEscapes: second nested escape caught
	{m: Base, in: "/%%41", full: "/%A"},       // googleurl url_canon_path.cc CheckForNestedEscapes: truncated nested escape, nothing to fix
	{m: Base, in: "/%%470", full: "/%G0"},     // googleurl url_canon_path.cc CheckForNestedEscapes: "%G0" is not an escape, '%' kept
	{m: Base, in: "/%%2D%41", full: "/%-A"},   // googleurl url_canon_path.cc CheckForNestedEscapes: "%-A" is not an escape, '%' kept
}

func TestPath(t *testing.T) {
	for _, c := range pathCases {
		ms := []Mode{c.m}
		if c.m == all {
			ms = modes
		}
		for _, m := range ms {
			t.Run(modeName(m)+"/"+c.in, func(t *testing.T) {
				path, full, err := Path(c.in, m)
				if c.status != 0 {
					if err == nil {
						t.Fatalf("Path(%q, %s) = %q, %q; want %d %s", c.in, modeName(m), path, full, c.status, c.detail)
					}
					if err.Status != c.status || err.Detail != c.detail {
						t.Fatalf("Path(%q, %s) error = %d %s; want %d %s", c.in, modeName(m), err.Status, err.Detail, c.status, c.detail)
					}
					if path != "" || full != "" {
						t.Fatalf("Path(%q, %s) returned %q, %q with an error", c.in, modeName(m), path, full)
					}
					return
				}
				if err != nil {
					t.Fatalf("Path(%q, %s) error %v; want %q", c.in, modeName(m), err, c.full)
				}
				wantRBAC := c.rbac
				if wantRBAC == "" {
					wantRBAC = c.full
				}
				if full != c.full || path != wantRBAC {
					t.Fatalf("Path(%q, %s) = %q, %q; want %q, %q", c.in, modeName(m), path, full, wantRBAC, c.full)
				}
			})
		}
	}
}

// TestPathPercentEncoded replays the "PercentEncoded" group of Istio's
// tests/integration/security/normalization_test.go (TestNormalization): for
// every byte 0x01-0xff, "/admin%xx" (lower-case hex) sent through a
// DECODE_AND_MERGE_SLASHES sidecar reaches the backend decoded only for
// - . / \ _ ~ 0-9 A-Z a-z (with '\' then becoming '/'), and unchanged
// otherwise. It also checks the upper-case spelling, which googleurl treats
// the same but keeps as written when not decoding (url_canon_unittest.cc
// "/%3A%3a%3C%3c"), and Base mode, where %2f and %5c stay escaped
// (listener_builder.go KEEP_UNCHANGED).
func TestPathPercentEncoded(t *testing.T) {
	unreserved := func(i int) bool {
		return i == '-' || i == '.' || i == '_' || i == '~' ||
			'0' <= i && i <= '9' || 'A' <= i && i <= 'Z' || 'a' <= i && i <= 'z'
	}
	for i := 1; i <= 0xff; i++ {
		for _, format := range []string{"/admin%%%.2x", "/admin%%%.2X"} {
			in := fmt.Sprintf(format, i)
			for _, m := range []Mode{Base, DecodeAndMergeSlashes} {
				want := in
				switch {
				case unreserved(i):
					want, _ = url.PathUnescape(in)
				case (i == '/' || i == '\\') && m == DecodeAndMergeSlashes:
					want = "/admin/"
				}
				path, full, err := Path(in, m)
				if err != nil || path != want || full != want {
					t.Errorf("Path(%q, %s) = %q, %q, %v; want %q", in, modeName(m), path, full, err, want)
				}
			}
		}
	}
	// Istio normalization_test.go "Invalid": %00 is the one escape that fails.
	for _, m := range []Mode{Base, MergeSlashes, DecodeAndMergeSlashes} {
		if _, _, err := Path("/admin%00", m); err == nil || err.Status != 400 || err.Detail != normErr {
			t.Errorf("Path(/admin%%00, %s) error = %v; want 400 %s", modeName(m), err, normErr)
		}
	}
}

// TestCanonicalPath checks canonicalPath (Envoy PathUtil::canonicalPath on the
// part before '?') directly, for upstream vectors that Path cannot receive
// because they do not start with '/' or contain '#'.
func TestCanonicalPath(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"a/b/../c", "/a/c", true},            // Envoy path_utility_test.cc NormalizeValidPaths: non / start
		{"\\foo\\bar", "/foo/bar", true},      // googleurl url_canon_unittest.cc Path: backslashes converted to forward slashes
		{"/foo#bar", "/foo%23bar", true},      // googleurl url_canon_unittest.cc Path: hashes found in paths escaped
		{"/ab\x00c", "", false},               // googleurl url_canon_unittest.cc Path (table version): embedded NULL marks the URL invalid
		{"", "/", true},                       // googleurl url_canon_path.cc DoPath: no input, canonical path is a slash
		{".;x/..;y/z", "/z", true},            // Envoy path_utility.cc stripParametersFromDotSegments: first segment rewritten too
		{"/xyz/..;foo=bar/abc", "/abc", true}, // Envoy path_utility_test.cc NormalizeValidPaths: dotdot with parameters
		{"/xyz/AAAAA%%0000/abc", "", false},   // Envoy path_utility_test.cc InvalidPaths
	}
	for _, c := range cases {
		got, ok := canonicalPath(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("canonicalPath(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestStripDotParams checks the strip_dotdot_segments_with_parameters rewrite alone, against
// Envoy path_utility_test.cc StripDotSegmentWithParameters (path-only rows;
// the rows with a query or fragment go through Path above).
func TestStripDotParams(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},                                 // Envoy path_utility_test.cc StripDotSegmentWithParameters: empty
		{"/xyz", "/xyz"},                         // Envoy path_utility_test.cc StripDotSegmentWithParameters: no dot segment
		{"/xyz/..;foo=bar/abc", "/xyz/../abc"},   // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/..;foo=bar/abc", "/../abc"},           // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/xyz/..;foo=bar", "/xyz/.."},           // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/xyz/..;", "/xyz/.."},                  // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/a/..;foo/b/..;bar/c", "/a/../b/../c"}, // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/a/..;param1;param2/b", "/a/../b"},     // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/xyz/..foo", "/xyz/..foo"},             // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/xyz/...;foo", "/xyz/...;foo"},         // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/xyz/.;foo=bar/abc", "/xyz/./abc"},     // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/.;foo=bar/abc", "/./abc"},             // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/xyz/.;foo=bar", "/xyz/."},             // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/xyz/.;", "/xyz/."},                    // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/a/.;foo/b/.;bar/c", "/a/./b/./c"},     // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/a/.;param1;param2/b", "/a/./b"},       // Envoy path_utility_test.cc StripDotSegmentWithParameters
		{"/xyz/.foo", "/xyz/.foo"},               // Envoy path_utility_test.cc StripDotSegmentWithParameters
	}
	for _, c := range cases {
		if got := stripDotParams(c.in); got != c.want {
			t.Errorf("stripDotParams(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

// TestUnescapeSlashes checks the UNESCAPE_AND_FORWARD pass alone against
// Envoy path_utility_test.cc UnescapeSlashes (rows without a query).
func TestUnescapeSlashes(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},                     // Envoy path_utility_test.cc UnescapeSlashes: empty
		{"%2f%2F", "//"},             // Envoy path_utility_test.cc UnescapeSlashes: case-insensitive
		{"/a%2Fb%2fc/", "/a/b/c/"},   // Envoy path_utility_test.cc UnescapeSlashes: between other characters
		{"%2b", "%2b"},               // Envoy path_utility_test.cc UnescapeSlashes: not %2f
		{"/a/b/c", "/a/b/c"},         // Envoy path_utility_test.cc UnescapeSlashes: not %2f
		{"%2", "%2"},                 // Envoy path_utility_test.cc UnescapeSlashes: incomplete
		{"%", "%"},                   // Envoy path_utility_test.cc UnescapeSlashes: incomplete
		{"/abc%2", "/abc%2"},         // Envoy path_utility_test.cc UnescapeSlashes: incomplete
		{"foo%", "foo%"},             // Envoy path_utility_test.cc UnescapeSlashes: incomplete
		{"/a%2F", "/a/"},             // Envoy path_utility_test.cc UnescapeSlashes: prefixed
		{"%2fa/", "/a/"},             // Envoy path_utility_test.cc UnescapeSlashes: suffixed
		{"%%2fa/", "%/a/"},           // Envoy path_utility_test.cc UnescapeSlashes: double escape
		{"%2%2fa/", "%2/a/"},         // Envoy path_utility_test.cc UnescapeSlashes: incomplete escape
		{"%5c%5C", "\\\\"},           // Envoy path_utility_test.cc UnescapeSlashes: case-insensitive
		{"/a%5Cb%5cc/", "/a\\b\\c/"}, // Envoy path_utility_test.cc UnescapeSlashes: between other characters
		{"/a%5C", "/a\\"},            // Envoy path_utility_test.cc UnescapeSlashes: prefixed
		{"%5ca/", "\\a/"},            // Envoy path_utility_test.cc UnescapeSlashes: suffixed
		{"/x/%2E%2e/z%2f%2Fabc%5C../def", "/x/%2E%2e/z//abc\\../def"}, // Envoy path_utility_test.cc UnescapeSlashes
		{"%2fa%5Cb%2fc%5c", "/a\\b/c\\"},                              // Envoy path_utility_test.cc UnescapeSlashes: %5c and %2f together
	}
	for _, c := range cases {
		if got := unescapeSlashes(c.in); got != c.want {
			t.Errorf("unescapeSlashes(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

// TestMergeSlashes checks the merge alone against Envoy path_utility_test.cc
// MergeSlashes (rows without a query; Path strips the query first).
func TestMergeSlashes(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},                // Envoy path_utility_test.cc MergeSlashes: empty
		{"a//b/c", "a/b/c"},     // Envoy path_utility_test.cc MergeSlashes: relative
		{"/a//b/c/", "/a/b/c/"}, // Envoy path_utility_test.cc MergeSlashes: ends with slash
		{"a//b/c/", "a/b/c/"},   // Envoy path_utility_test.cc MergeSlashes: relative ends with slash
		{"/a", "/a"},            // Envoy path_utility_test.cc MergeSlashes: no-op
		{"//a/b/c", "/a/b/c"},   // Envoy path_utility_test.cc MergeSlashes: double / start
		{"/a//b/c", "/a/b/c"},   // Envoy path_utility_test.cc MergeSlashes: double / in the middle
		{"/a/b/c//", "/a/b/c/"}, // Envoy path_utility_test.cc MergeSlashes: double / end
		{"/a///b/c", "/a/b/c"},  // Envoy path_utility_test.cc MergeSlashes: triple / in the middle
		{"/a////b/c", "/a/b/c"}, // Envoy path_utility_test.cc MergeSlashes: quadruple / in the middle
		{"///", "//"},           // Envoy path_utility.cc mergeSlashes: prefix "/" + no segments + suffix "/"
	}
	for _, c := range cases {
		if got := mergeSlashes(c.in); got != c.want {
			t.Errorf("mergeSlashes(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

func TestModeFromMesh(t *testing.T) {
	cases := []struct {
		v    int32
		want Mode
	}{
		{0, Base},                  // Istio listener_builder.go: DEFAULT → normalize_path=true
		{1, None},                  // Istio listener_builder.go: NONE → normalize_path=false
		{2, Base},                  // Istio listener_builder.go: BASE → normalize_path=true
		{3, MergeSlashes},          // Istio listener_builder.go: MERGE_SLASHES → merge_slashes=true
		{4, DecodeAndMergeSlashes}, // Istio listener_builder.go: DECODE_AND_MERGE_SLASHES → UNESCAPE_AND_FORWARD
		{5, None},                  // Istio listener_builder.go: unknown value matches no case, normalize_path unset, Envoy default off
		{-1, None},                 // Istio listener_builder.go: unknown value matches no case, normalize_path unset, Envoy default off
	}
	for _, c := range cases {
		if got := ModeFromMesh(c.v); got != c.want {
			t.Errorf("ModeFromMesh(%d) = %s; want %s", c.v, modeName(got), modeName(c.want))
		}
	}
}

func TestMethod(t *testing.T) {
	// Envoy balsa_parser.cc isMethodValid: the complete accepted list.
	for _, m := range []string{"ACL", "BIND", "CHECKOUT", "CONNECT", "COPY", "DELETE", "GET",
		"HEAD", "LINK", "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL",
		"MOVE", "MSEARCH", "NOTIFY", "OPTIONS", "PATCH", "POST", "PROPFIND",
		"PROPPATCH", "PURGE", "PUT", "REBIND", "REPORT", "SEARCH", "SOURCE",
		"SUBSCRIBE", "TRACE", "UNBIND", "UNLINK", "UNLOCK", "UNSUBSCRIBE"} {
		if err := Method(m); err != nil {
			t.Errorf("Method(%q) = %v; want accepted", m, err)
		}
	}
	for _, m := range []string{
		"get",      // Istio normalization doc: 400 if the verb is not in upper case
		"Get",      // Istio normalization doc: 400 if the verb is not in upper case
		"post",     // Envoy balsa_parser.cc isMethodValid: exact, case-sensitive list
		"",         // Envoy balsa_parser.cc isMethodValid: empty method not in the list
		"FOO",      // Envoy balsa_parser.cc isMethodValid: unknown upper-case token rejected (no allow_custom_methods)
		"PRI",      // Envoy balsa_parser.cc isMethodValid: HTTP/2 preface method is not an HTTP/1 method
		"GET ",     // Envoy balsa_parser.cc isMethodValid: exact match only
		"M-SEARCH", // Envoy balsa_parser.cc isMethodValid: the list spells it MSEARCH
	} {
		err := Method(m)
		if err == nil || err.Status != 400 || err.Detail != codec {
			t.Errorf("Method(%q) = %v; want 400 %s", m, err, codec)
		}
	}
}

func TestHeaderName(t *testing.T) {
	ok := []string{
		"x-foo",                 // RFC 7230 token
		"X-Foo",                 // Istio normalization doc: header names compared case-insensitively, upper case is valid
		"x_foo",                 // RFC 7230 tchar '_'; sidecar headers_with_underscores_action defaults to ALLOW
		"!#$%&'*+-.^_`|~09azAZ", // RFC 7230 §3.2.6 tchar set
		":authority",            // Envoy header map carries request pseudo-headers for every protocol
		":path",                 // Envoy header map carries request pseudo-headers for every protocol
		":method",               // Envoy header map carries request pseudo-headers for every protocol
	}
	for _, n := range ok {
		if err := HeaderName(n); err != nil {
			t.Errorf("HeaderName(%q) = %v; want accepted", n, err)
		}
	}
	bad := []string{
		"x foo",  // Istio normalization doc: whitespace in a header name → 400
		" x-foo", // Istio normalization doc: whitespace in a header name → 400
		"x-foo ", // Istio normalization doc / RFC 7230 §3.2.4: whitespace before the colon → 400
		"x\tfoo", // Istio normalization doc: whitespace in a header name → 400
		"",       // RFC 7230 §3.2: field-name = token, at least one tchar
		"x:foo",  // RFC 7230 §3.2.6: ':' is a delimiter, not a tchar
		"x(y)",   // RFC 7230 §3.2.6: '(' ')' are delimiters
		"x-föo",  // RFC 7230 §3.2.6: non-ASCII bytes are not tchar
		":foo",   // HTTP/2 (RFC 7540 §8.1.2.1): unknown request pseudo-header is malformed
	}
	for _, n := range bad {
		err := HeaderName(n)
		if err == nil || err.Status != 400 || err.Detail != codec {
			t.Errorf("HeaderName(%q) = %v; want 400 %s", n, err, codec)
		}
	}
}

func TestErrorString(t *testing.T) {
	_, _, err := Path("/a%00", Base)
	if err == nil {
		t.Fatal("want error")
	}
	s := err.Error()
	if !strings.HasPrefix(s, "httpnorm: 400 path_normalization_failed: ") {
		t.Errorf("Error() = %q", s)
	}
	var _ error = err // *Error satisfies error
}

// TestPathNoAlloc pins the allocation-free fast path: a path Envoy leaves
// alone is returned as sub-strings of the input.
func TestPathNoAlloc(t *testing.T) {
	for _, in := range []string{"/api/v1/users?id=3", "/", "/a.b/c..d/.e;f=g", "/app#frag"} {
		for _, m := range modes {
			n := testing.AllocsPerRun(100, func() { _, _, _ = Path(in, m) })
			if n != 0 {
				t.Errorf("Path(%q, %s): %v allocs; want 0", in, modeName(m), n)
			}
		}
	}
}
