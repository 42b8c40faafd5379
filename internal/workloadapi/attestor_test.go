package workloadapi

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palisade-security/palisade/internal/identity"
)

func itoa(n int) string { return strconv.Itoa(n) }

func selfProcess() Process {
	return Process{PID: int32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
}

func has(ss identity.Selectors, s identity.Selector) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func values(ss identity.Selectors, kind string) []string {
	var out []string
	for _, s := range ss {
		if v, ok := strings.CutPrefix(s.Value, kind+":"); ok && s.Type == "unix" {
			out = append(out, v)
		}
	}
	return out
}

// The test binary attests itself: the selectors must agree with what the
// process knows about itself through other means.
func TestUnixAttestorSelf(t *testing.T) {
	me := getSelf(t)
	a := &UnixAttestor{DiscoverPath: true}
	got, err := a.Attest(context.Background(), selfProcess())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []identity.Selector{
		sel("uid", me.uid), sel("gid", me.gid), sel("path", me.path), sel("sha256", me.sha256),
	} {
		if !has(got, want) {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	for _, kind := range []string{"uid", "gid", "path", "sha256"} {
		if n := len(values(got, kind)); n != 1 {
			t.Errorf("%d unix:%s selectors", n, kind)
		}
	}
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, g := range groups {
		want = append(want, itoa(g))
	}
	if gotG := values(got, "supplementary_gid"); strings.Join(gotG, ",") != strings.Join(sortedStrings(want), ",") {
		t.Errorf("supplementary gids %v, want %v", gotG, want)
	}
	if !sortedSelectors(got) {
		t.Errorf("selectors not sorted: %v", got)
	}

	// Without DiscoverPath: no path or hash.
	got, err = (&UnixAttestor{}).Attest(context.Background(), selfProcess())
	if err != nil {
		t.Fatal(err)
	}
	if len(values(got, "path"))+len(values(got, "sha256")) != 0 {
		t.Errorf("path selectors without DiscoverPath: %v", got)
	}

	// A cached digest is the same digest.
	for range 2 {
		again, err := a.Attest(context.Background(), selfProcess())
		if err != nil || !has(again, sel("sha256", me.sha256)) {
			t.Fatalf("second attestation: %v %v", again, err)
		}
	}
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	ids := identity.Selectors{}
	for _, v := range out {
		ids = append(ids, identity.Selector{Type: "x", Value: v})
	}
	ids = ids.Sorted()
	for i := range ids {
		out[i] = ids[i].Value
	}
	return out
}

func sortedSelectors(ss identity.Selectors) bool {
	sorted := ss.Sorted()
	for i := range ss {
		if ss[i] != sorted[i] {
			return false
		}
	}
	return true
}

func TestUnixAttestorSizeLimit(t *testing.T) {
	me := getSelf(t)
	logs := &syncBuffer{}
	a := &UnixAttestor{DiscoverPath: true, SizeLimit: 1024, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	got, err := a.Attest(context.Background(), selfProcess())
	if err != nil {
		t.Fatal(err)
	}
	if len(values(got, "sha256")) != 0 {
		t.Fatalf("sha256 computed beyond the size limit: %v", got)
	}
	if !has(got, sel("path", me.path)) {
		t.Fatalf("path missing: %v", got)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "size limit") {
		t.Fatalf("size limit not logged as an error: %q", logs.String())
	}

	// Negative: never hash, and nothing to complain about.
	logs2 := &syncBuffer{}
	a = &UnixAttestor{DiscoverPath: true, SizeLimit: -1, Logger: slog.New(slog.NewTextHandler(logs2, nil))}
	got, err = a.Attest(context.Background(), selfProcess())
	if err != nil || len(values(got, "sha256")) != 0 || logs2.String() != "" {
		t.Fatalf("SizeLimit -1: %v %v %q", got, err, logs2.String())
	}
}

func TestUnixAttestorExitedProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	p := Process{PID: int32(cmd.Process.Pid)}
	if _, err := (&UnixAttestor{}).Attest(context.Background(), p); err == nil {
		// Unless the PID was reused at once, which the server's guard
		// handles; nothing to assert then.
		if _, serr := os.Stat(procPath(p.PID, "status")); serr != nil {
			t.Fatal("attested a process that does not exist")
		}
	}
}

func TestPeerTrackerExitedAndReused(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	st, err := readStartTime(pid) // a zombie until Wait, so still readable
	if err != nil {
		t.Fatal(err)
	}
	info := peerAuthInfo{proc: Process{PID: pid}, startTime: st}
	if err := info.checkAlive(); err != nil {
		t.Fatalf("live (or zombie) caller refused: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	err = info.checkAlive()
	if c := status.Code(err); c != codes.Unavailable && c != codes.PermissionDenied {
		t.Fatalf("exited caller: %v", err)
	}

	me, err := readStartTime(int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	reused := peerAuthInfo{proc: Process{PID: int32(os.Getpid())}, startTime: me + 1}
	if err := reused.checkAlive(); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "different process") {
		t.Fatalf("reused PID: %v", err)
	}
}

// The handshake reads the kernel's view of the peer.
func TestPeerCredentialsHandshake(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("unix", path)
		if err == nil {
			defer c.Close()
			var b [1]byte
			c.Read(b[:])
		}
	}()
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	creds := &peerCredentials{log: slog.Default()}
	_, ai, err := creds.ServerHandshake(conn)
	if err != nil {
		t.Fatal(err)
	}
	info := ai.(peerAuthInfo)
	if info.err != nil || info.proc != selfProcess() || info.startTime == 0 {
		t.Fatalf("auth info %+v, want %+v", info, selfProcess())
	}

	// A TCP connection has no peer credentials: refused.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go func() {
		if c, err := net.Dial("tcp", tl.Addr().String()); err == nil {
			defer c.Close()
			var b [1]byte
			c.Read(b[:])
		}
	}()
	tc, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, _, err := creds.ServerHandshake(tc); err == nil {
		t.Fatal("TCP peer accepted")
	}
}
