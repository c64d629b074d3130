// Package request defines the attributes of one request as every part of
// idgate sees it: the front ends fill them in, the engine decides on them.
package request

import (
	"net/http"
	"net/netip"
)

// Attributes are the facts about one request that authentication and
// authorization may look at. Front ends fill them in from their protocol;
// nothing in them has been authenticated.
type Attributes struct {
	// Method is the HTTP method exactly as received (case preserved).
	Method string
	// Scheme is "http" or "https".
	Scheme string
	// Host is the authority (":authority" or Host header) as received,
	// including a port when the client sent one.
	Host string
	// Path is the normalized request path, without the query string: what
	// NormalizePath returns for the request target. Front ends call
	// NormalizePath, reject the request when it fails, and forward exactly
	// this path upstream, so that the path authorized is the path served.
	Path string
	// Query is the raw query string, without the leading '?'.
	Query string
	// Header holds the request headers with canonical keys
	// (textproto.CanonicalMIMEHeaderKey). Front ends that receive
	// lower-case names convert them.
	Header http.Header

	// SourceIP is the address of the direct peer (the TCP connection);
	// Istio's source.ip, matched by ipBlocks.
	SourceIP netip.Addr
	// RemoteIP is the original client address after applying the
	// trusted-proxy rules to X-Forwarded-For; Istio's remote.ip, matched by
	// remoteIpBlocks. It equals SourceIP when no trusted proxy applies.
	RemoteIP netip.Addr
	// DestinationIP and DestinationPort are where the request arrived
	// (destination.ip, destination.port).
	DestinationIP   netip.Addr
	DestinationPort int

	// SNI is the TLS server name the client asked for (connection.sni),
	// empty without TLS.
	SNI string
	// SourcePrincipal is the peer's authenticated workload identity
	// (source.principal, e.g. "cluster.local/ns/foo/sa/bar"), empty when
	// the peer is not authenticated by mutual TLS.
	SourcePrincipal string
	// SourceNamespace is the namespace part of SourcePrincipal
	// (source.namespace), empty when unknown.
	SourceNamespace string

	// RequestID is the id that ties the response to its audit record
	// (RequestID gives it; front ends echo it in RequestIDHeader).
	RequestID string
	// Frontend names the front end that received the request ("proxy",
	// "extauthz-grpc", "extauthz-http", "nginx", "forward-auth", or
	// "test" for offline commands), for audit records and metrics.
	Frontend string
}
