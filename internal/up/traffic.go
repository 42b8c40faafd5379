package up

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/palisade-security/palisade/internal/authz"
	"github.com/palisade-security/palisade/internal/config"
	"github.com/palisade-security/palisade/internal/engine"
	"github.com/palisade-security/palisade/internal/jwtauth"
)

// Call is one piece of traffic a demo sends: a request or a connection
// from one workload to another, through the source's proxy.
type Call struct {
	Line     int
	From, To string // namespace/name
	Port     uint16
	// Method and Path make it an HTTP request; empty for a connection.
	Method, Path string
	// Token says what Authorization header to send: "" none, "forged" a
	// token signed by an unknown key, or claims "k=v,k=v" for a valid
	// token from the destination's first issuer (sub defaults to
	// "user-demo").
	Token string
}

func (c Call) String() string {
	s := fmt.Sprintf("%s -> %s:%d", c.From, c.To, c.Port)
	if c.Method != "" {
		s += " " + c.Method + " " + c.Path
	} else {
		s += " TCP"
	}
	switch c.Token {
	case "":
	case "forged":
		s += " (forged token)"
	default:
		s += " (token " + c.Token + ")"
	}
	return s
}

// ParseTraffic reads a traffic file: one call a line,
//
//	FROM TO PORT [METHOD PATH] [token|token:CLAIMS|forged]
//
// with # comments. name names the file in errors.
func ParseTraffic(name string, data []byte) ([]Call, error) {
	var calls []Call
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want FROM TO PORT [METHOD PATH] [token]", name, n)
		}
		port, err := strconv.ParseUint(f[2], 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("%s:%d: port %q", name, n, f[2])
		}
		c := Call{Line: n, From: f[0], To: f[1], Port: uint16(port)}
		rest := f[3:]
		if len(rest) > 0 && rest[0] != "forged" && rest[0] != "token" && !strings.HasPrefix(rest[0], "token:") {
			if len(rest) < 2 {
				return nil, fmt.Errorf("%s:%d: a method needs a path", name, n)
			}
			c.Method, c.Path, rest = rest[0], rest[1], rest[2:]
		}
		if len(rest) > 1 {
			return nil, fmt.Errorf("%s:%d: unexpected %q", name, n, rest[1])
		}
		if len(rest) == 1 {
			switch {
			case rest[0] == "forged":
				c.Token = "forged"
			case rest[0] == "token":
				c.Token = "sub=user-demo"
			default:
				c.Token = strings.TrimPrefix(rest[0], "token:")
				if c.Token == "" {
					return nil, fmt.Errorf("%s:%d: token: needs claims", name, n)
				}
			}
			if c.Method == "" {
				return nil, fmt.Errorf("%s:%d: a token needs an HTTP request", name, n)
			}
		}
		calls = append(calls, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return calls, nil
}

// Issuer stands in for the identity providers RequestAuthentications
// name: it signs tokens for any of their issuers with one key, which the
// engines are given as the JWKS of every jwksUri.
type Issuer struct {
	key    *rsa.PrivateKey
	forged *rsa.PrivateKey
	Keys   *jwtauth.Fetcher
}

// NewIssuer makes the key and registers it for every jwksUri of snap.
func NewIssuer(snap *config.Snapshot) (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	forged, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	is := &Issuer{key: key, forged: forged, Keys: jwtauth.NewFetcher(nil)}
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "palisade-demo", Algorithm: "RS256", Use: "sig"}}}
	for _, r := range snap.RequestAuthentications {
		for _, rule := range r.Spec.GetJwtRules() {
			if uri := rule.GetJwksUri(); uri != "" {
				is.Keys.AddStatic(uri, set)
			}
		}
	}
	return is, nil
}

// Token signs a token for the first issuer of the RequestAuthentication
// selecting dst, with claims "k=v,k=v"; forged signs with a key nobody
// trusts.
func (is *Issuer) Token(snap *config.Snapshot, dst *config.Workload, claims string, forged bool) (string, error) {
	iss, aud := "https://palisade.demo", ""
	for _, r := range snap.RequestAuthentications {
		if r.Meta.Namespace != dst.Namespace && r.Meta.Namespace != snap.Mesh.RootNamespace() {
			continue
		}
		if !config.Selects(r.Spec.GetSelector().GetMatchLabels(), dst.Labels) || len(r.Spec.GetJwtRules()) == 0 {
			continue
		}
		rule := r.Spec.GetJwtRules()[0]
		iss = rule.GetIssuer()
		if len(rule.GetAudiences()) > 0 {
			aud = rule.GetAudiences()[0]
		}
		break
	}
	now := time.Now()
	c := map[string]any{"iss": iss, "sub": "user-demo", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if aud != "" {
		c["aud"] = aud
	}
	for _, kv := range strings.Split(claims, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			c[k] = v
		}
	}
	key := is.key
	if forged {
		key = is.forged
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "palisade-demo"))
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(c).Serialize()
}

