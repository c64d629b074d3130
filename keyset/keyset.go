// Package keyset supplies the public keys tokens are verified with: inline
// JWK Sets, JWKS files, JWKS URIs and OIDC discovery, cached and refreshed
// in the background, served stale while the identity provider is down.
//
// A Set fetches its keys the first time they are asked for, refreshes them
// every RefreshInterval (in the background once Start is called), fetches
// again when a token names an unknown kid (Refresh, at most once per
// MinRefreshInterval, one fetch for any number of concurrent callers), and
// never replaces keys that work with an empty or unreadable key set: while
// fetches fail, the last good keys are served for up to MaxStale.
package keyset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idgate/idgate/token"
)

// The defaults for Config's durations.
const (
	DefaultRefreshInterval    = 20 * time.Minute
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
	DefaultMaxStale           = 24 * time.Hour
)

// ErrStale is wrapped by the error Keys returns when the last good keys are
// older than MaxStale because every fetch since has failed.
var ErrStale = errors.New("keyset: keys are stale")

// ErrClosed is returned by a closed Set that has no keys to serve, and by
// a closed Registry's Get.
var ErrClosed = errors.New("keyset: closed")

// Config says where one key set comes from and how it is kept fresh.
// Exactly one of JWKS, File, JWKSURI or Issuer (with Discovery) is set.
//
// URLs, including a discovered jwks_uri, must be absolute https URLs without
// credentials; plain http is accepted only for loopback hosts (localhost,
// 127.0.0.0/8, ::1), for a local identity provider or tests.
type Config struct {
	// JWKS is an inline JWK Set (Istio's jwtRules[].jwks). It is parsed
	// by New and never changes.
	JWKS []byte
	// File is the path of a JWK Set file, read like a JWKS URI is fetched
	// (so a rotated file is picked up on refresh).
	File string
	// JWKSURI is the URL of a JWK Set (Istio's jwtRules[].jwksUri).
	JWKSURI string
	// Issuer, with Discovery, finds the JWKS URI through the issuer's
	// discovery document (see DiscoveryURL), whose "issuer" must equal
	// Issuer exactly. An Entra multi-tenant issuer containing
	// [token.TenantPlaceholder] is looked up at the tenant-independent
	// document.
	Issuer    string
	Discovery bool

	// Client makes the fetches; nil means a client of the Set's own that
	// follows redirects only to the same scheme and host. A Client given
	// here is used as it is.
	Client *http.Client
	// RefreshInterval is how often keys are fetched again (default 20m,
	// as istiod). After a failed fetch the next try comes after
	// MinRefreshInterval, doubling with each failure up to
	// RefreshInterval.
	RefreshInterval time.Duration
	// MinRefreshInterval bounds fetches asked for by Refresh (unknown
	// kids) and by Keys while there are no keys: at most one per
	// interval (default 30s).
	MinRefreshInterval time.Duration
	// FetchTimeout bounds one fetch, discovery document and JWK Set
	// together (default 5s).
	FetchTimeout time.Duration
	// MaxStale is how long after the last successful fetch its keys keep
	// being served while fetches fail (default 24h); it may not be
	// shorter than RefreshInterval.
	MaxStale time.Duration
	// Logger receives refresh failures and stale-serving notices; nil
	// means slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told about every fetch (for metrics).
	Observer Observer

	// now is the clock for fetch times and intervals; nil means time.Now.
	now func() time.Time
}

// Observer is told about every fetch of a Set, typically to export metrics.
// source is Status.Source. The methods are called after the Set's state
// has changed (so Status already shows the fetch) and must not block.
type Observer interface {
	// Fetched reports a fetch that returned keys (keys is their count).
	Fetched(source string, keys int, took time.Duration)
	// FetchFailed reports a fetch that failed; the Set keeps its keys.
	FetchFailed(source string, err error, took time.Duration)
}

// Status is a snapshot of a Set, for health checks and metrics.
type Status struct {
	// Source names where keys come from: the JWKS URI, the file, the
	// issuer (discovery) or "inline JWKS".
	Source string
	// JWKSURI is the URL the keys were last fetched from (the discovered
	// one for discovery); empty for files and inline keys.
	JWKSURI string
	// Ready is true when Keys returns keys without fetching: they were
	// fetched (or are inline) and are not older than MaxStale.
	Ready bool
	// Keys is the number of keys last fetched successfully.
	Keys int
	// Fetches counts fetches made; Failures those that failed.
	Fetches  int64
	Failures int64
	// LastFetch is when the latest fetch began, LastSuccess when a fetch
	// last succeeded; zero if none.
	LastFetch   time.Time
	LastSuccess time.Time
	// LastError is why the latest fetch failed; nil if it succeeded.
	LastError error
	// StaleSince is when fetches began failing while keys were being
	// served from an earlier fetch; zero while the keys are fresh.
	StaleSince time.Time
}

