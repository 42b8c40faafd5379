// Package echo is the built-in workload `palisade up` runs behind each
// proxy when a manifest names no command: an HTTP server that answers
// every request with what it received, and a TCP server that echoes bytes
// back, so that a demo shows what reached the application and from whom.
package echo

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Reply is what the HTTP echo answers, as JSON.
type Reply struct {
	Workload string              `json:"workload"` // namespace/name of the echoing workload
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	Host     string              `json:"host"`
	Headers  map[string][]string `json:"headers"`
	// Peer is the SPIFFE ID the proxy verified, from the
	// X-Forwarded-Client-Cert header it sets; "" for plaintext.
	Peer string `json:"peer,omitempty"`
}

// Handler answers every request with a Reply. The request body, if any,
// is read (up to 1 MiB) and discarded.
func Handler(workload string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		reply := Reply{Workload: workload, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: map[string][]string{}}
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			reply.Headers[k] = r.Header[k]
		}
		reply.Peer = peerFromXFCC(r.Header.Get("X-Forwarded-Client-Cert"))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(reply)
	})
}

// peerFromXFCC returns the URI element of an Envoy-style
// X-Forwarded-Client-Cert header ("By=...;Hash=...;URI=spiffe://...").
func peerFromXFCC(v string) string {
	for len(v) > 0 {
		var part string
		part, v, _ = strings.Cut(v, ";")
		if uri, ok := strings.CutPrefix(part, "URI="); ok {
			return uri
		}
	}
	return ""
}

// ServeHTTP serves the HTTP echo on l until it is closed.
func ServeHTTP(l net.Listener, workload string) error {
	srv := &http.Server{Handler: Handler(workload), ReadHeaderTimeout: 10 * time.Second}
	err := srv.Serve(l)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ServeTCP echoes every connection's bytes back until l is closed.
func ServeTCP(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}
