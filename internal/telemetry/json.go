package telemetry

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// line builds one JSON object by appending to a byte slice: the logs are
// written on every request, so they are formatted without reflection and
// without fmt, into buffers that are reused.
type line struct {
	b     []byte
	first bool // no field written yet in the current object
}

var linePool = sync.Pool{New: func() any { return &line{b: make([]byte, 0, 1024)} }}

func getLine() *line {
	l := linePool.Get().(*line)
	l.b = l.b[:0]
	return l
}

func putLine(l *line) {
	if cap(l.b) <= 64<<10 {
		linePool.Put(l)
	}
}

func (l *line) open() {
	l.b = append(l.b, '{')
	l.first = true
}

func (l *line) close() {
	l.b = append(l.b, '}')
	l.first = false
}

// key writes the separator and a key known to need no escaping.
func (l *line) key(k string) {
	if !l.first {
		l.b = append(l.b, ',')
	}
	l.first = false
	l.b = append(l.b, '"')
	l.b = append(l.b, k...)
	l.b = append(l.b, '"', ':')
}

// object opens a nested object under k.
func (l *line) object(k string) {
	l.key(k)
	l.open()
}

// str writes a string field.
func (l *line) str(k, v string) {
	l.key(k)
	l.b = appendString(l.b, v)
}

// strOrNull writes a string field, or null when it is empty: Envoy's typed
// JSON access log renders an unset operator as null.
func (l *line) strOrNull(k, v string) {
	if v == "" {
		l.key(k)
		l.b = append(l.b, "null"...)
		return
	}
	l.str(k, v)
}

// strOmit writes a string field unless it is empty: protojson, which the
// Hubble flow JSON follows, omits zero values.
func (l *line) strOmit(k, v string) {
	if v != "" {
		l.str(k, v)
	}
}

func (l *line) int(k string, v int64) {
	l.key(k)
	l.b = strconv.AppendInt(l.b, v, 10)
}

func (l *line) bool(k string, v bool) {
	l.key(k)
	l.b = strconv.AppendBool(l.b, v)
}

func (l *line) time(k string, t time.Time, layout string) {
	l.key(k)
	l.b = append(l.b, '"')
	l.b = t.UTC().AppendFormat(l.b, layout)
	l.b = append(l.b, '"')
}

func (l *line) strings(k string, vs []string) {
	l.key(k)
	l.b = append(l.b, '[')
	for i, v := range vs {
		if i > 0 {
			l.b = append(l.b, ',')
		}
		l.b = appendString(l.b, v)
	}
	l.b = append(l.b, ']')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does, so every line stays valid JSON whatever a client
// sent.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but end lines in JavaScript;
		// escape them as encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
