// Package keyset supplies the public keys tokens are verified with: inline
// JWK Sets, JWKS files, JWKS URIs and OIDC discovery, cached and refreshed
// in the background, served stale while the identity provider is down.
package keyset

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/idgate/idgate/token"
)

// Config says where one key set comes from and how it is kept fresh.
// Exactly one of JWKS, File, JWKSURI or Issuer (with Discovery) is set.
type Config struct {
	// JWKS is an inline JWK Set (Istio's jwtRules[].jwks).
	JWKS []byte
	// File is the path of a JWK Set file.
	File string
	// JWKSURI is the URL of a JWK Set (Istio's jwtRules[].jwksUri).
	JWKSURI string
	// Issuer, with Discovery, finds the JWKS URI through
	// <Issuer>/.well-known/openid-configuration.
	Issuer    string
	Discovery bool

	// Client makes the fetches; nil means a client with FetchTimeout.
	Client *http.Client
	// RefreshInterval is how often keys are fetched again (default 20m).
	RefreshInterval time.Duration
	// MinRefreshInterval bounds refreshes caused by unknown kids: at most
	// one per interval (default 30s).
	MinRefreshInterval time.Duration
	// FetchTimeout bounds one fetch (default 5s).
	FetchTimeout time.Duration
	// MaxStale is how long the last good keys keep being served while
	// fetches fail (default 24h).
	MaxStale time.Duration
	// Logger receives refresh failures and stale-serving notices; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Set is a cached, refreshed key set. It implements token.KeySource.
type Set struct {
	cfg Config
}

var _ token.KeySource = (*Set)(nil)

// New returns a key set for cfg. It does not fetch anything yet.
func New(cfg Config) (*Set, error) {
	return nil, errors.New("keyset: not built yet")
}

// Keys returns the current keys, fetching them the first time.
func (s *Set) Keys(ctx context.Context) ([]token.Key, error) {
	return nil, errors.New("keyset: not built yet")
}

// Refresh fetches the keys again unless a refresh happened within
// MinRefreshInterval, and returns the keys known afterwards.
func (s *Set) Refresh(ctx context.Context) ([]token.Key, error) {
	return nil, errors.New("keyset: not built yet")
}
