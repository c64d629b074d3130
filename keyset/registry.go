package keyset

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// Registry shares key sets among rules that name the same source: every
// Get with the same JWKS URI (or file, discovery issuer, inline JWK Set)
// returns the same Set, so those rules share one cache and one fetch.
// Its zero value is not usable; call NewRegistry.
type Registry struct {
	mu      sync.Mutex
	sets    map[string]*Set
	started context.Context // non-nil once Start was called
	closed  bool
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{sets: map[string]*Set{}}
}

// Get returns the Set for cfg's source, creating it from cfg the first
// time; later calls for the same source return that Set whatever their
// other settings. A Set created after Start is started at once. After
// Close, Get returns ErrClosed.
func (r *Registry) Get(cfg Config) (*Set, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key := cfg.sourceKey()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if s, ok := r.sets[key]; ok {
		return s, nil
	}
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	r.sets[key] = s
	if r.started != nil {
		s.Start(r.started)
	}
	return s, nil
}

// Start starts the background refresher of every Set, present and future,
// until ctx ends or Close is called.
func (r *Registry) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.started = ctx
	for _, s := range r.sets {
		s.Start(ctx)
	}
}

// Close closes every Set (see Set.Close) and returns nil.
func (r *Registry) Close() error {
	r.mu.Lock()
	r.closed = true
	sets := make([]*Set, 0, len(r.sets))
	for _, s := range r.sets {
		sets = append(sets, s)
	}
	r.mu.Unlock()
	for _, s := range sets {
		s.Close()
	}
	return nil
}

// Status returns the Status of every Set, ordered by Source.
func (r *Registry) Status() []Status {
	r.mu.Lock()
	sets := make([]*Set, 0, len(r.sets))
	for _, s := range r.sets {
		sets = append(sets, s)
	}
	r.mu.Unlock()
	st := make([]Status, len(sets))
	for i, s := range sets {
		st[i] = s.Status()
	}
	slices.SortFunc(st, func(a, b Status) int { return cmp.Compare(a.Source, b.Source) })
	return st
}

// sourceKey identifies cfg's source for sharing: its kind and value.
func (cfg *Config) sourceKey() string {
	switch {
	case len(cfg.JWKS) > 0:
		return "jwks\x00" + string(cfg.JWKS)
	case cfg.File != "":
		return "file\x00" + cfg.File
	case cfg.JWKSURI != "":
		return "jwks_uri\x00" + cfg.JWKSURI
	default:
		return "discovery\x00" + cfg.Issuer
	}
}

// Retain closes and forgets every Set not in keep: the sets the policies
// in force no longer use, so that they are not fetched again and do not
// count in Status. A later Get for one of their sources makes a new Set.
func (r *Registry) Retain(keep []*Set) {
	r.mu.Lock()
	var drop []*Set
	for key, s := range r.sets {
		if !slices.Contains(keep, s) {
			drop = append(drop, s)
			delete(r.sets, key)
		}
	}
	r.mu.Unlock()
	for _, s := range drop {
		s.Close()
	}
}
