package procmem

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// exeRSS is the resident size, in kB, of this process's read-only
// mappings of its executable, from /proc/self/smaps.
func exeRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == exe && (fields[1] == "r-xp" || fields[1] == "r--p")
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			total += n
		}
	}
	return total
}

func TestReleaseExecutablePages(t *testing.T) {
	before := exeRSS(t)
	covered, err := ReleaseExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	after := exeRSS(t)
	if covered <= 0 {
		t.Fatalf("covered %d bytes: the executable's mappings were not found", covered)
	}
	if before == 0 || after >= before {
		t.Errorf("resident read-only pages: %d kB before, %d kB after", before, after)
	}
	// The code keeps running: what is needed comes back from the file.
	var sb strings.Builder
	for i := range 1000 {
		sb.WriteString(strconv.Itoa(i))
	}
	if sb.Len() != 2890 {
		t.Errorf("after the release: %d", sb.Len())
	}
	t.Logf("read-only segments: %d kB resident before, %d kB after (%d kB of address space)", before, after, covered>>10)
}
