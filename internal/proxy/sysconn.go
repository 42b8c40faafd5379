package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// sysConn is a TCP connection whose reads and writes are made as raw
// system calls, waiting for readiness through the runtime's network
// poller as net.TCPConn does.
//
// Why: a read or write through the syscall package enters the runtime's
// syscall state, and the first one after the process was idle wakes the
// runtime's monitor thread (sysmon), which then polls every 20 µs until
// the process is idle again. A sidecar at 1,000 requests/s goes idle
// between nearly every request, so that is several thread wake-ups per
// request: a quarter of the proxy's CPU time in bench/run.sh's profile
// (PERF=1). Reads and writes on a non-blocking socket return at once,
// so nothing is lost by not telling the scheduler about them.
type sysConn struct {
	*net.TCPConn
	rc      syscall.RawConn
	onClose func() // if set, called once the connection is closed

	// The state of the read and the write in progress: the callbacks
	// are made once, so a read or write allocates nothing. rmu and wmu
	// keep concurrent reads (or writes) one at a time, as net.Conn
	// allows callers to make them.
	rmu    sync.Mutex
	wmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	rfn    func(uintptr) bool

	wbuf   []byte
	wn     int
	werrno syscall.Errno
	wfn    func(uintptr) bool
}

// newSysConn wraps a TCP connection; any other connection is returned as
// it is.
func newSysConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	s := &sysConn{TCPConn: tc, rc: rc}
	s.rfn, s.wfn = s.readFD, s.writeFD
	return s
}

func (c *sysConn) readFD(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until readable
		}
		c.rn, c.rerrno = int(n), e
		return true
	}
}

func (c *sysConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerrno = b, 0, 0
	err := c.rc.Read(c.rfn)
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case c.rerrno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", c.rerrno))
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

func (c *sysConn) writeFD(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		// sendto with MSG_NOSIGNAL: a peer that has gone away is an
		// EPIPE error, never a SIGPIPE.
		p := c.wbuf[c.wn:]
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until writable
		default:
			c.werrno = e
			return true
		}
	}
	return true
}

func (c *sysConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werrno = b, 0, 0
	err := c.rc.Write(c.wfn)
	n := c.wn
	c.wbuf = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case c.werrno != 0:
		return n, c.opError("write", os.NewSyscallError("write", c.werrno))
	}
	return n, nil
}

func (c *sysConn) Close() error {
	err := c.TCPConn.Close()
	if c.onClose != nil && err == nil {
		c.onClose()
	}
	return err
}

// opError wraps an error as net.TCPConn's methods do, so callers see the
// same errors (timeouts, closed connections) either way. The raw
// connection's own errors are already wrapped (as "raw-read", say).
func (c *sysConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
