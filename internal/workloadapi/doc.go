// Package workloadapi is the node agent's SPIFFE Workload API endpoint: the
// gRPC server that hands workloads their X.509-SVIDs, JWT-SVIDs and trust
// bundles, and the Unix workload attestor that decides who is asking.
//
// The server speaks the upstream protocol unchanged, so any SPIFFE client
// (go-spiffe, the spire-agent CLI, Envoy) works against it:
//
//   - The service is registered under its upstream name SpiffeWorkloadAPI from
//     go-spiffe's generated code, because the proto has no package statement
//     and clients call /SpiffeWorkloadAPI/<Method> (workloadapi.proto).
//   - Callers are not asked to authenticate (Workload Endpoint spec §5: the
//     endpoint MUST NOT require client authentication). Instead the kernel
//     tells us who connected: SO_PEERCRED on the unix socket gives the PID,
//     UID and GID, and /proc/<pid>/stat the process start time, which is
//     checked again before answering so that a PID recycled to another
//     process is never attested in the caller's place (SPIRE's peertracker).
//   - Every Workload API call must carry the metadata workload.spiffe.io:
//     true, otherwise InvalidArgument (Workload Endpoint spec §3 and §6),
//     which keeps an SSRF-style request from fetching identities. As in
//     SPIRE, health and reflection calls are exempt.
//   - A caller without any identity gets PermissionDenied, which clients
//     retry with backoff (Workload API spec §5.2.1, §6.2.1), for the bundle
//     streams too, as SPIRE does by default.
//   - Streams send the full state at once and then again on every change,
//     after a small random delay so that a rotation does not make every
//     workload on the node reload at the same instant (Workload API spec
//     §4.3).
//   - grpc.health.v1 reports SERVING (what `spire-agent healthcheck` probes)
//     and gRPC server reflection is on (Workload Endpoint spec §7).
//
// What the workload is entitled to comes from a Cache, which the agent
// implements; an Attestor turns the caller's process into selectors, and
// UnixAttestor is the one for plain Unix processes.
package workloadapi
