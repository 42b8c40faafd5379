package telemetry

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// AuditEntry records a request or connection that an Istio AUDIT rule or
// a dry-run policy (istio.io/dry-run) matched. Neither changes the
// verdict; the audit log is where they are seen.
type AuditEntry struct {
	Time            time.Time
	Direction       string // "inbound" or "outbound"
	SourcePrincipal string
	SourceIP        string
	Destination     string // workload "namespace/name"
	Port            uint16
	Method, Path    string // empty for a TCP connection
	Host            string
	Allowed         bool
	Layer           string
	Policy, Rule    string // what decided
	AuditRule       string // the AUDIT rule that matched
	DryRun          []string
}

// AuditLog writes a tamper-evident log: every line is a JSON object whose
// last field, "hash", is the SHA-256 of the line up to that field, and
// which names the hash of the line before it in "prev" (64 zeros for the
// first line). Changing, removing, inserting or reordering a line breaks
// the chain, which VerifyAuditLog detects. Cutting lines off the end
// leaves a valid shorter chain: anchor Head somewhere else (a metric, a
// remote log) to detect that too. It is safe for concurrent use.
type AuditLog struct {
	mu   sync.Mutex
	w    io.Writer
	seq  uint64
	prev [sha256.Size]byte
}

// NewAuditLog starts a new chain written to w; a nil w discards entries.
func NewAuditLog(w io.Writer) *AuditLog {
	if w == nil {
		return nil
	}
	return &AuditLog{w: w}
}

// OpenAuditLog continues the audit log in the file at path, creating it
// if need be: the lines already there are verified, and new lines extend
// their chain, so that the file stays one verifiable chain across
// restarts. A file whose chain is already broken is an error naming the
// first bad line, as VerifyAuditLog's: appending to it would bury where.
// Close the file when done with the log.
func OpenAuditLog(path string) (*AuditLog, *os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	seq, prev, err := verifyChain(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w (move the file aside to start a new chain)", path, err)
	}
	return &AuditLog{w: f, seq: seq, prev: prev}, f, nil
}

// Head returns the sequence number and hash of the last line written.
func (a *AuditLog) Head() (uint64, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seq, hex.EncodeToString(a.prev[:])
}

const hashField = `,"hash":"`

// Log appends e to the chain. A nil log does nothing.
func (a *AuditLog) Log(e *AuditEntry) error {
	if a == nil {
		return nil
	}
	body := getLine()
	defer putLine(body)
	body.first = false // the fields follow "prev"
	body.time("time", e.Time, rfc3339Nano)
	body.strOmit("direction", e.Direction)
	body.strOmit("source_principal", e.SourcePrincipal)
	body.strOmit("source_ip", e.SourceIP)
	body.strOmit("destination", e.Destination)
	if e.Port != 0 {
		body.int("port", int64(e.Port))
	}
	body.strOmit("method", e.Method)
	body.strOmit("path", e.Path)
	body.strOmit("host", e.Host)
	body.bool("allowed", e.Allowed)
	body.strOmit("layer", e.Layer)
	body.strOmit("policy", e.Policy)
	body.strOmit("rule", e.Rule)
	body.strOmit("audit_rule", e.AuditRule)
	if len(e.DryRun) > 0 {
		body.strings("dry_run", e.DryRun)
	}

	l := getLine()
	defer putLine(l)
	a.mu.Lock()
	defer a.mu.Unlock()
	seq := a.seq + 1
	l.b = append(l.b, `{"seq":`...)
	l.b = strconv.AppendUint(l.b, seq, 10)
	l.b = append(l.b, `,"prev":"`...)
	l.b = hex.AppendEncode(l.b, a.prev[:])
	l.b = append(l.b, '"')
	l.b = append(l.b, body.b...)
	sum := sha256.Sum256(l.b)
	l.b = append(l.b, hashField...)
	l.b = hex.AppendEncode(l.b, sum[:])
	l.b = append(l.b, '"', '}', '\n')
	if _, err := a.w.Write(l.b); err != nil {
		return err
	}
	a.seq, a.prev = seq, sum
	return nil
}

// VerifyAuditLog checks a whole audit log from its first line: each
// line's hash matches its content, each line names the hash of the one
// before it, and sequence numbers count up from 1. It returns an error
// naming the first line that fails; an empty log is valid.
func VerifyAuditLog(r io.Reader) error {
	_, _, err := verifyChain(r)
	return err
}

// verifyChain checks a chain and returns its last sequence number and
// hash (0 and zeros for an empty log).
func verifyChain(r io.Reader) (uint64, [sha256.Size]byte, error) {
	var last [sha256.Size]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	prev := make([]byte, 2*sha256.Size)
	for i := range prev {
		prev[i] = '0'
	}
	n := 0
	for sc.Scan() {
		n++
		ln := sc.Bytes()
		i := bytes.LastIndex(ln, []byte(hashField))
		if i < 0 || len(ln) != i+len(hashField)+2*sha256.Size+2 || !bytes.HasSuffix(ln, []byte(`"}`)) {
			return 0, last, fmt.Errorf("audit log line %d: no trailing hash field", n)
		}
		content, got := ln[:i], ln[i+len(hashField):len(ln)-2]
		sum := sha256.Sum256(content)
		if want := hex.EncodeToString(sum[:]); string(got) != want {
			return 0, last, fmt.Errorf("audit log line %d: hash %s does not match its content (%s): the line was altered", n, got, want)
		}
		var head struct {
			Seq  uint64 `json:"seq"`
			Prev string `json:"prev"`
		}
		obj := append(append([]byte(nil), content...), '}')
		if err := json.Unmarshal(obj, &head); err != nil {
			return 0, last, fmt.Errorf("audit log line %d: %v", n, err)
		}
		if head.Seq != uint64(n) {
			return 0, last, fmt.Errorf("audit log line %d: sequence number %d, want %d: lines were removed, inserted or reordered", n, head.Seq, n)
		}
		if head.Prev != string(prev) {
			return 0, last, fmt.Errorf("audit log line %d: prev %s does not match the hash of line %d: the chain is broken", n, head.Prev, n-1)
		}
		prev = append(prev[:0], got...)
		last = sum
	}
	return uint64(n), last, sc.Err()
}
