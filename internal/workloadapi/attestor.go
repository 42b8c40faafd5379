package workloadapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/palisade-security/palisade/internal/identity"
)

// Process is the caller of a Workload API RPC as the kernel reported it
// through SO_PEERCRED when the connection was made.
type Process struct {
	PID      int32
	UID, GID uint32
}

// Attestor derives a caller's selectors from its process. The server checks
// after Attest returns that the PID still names the caller (see
// peerAuthInfo.checkAlive), so an Attestor may read /proc/<pid> freely.
type Attestor interface {
	Attest(ctx context.Context, p Process) (identity.Selectors, error)
}

// DefaultSizeLimit is the largest executable UnixAttestor hashes for
// unix:sha256 when SizeLimit is zero.
const DefaultSizeLimit = 100 << 20

// UnixAttestor attests a plain Unix process, with the selectors of SPIRE's
// unix workload attestor (doc/plugin_agent_workloadattestor_unix.md):
//
//	unix:uid:<n>                  effective UID, from SO_PEERCRED
//	unix:user:<name>              its user name, when it has one
//	unix:gid:<n>                  effective GID, from SO_PEERCRED
//	unix:group:<name>             its group name, when it has one
//	unix:supplementary_gid:<n>    each group of the Groups line of /proc/<pid>/status
//	unix:supplementary_group:<n>  its name, when it has one
//	unix:path:<path>              the executable (DiscoverPath only)
//	unix:sha256:<hex>             the executable's digest (DiscoverPath only)
//
// UID and GID come from SO_PEERCRED rather than from /proc because the
// kernel recorded them at connect() and the caller cannot change them
// afterwards. A selector that cannot be read is left out rather than
// failing attestation: entries match by subset, so a missing selector can
// only ever match fewer entries, never more.
//
// An UnixAttestor must not be copied after first use.
type UnixAttestor struct {
	// DiscoverPath adds unix:path and unix:sha256. It needs the agent to be
	// allowed to read other users' /proc/<pid>/exe (root, or
	// CAP_SYS_PTRACE), which is why it is opt-in as in SPIRE.
	DiscoverPath bool
	// SizeLimit bounds the executable size hashed for unix:sha256, so that
	// a workload cannot make the agent hash a huge file on every call
	// (SPIRE's workload_size_limit). Zero means DefaultSizeLimit; negative
	// means never hash. Beyond the limit unix:sha256 is omitted and an
	// error is logged.
	SizeLimit int64
	// Logger receives errors about selectors that could not be read. Nil
	// means slog.Default().
	Logger *slog.Logger

	mu     sync.Mutex
	hashes map[fileKey]string
}

// maxHashCache bounds the digest cache; when full it is simply dropped.
const maxHashCache = 1024

// fileKey names one version of one file: if any of these change, the file
// may have changed and is hashed again.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // ns
}

// errTooLarge marks an executable over SizeLimit.
var errTooLarge = errors.New("executable exceeds the size limit")

