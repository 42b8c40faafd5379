// Package proxy is Palisade's sidecar data plane: a proxy beside one
// workload that does what an Istio sidecar's Envoy does, with the
// verdicts of Palisade's engine.
//
// Inbound, on each workload port, it applies the port's PeerAuthentication
// mode (STRICT refuses plaintext, PERMISSIVE detects TLS from the first
// bytes, DISABLE takes plaintext only), terminates mutual TLS with the
// workload's X.509-SVID (fetched at every handshake, so rotation drops no
// connection), verifies the client against the trust bundle, and asks the
// engine about each HTTP request (engine.Inbound.Request: request
// normalization, Cilium's HTTP rules, JWT, authorization) or each
// connection on an opaque TCP port (engine.Inbound.Connection) before
// forwarding to the application on localhost. Denials answer as Envoy
// does: 403 "RBAC: access denied", 401 with the JWT failure, 400 for
// malformed requests, a reset for TCP.
//
// Outbound, the application connects to explicit local listeners, each
// bound to one destination. The proxy checks the network policy between
// the two workloads (engine.Outbound.Connect: the client's egress, the
// server's ingress) and answers a connection the network would drop as
// Envoy answers a failed upstream connection (503 UF, or a reset for
// TCP); it then originates mutual TLS with its SVID and
// accepts only the SPIFFE ID the destination's workload runs as (secure
// naming), and applies the DestinationRule that resolves for the
// destination's service: TLS mode, connection pool circuit breakers,
// outlier detection, and Istio's default retry policy.
//
// HTTP/1.x is served by the proxy's own loop, one goroutine per
// connection doing the request, the decision and the upstream exchange in
// turn (h1server.go, h1client.go); HTTP/2 by net/http. Sockets are read
// and written with raw system calls (sysconn.go). Both keep the thread
// wake-ups per request at the two a proxy cannot avoid: see bench/.
//
// The engine is read through Config.Policy for every connection and
// request, so a policy swap applies to the next request without
// restarting a listener. Telemetry — Istio's standard metrics, Hubble's
// verdict counter, the access, flow and audit logs — is in package
// telemetry.
package proxy
