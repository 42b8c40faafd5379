// Package procmem gives back memory a long-running process no longer
// needs after it has started.
package procmem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseExecutablePages drops this process's mappings of its own
// executable's read-only segments (code and read-only data), and returns
// how many bytes of address space it covered.
//
// Why: every package's initialisation touches its own code and data, and
// the kernel maps 64 KiB around each page fault, so a large binary starts
// with most of its read-only segments resident though a sidecar's request
// path uses a small part of them. The pages are clean copies of the file:
// dropping them costs nothing, and those still in use come back from the
// page cache (shared with every other process running the binary) at
// their next access. Writable segments are left alone.
func ReleaseExecutablePages() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || (fields[1] != "r-xp" && fields[1] != "r--p") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return total, fmt.Errorf("procmem: /proc/self/maps: bad range %q", fields[0])
		}
		// The range is not Go memory: madvise is called on the addresses.
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED); e != 0 {
			return total, fmt.Errorf("procmem: madvise %s: %w", fields[0], e)
		}
		total += int64(end - start)
	}
	return total, sc.Err()
}