// Attest implements Attestor.
func (a *UnixAttestor) Attest(ctx context.Context, p Process) (identity.Selectors, error) {
	if p.PID <= 0 {
		return nil, fmt.Errorf("unix attestor: invalid PID %d", p.PID)
	}
	log := a.Logger
	if log == nil {
		log = slog.Default()
	}
	uid := strconv.FormatUint(uint64(p.UID), 10)
	gid := strconv.FormatUint(uint64(p.GID), 10)
	sel := identity.Selectors{unixSel("uid", uid), unixSel("gid", gid)}
	if u, err := user.LookupId(uid); err == nil {
		sel = append(sel, unixSel("user", u.Username))
	}
	if g, err := user.LookupGroupId(gid); err == nil {
		sel = append(sel, unixSel("group", g.Name))
	}

	groups, err := supplementaryGroups(p.PID)
	if err != nil {
		// The process is most likely gone; the server's liveness check
		// would refuse it anyway.
		return nil, fmt.Errorf("unix attestor: supplementary groups of PID %d: %w", p.PID, err)
	}
	for _, g := range groups {
		sel = append(sel, unixSel("supplementary_gid", g))
		if gr, err := user.LookupGroupId(g); err == nil {
			sel = append(sel, unixSel("supplementary_group", gr.Name))
		}
	}

	if a.DiscoverPath {
		exe := procPath(p.PID, "exe")
		if path, err := os.Readlink(exe); err != nil {
			log.ErrorContext(ctx, "unix attestor: cannot read the workload's executable path; unix:path omitted",
				"pid", p.PID, "error", err)
		} else {
			sel = append(sel, unixSel("path", path))
		}
		limit := a.SizeLimit
		if limit == 0 {
			limit = DefaultSizeLimit
		}
		if limit > 0 {
			digest, err := a.digest(exe, limit)
			switch {
			case errors.Is(err, errTooLarge):
				log.ErrorContext(ctx, "unix attestor: workload executable is larger than the size limit; unix:sha256 omitted",
					"pid", p.PID, "limit", limit, "error", err)
			case err != nil:
				log.ErrorContext(ctx, "unix attestor: cannot hash the workload's executable; unix:sha256 omitted",
					"pid", p.PID, "error", err)
			default:
				sel = append(sel, unixSel("sha256", digest))
			}
		}
	}
	return sel.Sorted(), nil
}

func unixSel(kind, value string) identity.Selector {
	return identity.Selector{Type: "unix", Value: kind + ":" + value}
}

func procPath(pid int32, name string) string {
	return procRoot + "/" + strconv.Itoa(int(pid)) + "/" + name
}

// supplementaryGroups reads the Groups line of /proc/<pid>/status.
func supplementaryGroups(pid int32) ([]string, error) {
	f, err := os.Open(procPath(pid, "status"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Groups:"); ok {
			return strings.Fields(rest), nil
		}
	}
	return nil, sc.Err()
}

// digest hashes the executable through /proc/<pid>/exe, which opens the
// file the process is actually running: it works across mount namespaces
// (containers) and for a binary deleted or replaced on disk since it
// started, where the path from readlink would name another file or none.
//
// Hashing a large binary on every call would dominate the call's cost, so
// digests are cached by file identity (device, inode, size, mtime, ctime).
// Writing to a file changes its mtime and ctime, and a user cannot set
// ctime, so a changed file is always hashed again. A file whose ctime is
// recent is not cached (the "racy git" rule): on a file system with coarse
// timestamps a file replaced within the same tick could otherwise reuse the
// inode and every timestamp of the cached one.
func (a *UnixAttestor) digest(exe string, limit int64) (string, error) {
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	before, err := statKey(f)
	if err != nil {
		return "", err
	}
	if before.size > limit {
		return "", fmt.Errorf("%w: %d bytes > %d", errTooLarge, before.size, limit)
	}
	a.mu.Lock()
	d, ok := a.hashes[before]
	a.mu.Unlock()
	if ok {
		return d, nil
	}

	h := sha256.New()
	// Read at most limit+1 bytes in case the file grew since fstat.
	n, err := io.Copy(h, io.LimitReader(f, limit+1))
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	d = hex.EncodeToString(h.Sum(nil))

	after, err := statKey(f)
	if err == nil && after == before && time.Since(time.Unix(0, before.ctime)) > 2*time.Second {
		a.mu.Lock()
		if a.hashes == nil || len(a.hashes) >= maxHashCache {
			a.hashes = make(map[fileKey]string)
		}
		a.hashes[before] = d
		a.mu.Unlock()
	}
	return d, nil
}

func statKey(f *os.File) (fileKey, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileKey{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, fmt.Errorf("no stat_t for %s", f.Name())
	}
	return fileKey{
		dev:   uint64(st.Dev),
		ino:   uint64(st.Ino),
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}, nil
}
