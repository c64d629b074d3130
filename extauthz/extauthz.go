// Package extauthz is idgate's Envoy external authorization server: the
// gRPC service envoy.service.auth.v3.Authorization (NewServer,
// NewGRPCServer), which Istio's CUSTOM action calls through an
// envoyExtAuthzGrpc extension provider, and Envoy's HTTP service mode
// (HTTPHandler, under /envoy).
//
// Both turn the check into request.Attributes, let the engine decide,
// and turn the decision into Envoy's answer: allowed, with the identity
// headers to set on the upstream request and the headers to remove; or
// denied, with the status (401 or 403), body and headers the client
// receives. A denial is always an answer, never a failed call, so that
// Envoy cannot fail open on it. docs/extauthz.md has the Istio and Envoy
// configuration.
package extauthz

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/idgate/idgate/authn"
)

// externalAddressHeader is the header in which an Envoy at the edge
// (use_remote_address: true, as on Istio gateways) passes the client
// address it trusts: the result of its own xff_num_trusted_hops, which
// Istio sets from numTrustedProxies. Envoy replaces any value a client
// sent.
const externalAddressHeader = "X-Envoy-External-Address"

// Options configure the gRPC server and the HTTP handler.
type Options struct {
	// TrustedProxies is --trusted-proxies: how many proxies, counting
	// Envoy itself, are believed about the client's address. 0 believes
	// no header: remote.ip is source.ip. From 1 on, remote.ip is Envoy's
	// x-envoy-external-address when it sends one, else that many entries
	// from the right of X-Forwarded-For ending with the address Envoy
	// received the request from (request.ProxiedAddrs). Set it to Istio's
	// numTrustedProxies + 1.
	TrustedProxies int
	// MaxMessageBytes bounds a gRPC CheckRequest (and response); zero
	// means DefaultMaxMessageBytes.
	MaxMessageBytes int
	// Logger receives a line for every check that cannot be decided and
	// for internal errors; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultMaxMessageBytes is the default bound of a gRPC message: Envoy
// sends at most 60 KiB of headers by default (96 KiB at most), plus the
// body when with_request_body is set.
const DefaultMaxMessageBytes = 1 << 20

func (o Options) withDefaults() Options {
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// externalAddress returns remote.ip given Envoy's
// x-envoy-external-address header value: that address when Envoy is
// trusted (trusted >= 1) and it is one, else remote unchanged.
func externalAddress(remote netip.Addr, header string, trusted int) netip.Addr {
	if trusted <= 0 || header == "" {
		return remote
	}
	if ip, err := netip.ParseAddr(strings.TrimSpace(header)); err == nil {
		return ip.Unmap()
	}
	return remote
}

// headersToRemove returns the lower-case names of the headers Envoy must
// remove from the upstream request: the removals of c, except the headers
// c sets. Those are overwritten, which replaces a client's copy; removing
// them too could drop idgate's value, as Envoy applies removals after
// additions.
func headersToRemove(c authn.Changes) []string {
	var out []string
	for _, name := range c.RemoveHeaders {
		if slices.ContainsFunc(c.SetHeaders, func(h authn.Header) bool { return strings.EqualFold(h.Name, name) }) {
			continue
		}
		if out == nil {
			out = make([]string, 0, len(c.RemoveHeaders))
		}
		out = append(out, strings.ToLower(name))
	}
	return out
}
