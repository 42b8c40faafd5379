package httpnorm

import "strings"

// Byte classes for the path canonicalizer. They follow the character table of
// googleurl's url_canon_path.cc (the version Envoy links, with UNESCAPE and
// INVALID flags): what a literal byte becomes, and, for the target of a valid
// %XX escape, whether the escape is decoded.
const (
	clsCopy      uint8 = iota // copied as is: unreserved and ! $ & ' ( ) * + , / : ; = @ [ ]
	clsEscape                 // written as %XX, upper-case hex
	clsDot                    // '.', may start a dot segment
	clsPercent                // '%', may start an escape or an escaped dot
	clsBackslash              // '\', becomes '/'
	clsNUL                    // NUL, fails canonicalization
)

var (
	// class is the literal-byte class.
	class = func() (t [256]uint8) {
		for c := 0; c < 256; c++ {
			switch {
			case c == 0:
				t[c] = clsNUL
			case c < 0x20 || c >= 0x7f:
				t[c] = clsEscape
			case c == '.':
				t[c] = clsDot
			case c == '%':
				t[c] = clsPercent
			case c == '\\':
				t[c] = clsBackslash
			case strings.IndexByte(" \"#<>?^`{|}", byte(c)) >= 0:
				t[c] = clsEscape
			default:
				t[c] = clsCopy
			}
		}
		return t
	}()

	// decoded marks the bytes whose %XX form is replaced by the byte itself:
	// RFC 3986 unreserved characters other than '.', which the dot-segment
	// logic handles. Istio's normalization doc lists them as
	// %2d %2e %30-%39 %41-%5a %5f %61-%7a %7e.
	decoded = func() (t [256]bool) {
		for c := 0; c < 256; c++ {
			t[c] = c == '-' || c == '_' || c == '~' ||
				'0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
		}
		return t
	}()
)

const upperHex = "0123456789ABCDEF"

// isCanonical reports, without allocating, that Envoy would leave p (the part
// of the :path before '?', starting with '/') unchanged: every byte is one the
// canonicalizer copies, no '.' starts a dot segment or a ".;"/"..;" segment,
// and, when merge is set, there is no "//".
//
// A false answer only means the slow path has to run; it may still produce
// p unchanged (for instance "/%2F").
func isCanonical(p string, merge bool) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; class[c] {
		case clsCopy:
			if merge && c == '/' && i+1 < len(p) && p[i+1] == '/' {
				return false
			}
		case clsDot:
			if i == 0 || p[i-1] != '/' {
				continue
			}
			// "/." or "/.." followed by end, '/' or ';' is rewritten.
			j := i + 1
			if j < len(p) && p[j] == '.' {
				j++
			}
			if j == len(p) || p[j] == '/' || p[j] == ';' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// unescapeSlashes is Envoy's PathUtil::unescapeSlashes, used for
// UNESCAPE_AND_FORWARD: one left-to-right pass over the path (the query is
// not passed in) turning %2F/%2f into '/' and %5C/%5c into '\'. A '\'
// produced here later becomes '/' in canonicalization.
func unescapeSlashes(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	var b []byte
	last := 0
	for i := 0; i+2 < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		var r byte
		switch {
		case p[i+1] == '2' && (p[i+2] == 'F' || p[i+2] == 'f'):
			r = '/'
		case p[i+1] == '5' && (p[i+2] == 'C' || p[i+2] == 'c'):
			r = '\\'
		default:
			continue
		}
		if b == nil {
			b = make([]byte, 0, len(p))
		}
		b = append(b, p[last:i]...)
		b = append(b, r)
		i += 2
		last = i + 1
	}
	if b == nil {
		return p
	}
	return string(append(b, p[last:]...))
}

// canonicalPath is Envoy's PathUtil::canonicalPath applied to the path part
// (before '?'): the strip_dotdot_segments_with_parameters rewrite, then
// googleurl CanonicalizePath. ok is false when googleurl reports failure,
// which Envoy answers with 400 path_normalization_failed.
func canonicalPath(p string) (string, bool) {
	return canonicalize(stripDotParams(p))
}

// stripDotParams rewrites segments that start with "..;" to ".." and those
// that start with ".;" to "." (Envoy PathUtil::stripParametersFromDotSegments,
// a 2026 security fix, on by default), so that "/a/..;x/b" is resolved like
// "/a/../b" instead of reaching a backend that drops path parameters.
//
// Segments are split on '/' only and the test is literal, as upstream does:
// "%2e%2e;" and a segment after '\' are not rewritten here.
func stripDotParams(p string) string {
	if !strings.Contains(p, ".;") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; ; {
		j := strings.IndexByte(p[i:], '/')
		seg := p[i:]
		if j >= 0 {
			seg = p[i : i+j]
		}
		switch {
		case strings.HasPrefix(seg, "..;"):
			seg = ".."
		case strings.HasPrefix(seg, ".;"):
			seg = "."
		}
		b.WriteString(seg)
		if j < 0 {
			return b.String()
		}
		b.WriteByte('/')
		i += j + 1
	}
}

