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
// their next access. Writable segments, and read-only ones with pages
// that are no longer the file's, are left alone.
func ReleaseExecutablePages() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	var cur mapping
	release := func() error {
		// A mapping with anonymous pages was written to (relocations in
		// a position-independent build, a debugger's breakpoint): those
		// pages are not the file's, and dropping them would lose them.
		if !cur.candidate || cur.anonymous {
			return nil
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, cur.start, cur.end-cur.start, syscall.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("procmem: madvise %x-%x: %w", cur.start, cur.end, e)
		}
		total += int64(cur.end - cur.start)
		return nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") && !strings.Contains(k, "-") {
			// A field of the current mapping ("Anonymous:    0 kB").
			if k == "Anonymous" && strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")) != "0" {
				cur.anonymous = true
			}
			continue
		}
		if err := release(); err != nil {
			return total, err
		}
		cur, err = parseMapping(line, exe)
		if err != nil {
			return total, err
		}
	}
	if err := sc.Err(); err != nil {
		return total, err
	}
	return total, release()
}

// mapping is one mapping of /proc/self/smaps, as far as it matters here.
type mapping struct {
	start, end uintptr
	candidate  bool // a read-only private mapping of the executable
	anonymous  bool // some of its pages are anonymous copies
}

// parseMapping reads a mapping's header line:
// start-end perms offset dev inode path.
func parseMapping(line, exe string) (mapping, error) {
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return mapping{}, fmt.Errorf("procmem: /proc/self/smaps: unexpected line %q", line)
	}
	var m mapping
	lo, hi, ok := strings.Cut(fields[0], "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if !ok || err1 != nil || err2 != nil || end <= start {
		return m, fmt.Errorf("procmem: /proc/self/smaps: bad range %q", fields[0])
	}
	m.start, m.end = uintptr(start), uintptr(end)
	m.candidate = len(fields) >= 6 && fields[5] == exe && (fields[1] == "r-xp" || fields[1] == "r--p")
	return m, nil
}