// Stale reports whether the keys are served from before a failed fetch.
func (st Status) Stale() bool { return !st.StaleSince.IsZero() }

// Set is a cached, refreshed key set. It implements token.KeySource and is
// safe for concurrent use.
type Set struct {
	cfg          Config // defaults applied
	source       string
	discoveryURL string
	client       *http.Client
	ownClient    bool
	now          func() time.Time
	log          *slog.Logger
	static       []token.Key // inline keys; nil for fetched sources

	ctx    context.Context // parent of every fetch; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // fetches and the background refresher

	mu          sync.Mutex
	keys        []token.Key // last good keys; nil before the first
	jwksURI     string
	skipped     []token.SkippedKey // members of the last good set left out
	inflight    *fetchCall
	running     bool // the background refresher is running
	closed      bool
	lastAttempt time.Time
	lastSuccess time.Time
	lastErr     error
	staleSince  time.Time
	fetches     int64
	failures    int64
	failStreak  int
}

// fetchCall is one fetch in flight; done is closed when it has finished
// and the Set's state shows its result.
type fetchCall struct {
	done chan struct{}
}

var _ token.KeySource = (*Set)(nil)

// New returns a key set for cfg after checking it: exactly one source,
// usable URLs, positive durations. Inline keys are parsed here; nothing is
// fetched or read yet.
func New(cfg Config) (*Set, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Set{cfg: cfg, source: cfg.source(), now: cfg.now, log: cfg.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if len(cfg.JWKS) > 0 {
		l, err := parseKeys("inline JWKS", cfg.JWKS)
		if err != nil {
			return nil, err
		}
		s.static = l.keys
		s.logSkipped(l.skipped)
		return s, nil
	}
	if cfg.Discovery {
		u, err := DiscoveryURL(cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("keyset: %w", err)
		}
		s.discoveryURL = u
	}
	s.client = cfg.Client
	if s.client == nil {
		s.client, s.ownClient = newClient(), true
	}
	return s, nil
}

// validate checks cfg and fills in default durations.
func (cfg *Config) validate() error {
	var sources []string
	if len(cfg.JWKS) > 0 {
		sources = append(sources, "JWKS")
	}
	if cfg.File != "" {
		sources = append(sources, "File")
	}
	if cfg.JWKSURI != "" {
		sources = append(sources, "JWKSURI")
	}
	if cfg.Discovery {
		sources = append(sources, "Discovery")
	}
	switch {
	case cfg.Discovery && cfg.Issuer == "":
		return errors.New("keyset: Discovery needs an Issuer")
	case !cfg.Discovery && cfg.Issuer != "":
		return errors.New("keyset: Issuer is only used with Discovery; set Discovery to find keys through the issuer's discovery document")
	case len(sources) == 0:
		return errors.New("keyset: no key source: set one of JWKS, File, JWKSURI or Issuer with Discovery")
	case len(sources) > 1:
		return fmt.Errorf("keyset: more than one key source (%s); set exactly one", strings.Join(sources, ", "))
	}
	if cfg.JWKSURI != "" {
		if err := checkURL(cfg.JWKSURI); err != nil {
			return fmt.Errorf("keyset: JWKSURI: %w", err)
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RefreshInterval", &cfg.RefreshInterval, DefaultRefreshInterval},
		{"MinRefreshInterval", &cfg.MinRefreshInterval, DefaultMinRefreshInterval},
		{"FetchTimeout", &cfg.FetchTimeout, DefaultFetchTimeout},
		{"MaxStale", &cfg.MaxStale, DefaultMaxStale},
	} {
		if *d.v < 0 {
			return fmt.Errorf("keyset: %s %s is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.MaxStale < cfg.RefreshInterval {
		return fmt.Errorf("keyset: MaxStale %s is shorter than RefreshInterval %s", cfg.MaxStale, cfg.RefreshInterval)
	}
	return nil
}

// source names where cfg's keys come from (Status.Source).
func (cfg *Config) source() string {
	switch {
	case len(cfg.JWKS) > 0:
		return "inline JWKS"
	case cfg.File != "":
		return cfg.File
	case cfg.JWKSURI != "":
		return cfg.JWKSURI
	default:
		return cfg.Issuer
	}
}

// Keys returns the current keys, fetching them when there are none yet (or
// they are older than MaxStale). Without a background refresher (Start),
// keys older than RefreshInterval are still returned while a fetch
// replaces them. The returned slice is shared and must not be modified.
//
// The error names the source and the cause: the first fetch failed, keys
// are older than MaxStale (ErrStale), or ctx ended while waiting for a
// fetch (which carries on for other callers).
func (s *Set) Keys(ctx context.Context) ([]token.Key, error) {
	if s.static != nil {
		return s.static, nil
	}
	s.mu.Lock()
	now := s.now()
	if s.usableLocked(now) {
		if !s.running && !s.closed && s.inflight == nil && !now.Before(s.dueLocked()) {
			s.startLocked(now)
		}
		keys := s.keys
		s.mu.Unlock()
		return keys, nil
	}
	c := s.fetchLocked(now)
	s.mu.Unlock()
	return s.await(ctx, c)
}

// Refresh fetches the keys again unless a fetch began within
// MinRefreshInterval, and returns the keys known afterwards. Concurrent
// callers share one fetch. A failed fetch leaves the last good keys in
// place, and they are returned (until MaxStale).
func (s *Set) Refresh(ctx context.Context) ([]token.Key, error) {
	if s.static != nil {
		return s.static, nil
	}
	s.mu.Lock()
	c := s.fetchLocked(s.now())
	s.mu.Unlock()
	return s.await(ctx, c)
}

// Start refreshes the keys in the background until ctx ends or Close is
// called: first at once if there are none, then every RefreshInterval,
// and after a failure sooner (see Config.RefreshInterval). Calling it
// again while it runs does nothing.
func (s *Set) Start(ctx context.Context) {
	if s.static != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running || s.closed {
		return
	}
	s.running = true
	s.wg.Add(1)
	go s.run(ctx)
}

// Close stops the background refresher, cancels a fetch in flight and
// waits until both have ended. The Set keeps serving the keys it has, and
// fetches no more. Close always returns nil.
func (s *Set) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

// Status returns a snapshot of the Set's state.
func (s *Set) Status() Status {
	if s.static != nil {
		return Status{Source: s.source, Ready: true, Keys: len(s.static)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{
		Source:      s.source,
		JWKSURI:     s.jwksURI,
		Ready:       s.usableLocked(s.now()),
		Keys:        len(s.keys),
		Fetches:     s.fetches,
		Failures:    s.failures,
		LastFetch:   s.lastAttempt,
		LastSuccess: s.lastSuccess,
		LastError:   s.lastErr,
		StaleSince:  s.staleSince,
	}
}

// usableLocked reports whether there are keys not older than MaxStale.
func (s *Set) usableLocked(now time.Time) bool {
	return s.keys != nil && now.Sub(s.lastSuccess) <= s.cfg.MaxStale
}

// dueLocked returns when the next scheduled fetch is due: at once before
// the first, RefreshInterval after a success, and after a failure a
// backoff that starts at MinRefreshInterval and doubles up to
// RefreshInterval.
func (s *Set) dueLocked() time.Time {
	switch {
	case s.lastAttempt.IsZero():
		return time.Time{}
	case s.lastErr == nil:
		return s.lastSuccess.Add(s.cfg.RefreshInterval)
	}
	wait := s.cfg.MinRefreshInterval
	for i := 1; i < s.failStreak && wait < s.cfg.RefreshInterval; i++ {
		wait *= 2
	}
	return s.lastAttempt.Add(min(wait, s.cfg.RefreshInterval))
}

// fetchLocked returns the fetch in flight, or starts one unless one began
// within MinRefreshInterval or the Set is closed (then it returns nil).
func (s *Set) fetchLocked(now time.Time) *fetchCall {
	if s.inflight != nil {
		return s.inflight
	}
	if s.closed || (!s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.cfg.MinRefreshInterval) {
		return nil
	}
	return s.startLocked(now)
}

// startLocked starts a fetch; the Set must not be closed and have none in
// flight.
func (s *Set) startLocked(now time.Time) *fetchCall {
	c := &fetchCall{done: make(chan struct{})}
	s.inflight = c
	s.lastAttempt = now
	s.wg.Add(1)
	go s.fetch(c)
	return c
}

// await waits for c (if any) and returns the keys known afterwards.
func (s *Set) await(ctx context.Context, c *fetchCall) ([]token.Key, error) {
	if c != nil {
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("keyset: waiting for keys from %s: %w", s.source, context.Cause(ctx))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch {
	case s.usableLocked(now):
		return s.keys, nil
	case s.keys != nil:
		err := fmt.Errorf("%w: keys from %s were last fetched %s ago, longer than MaxStale %s",
			ErrStale, s.source, now.Sub(s.lastSuccess).Round(time.Second), s.cfg.MaxStale)
		if s.lastErr != nil {
			err = fmt.Errorf("%w; last fetch: %w", err, s.lastErr)
		}
		return nil, err
	case s.lastErr != nil:
		return nil, s.lastErr
	case s.closed:
		return nil, ErrClosed
	default:
		// Unreachable: a fetch that ended without keys left an error.
		return nil, fmt.Errorf("keyset: no keys from %s", s.source)
	}
}

// run is the background refresher started by Start.
func (s *Set) run(ctx context.Context) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		now := s.now()
		c, wait := s.inflight, s.dueLocked().Sub(now)
		if c == nil && wait <= 0 {
			c = s.startLocked(now)
		}
		s.mu.Unlock()

		if c != nil {
			select {
			case <-c.done:
				continue
			case <-ctx.Done():
				return
			case <-s.ctx.Done():
				return
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

// fetch runs one fetch for c and records its result.
//
// Waiters are released (c.done) only after the result is logged and
// observed, so that whoever sees the new state can also see those.
func (s *Set) fetch(c *fetchCall) {
	defer s.wg.Done()
	defer close(c.done)
	began := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FetchTimeout)
	l, err := s.load(ctx)
	cancel()
	took := time.Since(began)

	s.mu.Lock()
	if err != nil && s.ctx.Err() != nil {
		// Cancelled by Close: not the identity provider's failure.
		s.inflight = nil
		s.mu.Unlock()
		return
	}
	now := s.now()
	prev, prevErr, staleSince := s.keys, s.lastErr, s.staleSince
	skippedChanged := err == nil && !slices.Equal(l.skipped, s.skipped)
	s.fetches++
	s.inflight = nil
	if err == nil {
		s.keys, s.jwksURI, s.skipped = l.keys, l.jwksURI, l.skipped
		s.lastSuccess, s.lastErr, s.staleSince, s.failStreak = now, nil, time.Time{}, 0
	} else {
		s.failures++
		s.failStreak++
		s.lastErr = err
		if s.keys != nil && s.staleSince.IsZero() {
			s.staleSince = now
		}
	}
	lastSuccess, nowStale, serving := s.lastSuccess, s.staleSince, s.usableLocked(now)
	s.mu.Unlock()

	if err != nil {
		switch {
		case serving:
			s.log.Warn("keyset: refresh failed; serving the last good keys",
				"source", s.source, "error", err, "keys", len(prev),
				"last_success", lastSuccess, "stale_since", nowStale,
				"max_stale", s.cfg.MaxStale)
		case prev != nil:
			s.log.Error("keyset: refresh failed and the last good keys are older than MaxStale; tokens cannot be verified until a fetch succeeds",
				"source", s.source, "error", err, "last_success", lastSuccess, "max_stale", s.cfg.MaxStale)
		default:
			s.log.Error("keyset: fetching keys failed; tokens cannot be verified until a fetch succeeds",
				"source", s.source, "error", err)
		}
		if s.cfg.Observer != nil {
			s.cfg.Observer.FetchFailed(s.source, err, took)
		}
		return
	}
	if skippedChanged {
		s.logSkipped(l.skipped)
	}
	switch added, removed := kidDiff(prev, l.keys); {
	case prev == nil:
		s.log.Info("keyset: keys fetched", "source", s.source, "jwks_uri", l.jwksURI, "kids", kids(l.keys))
	case prevErr != nil:
		s.log.Info("keyset: keys fetched again after failures", "source", s.source,
			"stale_for", now.Sub(staleSince).Round(time.Second), "added", added, "removed", removed)
	case len(added) > 0 || len(removed) > 0:
		s.log.Info("keyset: keys changed", "source", s.source, "added", added, "removed", removed)
	default:
		s.log.Debug("keyset: keys refreshed", "source", s.source, "keys", len(l.keys))
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.Fetched(s.source, len(l.keys), took)
	}
}

// logSkipped logs the JWK Set members that were left out, if any.
func (s *Set) logSkipped(skipped []token.SkippedKey) {
	if len(skipped) == 0 {
		return
	}
	why := make([]string, len(skipped))
	for i, k := range skipped {
		why[i] = k.String()
	}
	s.log.Warn("keyset: JWK Set members left out", "source", s.source, "skipped", why)
}

// kids returns the key IDs of keys, for logs.
func kids(keys []token.Key) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

// kidDiff returns the key IDs in next but not in prev, and those in prev
// but not in next.
func kidDiff(prev, next []token.Key) (added, removed []string) {
	p, n := kids(prev), kids(next)
	for _, id := range n {
		if !slices.Contains(p, id) {
			added = append(added, id)
		}
	}
	for _, id := range p {
		if !slices.Contains(n, id) {
			removed = append(removed, id)
		}
	}
	return added, removed
}
