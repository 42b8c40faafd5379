package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// procRoot is where procfs is mounted; a variable so tests can point it at
// a fake tree.
var procRoot = "/proc"

// peerCredentials are gRPC transport credentials for the unix socket that
// perform no handshake on the wire (Workload Endpoint spec §3.1: TLS MUST
// NOT be required, and clients such as go-spiffe dial with insecure
// credentials) but ask the kernel who is on the other end (§5: out-of-band
// authentication, no participation from the workload).
type peerCredentials struct {
	log *slog.Logger
}

// peerAuthInfo is what ServerHandshake learned about the caller. It is
// attached to every RPC on the connection through peer.Peer.AuthInfo.
type peerAuthInfo struct {
	credentials.CommonAuthInfo
	proc Process
	// startTime is field 22 of /proc/<pid>/stat when the connection was
	// accepted; comparing it again later tells whether the PID still names
	// the process that connected.
	startTime uint64
	// err is why the caller cannot be attested. It is reported on each RPC
	// rather than by failing the handshake, because a failed handshake only
	// shows up at the client as an unexplained dropped connection.
	err error
}

func (peerAuthInfo) AuthType() string { return "peercred" }

func (c *peerCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	sc, ok := conn.(syscall.Conn)
	// Linux answers SO_PEERCRED on a TCP socket too, with PID 0 and UID
	// -1, so the address family has to be checked separately.
	if !ok || conn.LocalAddr().Network() != "unix" {
		c.log.Warn("workload API connection refused: not a unix socket", "type", fmt.Sprintf("%T", conn))
		return nil, nil, fmt.Errorf("workload API: %T is not a unix socket; caller credentials cannot be read", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("workload API: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, nil, fmt.Errorf("workload API: %w", err)
	}
	if credErr != nil {
		// Not a unix socket (a TCP listener was passed to Serve): there is
		// nobody to attest, so refuse the connection outright.
		c.log.Warn("workload API connection refused: cannot read peer credentials", "error", credErr)
		return nil, nil, fmt.Errorf("workload API: reading SO_PEERCRED: %w", credErr)
	}
	info := peerAuthInfo{
		// Like grpc's credentials/local for unix sockets: the bytes never
		// leave the kernel.
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		proc:           Process{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid},
	}
	if cred.Pid <= 0 {
		// The kernel reports PID 0 when the caller lives in a PID namespace
		// that is not visible from ours: nothing under /proc describes it.
		info.err = status.Error(codes.PermissionDenied, "caller's PID is not visible from the agent's PID namespace; run the agent in the host PID namespace")
	} else if info.startTime, err = readStartTime(cred.Pid); err != nil {
		info.err = startTimeError(cred.Pid, err)
	}
	return conn, info, nil
}

func (c *peerCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("workload API: peer credentials are server-side only; clients dial with insecure credentials")
}

func (c *peerCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (c *peerCredentials) Clone() credentials.TransportCredentials {
	cc := *c
	return &cc
}

func (c *peerCredentials) OverrideServerName(string) error { return nil }

// callerFromContext returns the process on the other end of the RPC's
// connection, or a status error saying why it is unknown.
func callerFromContext(ctx context.Context) (peerAuthInfo, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return peerAuthInfo{}, status.Error(codes.Internal, "no peer information on the call")
	}
	info, ok := p.AuthInfo.(peerAuthInfo)
	if !ok {
		// The server always installs peerCredentials, so this means a
		// listener that bypassed them; never answer an unidentified caller.
		return peerAuthInfo{}, status.Error(codes.Internal, "caller credentials missing: the workload API must be served with peer credentials")
	}
	if info.err != nil {
		return peerAuthInfo{}, info.err
	}
	return info, nil
}

// checkAlive is the peertracker guard: it reports an error unless the PID
// still belongs to the process that opened the connection. It must run
// after attestation, because attestation reads /proc/<pid> by number and a
// caller that exits can have its PID handed to another process meanwhile;
// if the start time is unchanged afterwards, what was read described the
// original caller.
func (info peerAuthInfo) checkAlive() error {
	st, err := readStartTime(info.proc.PID)
	if err != nil {
		return startTimeError(info.proc.PID, err)
	}
	if st != info.startTime {
		return status.Errorf(codes.PermissionDenied,
			"caller PID %d now belongs to a different process (start time %d, was %d when it connected); refusing to attest it in the caller's place",
			info.proc.PID, st, info.startTime)
	}
	return nil
}

func startTimeError(pid int32, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		// Retryable from the client's point of view: whoever retries is a
		// live process and will be attested afresh.
		return status.Errorf(codes.Unavailable, "caller process %d exited before it could be attested", pid)
	}
	return status.Errorf(codes.Unavailable, "cannot read caller process %d: %v", pid, err)
}

// readStartTime returns the starttime field (22nd) of /proc/<pid>/stat: the
// time the process started, in clock ticks since boot. A PID and its start
// time together name one process for the life of the system.
func readStartTime(pid int32) (uint64, error) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(string(b))
}

func parseStartTime(stat string) (uint64, error) {
	// Field 2 is the command name in parentheses, and it may itself hold
	// spaces and parentheses; everything after the last ')' is fixed.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no command name")
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	const idx = 22 - 3
	if len(fields) <= idx {
		return 0, fmt.Errorf("malformed /proc stat: %d fields after the command name", len(fields))
	}
	return strconv.ParseUint(fields[idx], 10, 64)
}
