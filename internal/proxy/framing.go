package proxy

import (
	"net"
	"sync"
)

// framing follows the HTTP/1.1 request stream of a connection as
// http.ReadRequest reads it, to see what the parsed request hides: whether
// its header block carried both Content-Length and Transfer-Encoding, and
// whether it had a Host header at all.
//
// Go accepts a request with both, drops Content-Length and reads the
// body as chunked — what RFC 9112 §6.3 allows an intermediary to do. Envoy
// rejects it with 400 (http1_protocol_options.allow_chunked_length is off
// by default) because it is the shape of a request smuggling attempt
// against whatever parses the stream next, and Palisade answers as Envoy
// does. The other smuggling shapes — differing Content-Length values,
// several Transfer-Encoding headers, codings other than chunked — are
// refused by ReadRequest itself (400, 501), before a handler runs.
// ReadRequest also removes the Host header, so "Host:" with an empty
// value (valid) cannot be told from no Host header (invalid in
// HTTP/1.1) without the tracker.
//
// The tracker mirrors the server's framing (Content-Length bodies, chunked
// bodies with trailers, HTTP/1.0 ignoring Transfer-Encoding) so that it
// finds each header block; were it ever to lose step, the consequence is
// only that a request is judged by Go's rule instead of Envoy's.
type framing struct {
	mu sync.Mutex
	st uint8

	lineLen   int
	lineNo    int
	tail      [8]byte // the request line's last bytes: "HTTP/1.0"?
	name      [len("transfer-encoding")]byte
	nameLen   int
	inName    bool
	valueKind uint8
	cl        int64
	sawCL     bool
	sawTE     bool
	sawHost   bool
	http10    bool

	remaining int64
	chunk     int64
	chunkExt  bool

	heads []headInfo // one per header block, from heads[head] on not yet handled
	head  int
}

// headInfo is what the tracker saw in one request's header block.
type headInfo struct {
	clAndTE bool // both Content-Length and Transfer-Encoding, in HTTP/1.1
	host    bool // a Host header, empty or not
}

const (
	stHead uint8 = iota
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailer
)

const (
	valueOther uint8 = iota
	valueCL
	valueTE
	valueHost
)

// feed advances the tracker over bytes read from the connection.
func (f *framing) feed(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 0; i < len(b); i++ {
		switch f.st {
		case stBody, stChunkData:
			n := int64(len(b) - i)
			if n > f.remaining {
				n = f.remaining
			}
			f.remaining -= n
			i += int(n) - 1
			if f.remaining == 0 {
				if f.st == stBody {
					f.st = stHead
				} else {
					f.st = stChunkEnd
				}
			}
		case stChunkEnd:
			if b[i] == '\n' {
				f.st, f.chunk, f.chunkExt = stChunkSize, 0, false
			}
		case stChunkSize:
			c := b[i]
			switch {
			case c == '\n':
				if f.chunk == 0 {
					f.st, f.lineLen = stTrailer, 0
				} else {
					f.st, f.remaining = stChunkData, f.chunk
				}
			case c == ';':
				f.chunkExt = true
			case !f.chunkExt && f.chunk < 1<<40:
				if v, ok := unhex(c); ok {
					f.chunk = f.chunk<<4 | int64(v)
				}
			}
		case stTrailer:
			switch c := b[i]; c {
			case '\n':
				if f.lineLen == 0 {
					f.st = stHead
				}
				f.lineLen = 0
			case '\r':
			default:
				f.lineLen++
			}
		default:
			f.headByte(b[i])
		}
	}
}

func (f *framing) headByte(c byte) {
	switch c {
	case '\n':
		f.endLine()
		return
	case '\r':
		return
	}
	if f.lineNo == 0 {
		copy(f.tail[:], f.tail[1:])
		f.tail[len(f.tail)-1] = c
		f.lineLen++
		return
	}
	if f.lineLen == 0 {
		f.inName, f.nameLen, f.valueKind = true, 0, valueOther
	}
	f.lineLen++
	if f.inName {
		if c == ':' {
			f.inName = false
			switch string(f.name[:min(f.nameLen, len(f.name))]) {
			case "content-length":
				if f.nameLen == len("content-length") {
					f.valueKind, f.cl = valueCL, 0
				}
			case "transfer-encoding":
				if f.nameLen == len("transfer-encoding") {
					f.valueKind = valueTE
				}
			case "host":
				if f.nameLen == len("host") {
					f.valueKind = valueHost
				}
			}
			return
		}
		if f.nameLen < len(f.name) {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			f.name[f.nameLen] = c
		}
		f.nameLen++
		return
	}
	if f.valueKind == valueCL && '0' <= c && c <= '9' && f.cl < 1<<50 {
		f.cl = f.cl*10 + int64(c-'0')
	}
}

func (f *framing) endLine() {
	if f.lineLen == 0 {
		if f.lineNo == 0 {
			return // empty lines before a request line are skipped
		}
		f.heads = append(f.heads, headInfo{clAndTE: f.sawCL && f.sawTE && !f.http10, host: f.sawHost})
		switch {
		case f.sawTE && !f.http10:
			f.st, f.chunk, f.chunkExt = stChunkSize, 0, false
		case f.sawCL && f.cl > 0:
			f.st, f.remaining = stBody, f.cl
		}
		f.lineNo, f.sawCL, f.sawTE, f.sawHost, f.http10 = 0, false, false, false, false
		return
	}
	if f.lineNo == 0 {
		f.http10 = f.lineLen >= len(f.tail) && string(f.tail[:]) == "HTTP/1.0"
	} else {
		switch f.valueKind {
		case valueCL:
			f.sawCL = true
		case valueTE:
			f.sawTE = true
		case valueHost:
			f.sawHost = true
		}
	}
	f.lineNo++
	f.lineLen = 0
}

// next reports what the tracker saw in the header block of the request
// ReadRequest just read; ok is false if it lost step.
func (f *framing) next() (h headInfo, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.head >= len(f.heads) {
		return headInfo{}, false
	}
	h = f.heads[f.head]
	f.head++
	if f.head == len(f.heads) {
		f.heads, f.head = f.heads[:0], 0
	}
	return h, true
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

// h1Conn is a connection served as HTTP/1.1: reads go through the framing
// tracker.
type h1Conn struct {
	net.Conn
	f framing
}

func (c *h1Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.f.feed(b[:n])
	}
	return n, err
}
