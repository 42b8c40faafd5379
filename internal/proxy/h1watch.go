package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Noticing that an HTTP/1 client went away while its request waits for
// the upstream, as Envoy does, without a goroutine or a timer per request
// (see serveHTTP1 for why those are avoided). Once a second, watchClients
// looks for sessions that have waited longer than watchAfter for a
// response to a request without a body; for each it starts one goroutine
// that reads the client connection, which is otherwise idle then. If the
// read ends the client is gone: the upstream connection is closed, the
// exchange ends, and the request is reported with response flag DC
// (downstream_remote_disconnect). When the response comes first, the
// session stops the watcher before it reads from the client again.

// watchAfter is how long a request waits before its client is watched.
const watchAfter = time.Second

// waitState is what a session is waiting on, guarded by its mutex.
type waitState struct {
	mu       sync.Mutex
	up       net.Conn  // the upstream connection the response will come on
	since    time.Time // when the wait began
	bodyless bool      // the request has no body: the client side is idle
	watching chan struct{}
	gone     bool // the client went away during the wait
}

// startWait records that the session waits for a response on up. It
// reports whether the client is known to be gone already (it left during
// an earlier attempt of the request): then there is nothing to wait for.
func (s *h1Session) startWait(up net.Conn, bodyless bool) (gone bool) {
	s.wait.mu.Lock()
	defer s.wait.mu.Unlock()
	s.wait.up, s.wait.bodyless, s.wait.since = up, bodyless, time.Now()
	return s.wait.gone
}

// endWait records that the wait is over, and reports whether the client
// left during it (the upstream connection was closed under the response).
func (s *h1Session) endWait() (gone bool) {
	s.wait.mu.Lock()
	defer s.wait.mu.Unlock()
	s.wait.up = nil
	return s.wait.gone
}

// clientGone reports whether the watcher saw the client leave.
func (s *h1Session) clientGone() bool {
	s.wait.mu.Lock()
	defer s.wait.mu.Unlock()
	return s.wait.gone
}

// watch starts the watcher of a session that has waited long enough.
func (s *h1Session) watch(now time.Time) {
	s.wait.mu.Lock()
	defer s.wait.mu.Unlock()
	w := &s.wait
	if w.up == nil || !w.bodyless || w.watching != nil || now.Sub(w.since) < watchAfter {
		return
	}
	done := make(chan struct{})
	w.watching = done
	go func() {
		defer close(done)
		_, err := s.br.Peek(1)
		if err == nil || isTimeout(err) {
			return // the client sent more (a pipelined request), or the watch was stopped
		}
		// Under the lock, so that a wait that has just ended (endWait)
		// never has its connection closed after it went back to the
		// pool. Closing takes connsMu, never held while taking wait.mu.
		w.mu.Lock()
		w.gone = true
		if w.up != nil {
			w.up.Close()
		}
		w.mu.Unlock()
	}()
}

// stopWatch ends the watcher, if one was started, before the session
// reads from its client again.
func (s *h1Session) stopWatch() {
	s.wait.mu.Lock()
	done := s.wait.watching
	s.wait.watching, s.wait.gone = nil, false
	s.wait.mu.Unlock()
	if done == nil {
		return
	}
	s.conn.SetReadDeadline(time.Unix(1, 0))
	<-done
	s.conn.SetReadDeadline(time.Time{})
}

// watchClients runs until stop is closed.
func (p *Proxy) watchClients(stop <-chan struct{}) {
	t := time.NewTicker(watchAfter)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			p.connsMu.Lock()
			sessions := make([]*h1Session, 0, len(p.sessions))
			for s := range p.sessions {
				sessions = append(sessions, s)
			}
			p.connsMu.Unlock()
			for _, s := range sessions {
				s.watch(now)
			}
		}
	}
}

// waitingSession returns the HTTP/1 session a request came on, or nil.
func waitingSession(w http.ResponseWriter) *h1Session {
	if hw, ok := w.(*h1Response); ok {
		return hw.s
	}
	return nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