// Result is what happened to a call on the wire, next to what the engine
// predicts for it (palisade check).
type Result struct {
	Call
	// Got is the HTTP status, "echoed" for a connection the application
	// answered, "reset" for one refused or cut.
	Got string
	// Want is the engine's prediction in the same terms, and Layer,
	// Policy and Reason what decided it.
	Want                  string
	Layer, Policy, Reason string
	Err                   error
}

// Agrees reports whether the wire matched the prediction.
func (r Result) Agrees() bool { return r.Err == nil && r.Got == r.Want }

// Drive sends every call through the mesh and predicts each with the
// engine.
func (m *Mesh) Drive(ctx context.Context, is *Issuer, calls []Call) []Result {
	out := make([]Result, 0, len(calls))
	for _, c := range calls {
		out = append(out, m.drive(ctx, is, c))
	}
	return out
}

func (m *Mesh) drive(ctx context.Context, is *Issuer, c Call) Result {
	r := Result{Call: c}
	src, dst := m.Find(c.From), m.Find(c.To)
	if src == nil || dst == nil {
		r.Err = fmt.Errorf("line %d: no workload %s", c.Line, map[bool]string{true: c.From, false: c.To}[src == nil])
		return r
	}
	addr, ok := m.Route(c.From, c.To, c.Port)
	if !ok {
		r.Err = fmt.Errorf("line %d: %s declares no TCP port %d", c.Line, c.To, c.Port)
		return r
	}
	req := engine.Request{From: src.Workload, To: dst.Workload, Port: c.Port}
	var header authz.Headers
	if c.Token != "" {
		tok, err := is.Token(m.Snapshot, dst.Workload, c.Token, c.Token == "forged")
		if err != nil {
			r.Err = err
			return r
		}
		header = authz.Headers{{Name: "authorization", Value: "Bearer " + tok}}
	}
	host := m.Engine.DefaultHost(dst.Workload)
	if c.Method != "" {
		req.HTTP = &engine.HTTPRequest{Method: c.Method, Path: c.Path, Host: host, Headers: header}
	}
	v, err := m.Engine.Check(req)
	if err != nil {
		r.Err = err
		return r
	}
	r.Layer, r.Policy, r.Reason = v.DecidedBy.Layer, v.DecidedBy.Policy, v.DecidedBy.Reason
	switch {
	case c.Method != "" && v.Status != 0:
		r.Want = strconv.Itoa(v.Status)
	case c.Method != "" && v.Allowed:
		r.Want = "200"
	case c.Method != "":
		// The network drops it; the client's proxy answers as Envoy does
		// when it cannot connect.
		r.Want = "503"
	case v.Allowed:
		r.Want = "echoed"
	default:
		r.Want = "reset"
	}
	if c.Method != "" {
		r.Got, r.Err = httpCall(ctx, addr, c.Method, c.Path, host, header)
	} else {
		r.Got, r.Err = tcpCall(ctx, addr)
	}
	return r
}

// httpCall sends one request to an outbound listener and returns its
// status, or "reset" when the connection is refused or cut.
func httpCall(ctx context.Context, addr, method, path, host string, headers authz.Headers) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr, nil)
	if err != nil {
		return "", err
	}
	// The path is sent as written, dot segments and escapes included, so
	// that the proxy's normalization is what is shown.
	req.URL.Opaque = path
	req.Host = host
	for _, h := range headers {
		req.Header.Add(h.Name, h.Value)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "reset", nil
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return strconv.Itoa(resp.StatusCode), nil
}

// tcpCall writes a line to an outbound listener and reads it back:
// "echoed" when the application answered, "reset" otherwise.
func tcpCall(ctx context.Context, addr string) (string, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return "reset", nil // the proxy refused it as soon as it accepted it
	}
	if err != nil {
		return "", err // the local listener itself is unreachable: a failure of the demo
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	const probe = "palisade\n"
	if _, err := conn.Write([]byte(probe)); err != nil {
		return "reset", nil
	}
	buf := make([]byte, len(probe))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != probe {
		return "reset", nil
	}
	return "echoed", nil
}