// canonicalize gives googleurl CanonicalizePath's result for a path: a '/'
// is prepended if missing; '\' becomes '/'; valid escapes of unreserved
// characters are decoded and every other valid escape is kept with its
// original hex case; invalid escapes pass through; bytes outside the
// allowed set are escaped with upper-case hex; "." and ".." segments
// (literal or %2e) are resolved without ever going above the root; runs of
// '/' are kept. It fails on a NUL, literal or %00.
func canonicalize(p string) (string, bool) {
	out := make([]byte, 0, len(p)+8)
	if p == "" || (p[0] != '/' && p[0] != '\\') {
		out = append(out, '/')
	}
	// badPct is the index in out of the last '%' that did not start a
	// valid escape, or -1. googleurl watches it so that decoding cannot turn
	// "%%30%30" into a fresh "%00" for the next parser to decode.
	badPct := -1
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch class[c] {
		case clsCopy:
			out = append(out, c)
		case clsEscape:
			out = append(out, '%', upperHex[c>>4], upperHex[c&0xf])
		case clsBackslash:
			out = append(out, '/')
		case clsNUL:
			return "", false
		case clsDot, clsPercent:
			if n := dotLen(p, i); n > 0 {
				if out[len(out)-1] != '/' {
					// A dot inside a name ("a.b", "a%2eb") is just a dot.
					out = append(out, '.')
					i += n - 1
					continue
				}
				kind, used := afterDot(p, i+n)
				switch kind {
				case segName:
					out = append(out, '.')
					i += n - 1
				case segCurrent:
					i += n + used - 1
				case segParent:
					out = popSegment(out)
					if badPct >= len(out) {
						badPct = -1
					}
					i += n + used - 1
				}
				continue
			}
			v, ok := escapeAt(p, i)
			if !ok {
				badPct = len(out)
				out = append(out, '%')
				continue
			}
			if decoded[v] {
				out = append(out, v)
				i += 2
				if badPct >= 0 && badPct >= len(out)-3 {
					out = guardNestedEscape(p, i+1, badPct, out)
				}
				continue
			}
			if v == 0 {
				return "", false
			}
			out = append(out, '%', p[i+1], p[i+2])
			i += 2
		}
	}
	return string(out), true
}

// dotLen returns the length of a dot at p[i]: 1 for '.', 3 for %2e or %2E,
// 0 otherwise.
func dotLen(p string, i int) int {
	switch {
	case p[i] == '.':
		return 1
	case p[i] == '%' && i+2 < len(p) && p[i+1] == '2' && (p[i+2] == 'e' || p[i+2] == 'E'):
		return 3
	}
	return 0
}

// Kinds of segment that start with a dot right after a '/'.
const (
	segName    = iota // "..foo", ".bar", "...": an ordinary name
	segCurrent        // "." followed by a slash or the end
	segParent         // ".." followed by a slash or the end
)

// afterDot classifies the segment whose first dot ends just before p[j], and
// returns how many bytes after that first dot belong to it (the second dot
// and the slash that ends the segment, '\' included).
func afterDot(p string, j int) (kind, used int) {
	if j == len(p) {
		return segCurrent, 0
	}
	if p[j] == '/' || p[j] == '\\' {
		return segCurrent, 1
	}
	if n := dotLen(p, j); n > 0 {
		k := j + n
		if k == len(p) {
			return segParent, n
		}
		if p[k] == '/' || p[k] == '\\' {
			return segParent, n + 1
		}
	}
	return segName, 0
}

// popSegment drops the last segment of out, which ends in '/', keeping the
// '/' before it; at the root it does nothing, so ".." never climbs above "/".
func popSegment(out []byte) []byte {
	i := len(out) - 1
	if i == 0 {
		return out
	}
	i--
	for i > 0 && out[i] != '/' {
		i--
	}
	return out[:i+1]
}

// escapeAt decodes the escape %XY at p[i], if both X and Y are hex digits.
func escapeAt(p string, i int) (byte, bool) {
	if i+2 >= len(p) {
		return 0, false
	}
	hi, ok1 := unhex(p[i+1])
	lo, ok2 := unhex(p[i+2])
	if !ok1 || !ok2 {
		return 0, false
	}
	return hi<<4 | lo, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// guardNestedEscape runs right after a decoded byte was appended to out
// within two bytes of the stray '%' at out[bad]. If out now ends in a valid
// escape starting at that '%' (with the next input byte p[next] when only one
// byte follows the '%'), the '%' is written as "%25", as googleurl does, so
// the output cannot be decoded into something the input did not say.
func guardNestedEscape(p string, next, bad int, out []byte) []byte {
	n := len(out)
	last := out[n-1]
	withNext := bad == n-2
	if withNext {
		if next >= len(p) {
			return out
		}
		out = append(out, p[next])
	}
	_, hi := unhex(out[bad+1])
	_, lo := unhex(out[bad+2])
	if !hi || !lo {
		return out[:n]
	}
	if !withNext {
		out = append(out, out[bad+1])
	}
	out[bad+1], out[bad+2] = '2', '5'
	return append(out, last)
}

// mergeSlashes is Envoy's PathUtil::mergeSlashes on the path part: when it
// contains "//", it becomes one leading '/' (if it had one), the non-empty
// segments joined by '/', and one trailing '/' (if it had one). A path that
// is only slashes therefore becomes "//", as upstream's does.
func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	b := make([]byte, 0, len(p))
	if p[0] == '/' {
		b = append(b, '/')
	}
	wrote := false
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			continue
		}
		if wrote {
			b = append(b, '/')
		}
		b = append(b, seg...)
		wrote = true
	}
	if p[len(p)-1] == '/' {
		b = append(b, '/')
	}
	return string(b)
}
