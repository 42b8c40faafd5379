// Package controlplane distributes policy from `palisade server` to the
// proxies. The server watches its sources (files and directories), publishes
// a new version whenever their content changes, and streams it over mTLS
// gRPC to every proxy; each proxy compiles its own engine from what it
// receives and acknowledges it.
//
// # What is sent
//
// A version is the set of source files themselves — each file's name and raw
// bytes — plus the Cilium Helm values file, not a compiled form. The proxy
// parses them with the same function the server validated them with
// (ParseDocuments), so every error and every trace names the file and line
// the operator wrote, and a proxy gives exactly the verdicts `palisade check`
// gives on the same files. The request names the proxy's workload
// ("namespace/name") so that the server can later send each proxy only what
// applies to it; today every proxy receives everything.
//
// A version is identified as "N-HASH": N increases with every version a
// server publishes, HASH is the start of the SHA-256 of the content. N starts
// again at 1 when the server restarts; the hash is what lets a proxy that
// reconnects to a restarted server tell that it already has the content.
//
// # Watching
//
// The server polls: every 100 ms it compares the sources' file metadata
// with what it last read, every 500 ms it reads every file regardless, and
// it publishes new content once it has stayed the same for 100 ms, so that
// a file caught half-written is never published. Polling needs no
// dependency and behaves the same on every file system, ConfigMap volumes
// and network file systems included; the 100 ms look keeps an edit's
// detection well inside the one-second budget for enforcing it.
//
// # Protocol
//
// One bidirectional stream, palisade.controlplane.v1.Policy/Stream, follows
// the state-of-the-world protocol of Envoy's xDS. The proxy opens it with a
// Request naming its node and the version it has applied. The server sends a
// Response (version, nonce, content). The proxy answers with a Request that
// echoes the nonce: an ACK carries the new version, a NACK the version it
// kept and an ErrorDetail. The server sends nothing more on a stream until
// the previous Response is answered, and then only a version that differs
// from what the proxy acknowledged or rejected, so a slow proxy skips the
// versions published in the meantime rather than queueing them, and a
// version a proxy rejected is not sent to it again.
//
// There is no protoc in Palisade's build, so the service is declared by hand
// (a grpc.ServiceDesc) and its messages are plain Go structs carried by a
// JSON codec registered with google.golang.org/grpc/encoding under the name
// "palisade-json" (the content-subtype on the wire). JSON costs a little in
// size — byte fields are base64 — which the payload's own gzip compression
// (above 8 KiB) more than recovers, and the server encodes and compresses
// each version once, however many proxies it is sent to.
//
// # Guarantees
//
// A Response is one gRPC message: a proxy either has all of a version or
// none of it. The proxy's Apply callback builds its engine and swaps it in
// only when that succeeded, so a failed update leaves the previous version
// enforced; the proxy reports the failure as a NACK, which the server shows
// in Status. While the server is unreachable the proxy keeps enforcing the
// last version it applied and reconnects with exponential backoff.
//
// Both ends authenticate with SPIFFE X.509-SVIDs: the server accepts any
// proxy of its trust domain, a proxy accepts only the server's SPIFFE ID.
//
// The server keeps its previous version when its sources cannot be read as a
// whole (a missing directory, an unreadable file), since publishing the rest
// would silently drop policy. A document that is read but fails to decode is
// left out and logged, as `palisade check` leaves it out.
package controlplane
