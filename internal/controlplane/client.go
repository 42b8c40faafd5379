package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/palisade-security/palisade/internal/config"
)

// Defaults of the Client's reconnection backoff.
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Client is a proxy's side of the stream: it receives versions, hands each
// to Apply and acknowledges or rejects it. Set its fields, then call Run.
type Client struct {
	// Addr is the server's address, host:port.
	Addr string
	// Node is the proxy's workload, "namespace/name".
	Node string
	// SVIDs is the proxy's X.509-SVID and Bundles the trust bundles the
	// server's SVID is verified with, such as a workloadapi.X509Source.
	SVIDs   x509svid.Source
	Bundles x509bundle.Source
	// ServerID is the only SPIFFE ID the proxy accepts as its server.
	ServerID spiffeid.ID

	// Apply puts a version in force: typically it builds an engine from
	// snap and swaps it in atomically. loadErrs are the documents left out,
	// as the server left them out. If Apply returns an error it must have
	// left the previous version in force; the version is then rejected
	// (NACK) and the error shown to the server. Apply is called from one
	// goroutine at a time.
	Apply func(version string, snap *config.Snapshot, loadErrs []*config.Error) error

	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts; zero means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration

	Logger *slog.Logger // nil: no logging

	mu    sync.Mutex
	state ClientState
	hash  string // content hash of the applied version
}

// ClientState is what a Client knows of its connection and configuration.
type ClientState struct {
	Version   string // the version in force; empty before the first
	AppliedAt time.Time
	Connected bool // the server has accepted the stream, which is still open
	// LastError is the last stream error or rejected version, cleared
	// when a version is next accepted.
	LastError string
}

// Current returns the version in force: the last one applied.
func (c *Client) Current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Version
}

// State returns the client's state.
func (c *Client) State() ClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *Client) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Run keeps a stream to the server open until ctx is done, reconnecting
// with exponential backoff, and returns ctx's error. While disconnected the
// last version applied stays in force: Apply is simply not called.
func (c *Client) Run(ctx context.Context) error {
	if c.Apply == nil || c.SVIDs == nil || c.Bundles == nil || c.ServerID.IsZero() || !validNode(c.Node) {
		return errors.New("controlplane: the client needs Apply, SVIDs, Bundles, ServerID and a Node named namespace/name")
	}
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	maxB = max(maxB, minB)
	tc := tlsconfig.MTLSClientConfig(c.SVIDs, c.Bundles, tlsconfig.AuthorizeID(c.ServerID))
	tc.MinVersion = tls.VersionTLS13
	cc, err := grpc.NewClient(c.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		// gRPC's own reconnection backoff (up to 120 s by default) would
		// keep a proxy away from a restarted server for long after it is
		// back; it follows the client's bounds instead.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: minB, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxB},
			MinConnectTimeout: 5 * time.Second,
		}),
		// Pings find a server that vanished without closing the
		// connection (a partition, a dead node), so the proxy reconnects.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.CallContentSubtype(codecName)),
	)
	if err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	defer cc.Close()

	log := c.log()
	wait := minB
	for {
		accepted, err := c.stream(ctx, cc)
		c.mu.Lock()
		c.state.Connected = false
		if ctx.Err() == nil {
			c.state.LastError = err.Error()
		}
		c.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if accepted {
			// The stream worked, so the server was back to normal: start
			// the backoff again from its minimum.
			wait = minB
		}
		// A random half of the wait is dropped, which spreads a fleet's
		// reconnections after a server restart instead of bringing them
		// all back at one instant.
		d := wait/2 + rand.N(wait/2+1)
		log.Info("policy stream closed; reconnecting", "err", err, "in", d.Round(time.Millisecond), "version", c.Current())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		wait = min(wait*2, maxB)
	}
}

// stream runs one stream until it fails; accepted says whether the server
// accepted it (sent its headers).
func (c *Client) stream(ctx context.Context, cc *grpc.ClientConn) (accepted bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := cc.NewStream(ctx, &serviceDesc.Streams[0], fullMethod)
	if err != nil {
		return false, err
	}
	if err := st.SendMsg(&Request{Node: c.Node, VersionInfo: c.Current()}); err != nil {
		return false, streamErr(st, err)
	}
	// The server sends its headers once it has accepted the stream, which
	// a sent request does not show: with TLS 1.3 the server may still
	// refuse the proxy's certificate after the client's handshake is done,
	// and a server that already has nothing newer sends no Response.
	if md, err := st.Header(); err != nil || md == nil {
		return false, streamErr(st, io.EOF)
	}
	c.mu.Lock()
	c.state.Connected = true
	c.mu.Unlock()
	for {
		var resp Response
		if err := st.RecvMsg(&resp); err != nil {
			if err == io.EOF {
				err = errors.New("the server closed the stream")
			}
			return true, err
		}
		req := c.handle(&resp)
		if err := st.SendMsg(&req); err != nil {
			return true, streamErr(st, err)
		}
	}
}

// streamErr turns the io.EOF of a failed SendMsg into the stream's status.
func streamErr(st grpc.ClientStream, err error) error {
	if err != io.EOF {
		return err
	}
	var resp Response
	if rerr := st.RecvMsg(&resp); rerr != nil && rerr != io.EOF {
		return rerr
	}
	return errors.New("the server closed the stream")
}

// handle applies a Response and returns the answer: an ACK with its
// version, or a NACK with the version kept.
func (c *Client) handle(resp *Response) Request {
	log := c.log().With("version", resp.Version)
	nack := func(err error) Request {
		kept := c.Current()
		c.mu.Lock()
		c.state.LastError = fmt.Sprintf("version %s rejected: %v", resp.Version, err)
		c.mu.Unlock()
		log.Error("policy version rejected; the previous one stays in force", "err", err, "kept", kept)
		return Request{Node: c.Node, VersionInfo: kept, ResponseNonce: resp.Nonce, ErrorDetail: err.Error()}
	}
	docs, values, err := resp.content()
	if err != nil {
		return nack(err)
	}
	hash := contentHash(docs, values)
	if want := versionHash(resp.Version); want == "" || hash[:versionHashLen] != want {
		return nack(fmt.Errorf("content does not match version %q", resp.Version))
	}
	c.mu.Lock()
	same := hash == c.hash
	c.mu.Unlock()
	if !same {
		// Content already in force (a restarted server numbers its
		// versions anew) is not applied again.
		snap, loadErrs := ParseDocuments(docs, values)
		if err := c.apply(resp.Version, snap, loadErrs); err != nil {
			return nack(err)
		}
	}
	c.mu.Lock()
	c.state.Version, c.state.AppliedAt, c.hash = resp.Version, time.Now(), hash
	c.state.LastError = ""
	c.mu.Unlock()
	log.Info("policy version applied", "documents", len(docs), "unchanged", same)
	return Request{Node: c.Node, VersionInfo: resp.Version, ResponseNonce: resp.Nonce}
}

// apply calls Apply, turning a panic into a rejection: the previous version
// is still in force, which is better than a proxy that crashes and enforces
// nothing.
func (c *Client) apply(version string, snap *config.Snapshot, loadErrs []*config.Error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("apply panicked: %v", r)
		}
	}()
	return c.Apply(version, snap, loadErrs)
}
