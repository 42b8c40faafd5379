package lint

import "strings"

// metricRef is a metric name used in a PromQL expression, with the byte
// offset where it appears.
type metricRef struct {
	name   string
	offset int
}

// promqlKeywords are words of PromQL that are not metric names.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// aggregations may put "by (...)" or "without (...)" between their name
// and their parenthesis: "sum by (job) (x)".
var aggregations = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true, "limitk": true, "limit_ratio": true,
}

// labelListKeywords are followed by a parenthesized list of label names.
var labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// metricNames extracts the metric names an expression selects, without a
// full PromQL parser: identifiers outside strings, label matchers ({...}),
// ranges ([...]) and label lists (by (...)), that are not function or
// aggregation names (followed by "(") and not keywords. A selector written
// {__name__="x"} yields x.
func metricNames(expr string) []metricRef {
	var out []metricRef
	var prev string // the previous identifier or symbol, for label lists
	i := 0
	n := len(expr)
	for i < n {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
			prev = "string"
		case c == '{':
			end := strings.IndexByte(expr[i:], '}')
			if end < 0 {
				end = n - i - 1
			}
			body := expr[i+1 : i+end]
			if name, off, ok := nameMatcher(body); ok {
				out = append(out, metricRef{name, i + 1 + off})
			}
			i += end + 1
			prev = "}"
		case c == '[':
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return out
			}
			i += end + 1
			prev = "]"
		case c == '#':
			end := strings.IndexByte(expr[i:], '\n')
			if end < 0 {
				return out
			}
			i += end
		case c == '$':
			// A dashboard variable such as $__rate_interval or $namespace.
			i++
			for i < n && (isIdent(expr[i]) || expr[i] == '{' || expr[i] == '}') {
				i++
			}
			prev = "$"
		case isIdentStart(c):
			start := i
			for i < n && isIdent(expr[i]) {
				i++
			}
			word := expr[start:i]
			j := i
			for j < n && (expr[j] == ' ' || expr[j] == '\t' || expr[j] == '\n' || expr[j] == '\r') {
				j++
			}
			next := byte(0)
			if j < n {
				next = expr[j]
			}
			lower := strings.ToLower(word)
			switch {
			case labelListKeywords[lower] && next == '(':
				end := strings.IndexByte(expr[j:], ')')
				if end < 0 {
					return out
				}
				i = j + end + 1
			case promqlKeywords[lower]:
			case next == '(':
				// a function or an aggregation
			case aggregations[lower] && (strings.HasPrefix(strings.ToLower(expr[j:]), "by") || strings.HasPrefix(strings.ToLower(expr[j:]), "without")):
			case prev == "offset" || prev == "@":
			default:
				out = append(out, metricRef{word, start})
			}
			prev = lower
		case c >= '0' && c <= '9' || c == '.':
			for i < n && (isIdent(expr[i]) || expr[i] == '.' || expr[i] == '+' || expr[i] == '-') {
				if (expr[i] == '+' || expr[i] == '-') && !(expr[i-1] == 'e' || expr[i-1] == 'E') {
					break
				}
				i++
			}
			prev = "number"
		case c == '@':
			i++
			prev = "@"
		default:
			i++
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				prev = string(c)
			}
		}
	}
	return out
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// skipString returns the offset after the string literal starting at i.
func skipString(s string, i int) int {
	q := s[i]
	i++
	for i < len(s) {
		switch {
		case s[i] == '\\' && q != '`':
			i += 2
			continue
		case s[i] == q:
			return i + 1
		}
		i++
	}
	return i
}

// nameMatcher finds __name__="x" in a label matcher list.
func nameMatcher(body string) (string, int, bool) {
	k := strings.Index(body, "__name__")
	if k < 0 {
		return "", 0, false
	}
	rest := strings.TrimLeft(body[k+len("__name__"):], " ")
	if !strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "=~") {
		return "", 0, false
	}
	rest = strings.TrimLeft(rest[1:], " ")
	if len(rest) < 2 || (rest[0] != '"' && rest[0] != '\'') {
		return "", 0, false
	}
	end := strings.IndexByte(rest[1:], rest[0])
	if end < 0 {
		return "", 0, false
	}
	return rest[1 : 1+end], k, true
}
