package controlplane

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// Request is what a proxy sends: first to open the stream, then to answer
// every Response.
type Request struct {
	// Node is the proxy's workload, "namespace/name".
	Node string `json:"node"`
	// VersionInfo is the version the proxy has applied: on an ACK the one
	// just received, on a NACK the one it kept; empty before any.
	VersionInfo string `json:"versionInfo,omitempty"`
	// ResponseNonce is the Nonce of the Response answered; empty on the
	// stream's first request.
	ResponseNonce string `json:"responseNonce,omitempty"`
	// ErrorDetail makes the answer a NACK: why the version was not applied.
	ErrorDetail string `json:"errorDetail,omitempty"`
}

// Response is one version of the configuration, whole.
type Response struct {
	Version string `json:"version"`
	// Nonce identifies this Response on its stream; the answer echoes it.
	Nonce string `json:"nonce"`
	// Documents are the source files, in the order the server read them.
	Documents []Document `json:"documents,omitempty"`
	// CiliumValues is the Cilium Helm values file, if the server has one.
	CiliumValues *Document `json:"ciliumValues,omitempty"`
	// Compressed, when set, replaces Documents and CiliumValues: it is a
	// gzip-compressed JSON Bundle holding them. The server compresses
	// content larger than compressAbove.
	Compressed []byte `json:"compressed,omitempty"`
}

// Document is one source file: its name as the server read it (so that
// positions in errors point at it) and its raw bytes.
type Document struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// Bundle is the content of a Response, as compressed in Response.Compressed.
type Bundle struct {
	Documents    []Document `json:"documents,omitempty"`
	CiliumValues *Document  `json:"ciliumValues,omitempty"`
}

const (
	serviceName = "palisade.controlplane.v1.Policy"
	streamName  = "Stream"
	fullMethod  = "/" + serviceName + "/" + streamName

	// codecName is the gRPC content-subtype of the JSON codec. It is not
	// plain "json" so that another package registering a different JSON
	// codec under that common name cannot change this protocol's encoding.
	codecName = "palisade-json"

	// compressAbove is the content size from which Responses are
	// compressed: below it gzip saves less than it costs.
	compressAbove = 8 << 10
	// maxMessage bounds one message on the wire; maxContent bounds the
	// content once decompressed. Config reads files of up to 64 MiB.
	maxMessage = 64 << 20
	maxContent = 256 << 20
)

// jsonCodec carries Requests and Responses as JSON: there is no protoc in
// Palisade's build to generate protobuf messages (see the package comment).
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return codecName }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// policyService is the handler type the service descriptor names; Server
// implements it.
type policyService interface {
	handleStream(grpc.ServerStream) error
}

// serviceDesc declares the service as protoc would have generated it from
//
//	service Policy { rpc Stream(stream Request) returns (stream Response); }
var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*policyService)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    streamName,
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(policyService).handleStream(stream)
		},
	}},
	Metadata: "palisade/controlplane/v1/policy (hand-written, JSON codec)",
}

// contentHash is the hex SHA-256 of the content: every name and every byte,
// each length-prefixed so that no two different contents hash alike.
func contentHash(docs []Document, values *Document) string {
	h := sha256.New()
	io.WriteString(h, "palisade.controlplane.v1\n")
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, d := range docs {
		field([]byte("document"))
		field([]byte(d.Name))
		field(d.Data)
	}
	if values != nil {
		field([]byte("cilium-values"))
		field([]byte(values.Name))
		field(values.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// versionHashLen is how much of the content hash a version ID carries:
// 64 bits tell versions apart and keep the ID short in logs.
const versionHashLen = 16

func versionID(n uint64, hash string) string {
	return fmt.Sprintf("%d-%s", n, hash[:versionHashLen])
}

// versionHash returns the hash part of a version ID, or "" if it has none.
func versionHash(id string) string {
	_, h, ok := strings.Cut(id, "-")
	if !ok || len(h) != versionHashLen {
		return ""
	}
	return h
}

// newResponse builds the Response for a version, without its nonce,
// compressing large content.
func newResponse(version string, docs []Document, values *Document) (Response, error) {
	size := 0
	for _, d := range docs {
		size += len(d.Name) + len(d.Data)
	}
	if values != nil {
		size += len(values.Name) + len(values.Data)
	}
	if size <= compressAbove {
		return Response{Version: version, Documents: docs, CiliumValues: values}, nil
	}
	raw, err := json.Marshal(Bundle{Documents: docs, CiliumValues: values})
	if err != nil {
		return Response{}, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return Response{}, err
	}
	if err := zw.Close(); err != nil {
		return Response{}, err
	}
	return Response{Version: version, Compressed: buf.Bytes()}, nil
}

// content returns the documents of a Response, decompressing them if need
// be.
func (r *Response) content() ([]Document, *Document, error) {
	if r.Compressed == nil {
		return r.Documents, r.CiliumValues, nil
	}
	if len(r.Documents) > 0 || r.CiliumValues != nil {
		return nil, nil, errors.New("response has both compressed and plain documents")
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.Compressed))
	if err != nil {
		return nil, nil, fmt.Errorf("compressed documents: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxContent+1))
	if err != nil {
		return nil, nil, fmt.Errorf("compressed documents: %w", err)
	}
	if len(raw) > maxContent {
		return nil, nil, fmt.Errorf("compressed documents: more than %d bytes", maxContent)
	}
	var b Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, nil, fmt.Errorf("compressed documents: %w", err)
	}
	return b.Documents, b.CiliumValues, nil
}
