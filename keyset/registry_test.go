package keyset

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRegistrySharesBySource(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/v1/keys", "k1")
	p.keys(t, "/v2/keys", "k2")
	issuer := p.url("/t/v2.0")
	p.set("/t/v2.0/.well-known/openid-configuration", http.StatusOK,
		[]byte(`{"issuer":"`+issuer+`","jwks_uri":"`+p.url("/v2/keys")+`"}`))
	r := NewRegistry()
	t.Cleanup(func() { r.Close() })
	quiet := slog.New(slog.DiscardHandler)

	// Two rules with the same jwksUri (say, two RequestAuthentications
	// for one issuer), one with another, one by discovery.
	a, err := r.Get(Config{JWKSURI: p.url("/v1/keys"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Get(Config{JWKSURI: p.url("/v1/keys"), FetchTimeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Get(Config{JWKSURI: p.url("/v2/keys"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Get(Config{Issuer: issuer, Discovery: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("two rules with one JWKS URI got different Sets")
	}
	if a == c || c == d {
		t.Error("different sources share a Set")
	}
	for _, s := range []*Set{a, b, c, d} {
		if _, err := s.Keys(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.count("/v1/keys"); n != 1 {
		t.Errorf("shared JWKS URI fetched %d times, want 1", n)
	}

	st := r.Status()
	var sources []string
	for _, s := range st {
		if !s.Ready {
			t.Errorf("not ready: %+v", s)
		}
		sources = append(sources, s.Source)
	}
	want := []string{issuer, p.url("/v1/keys"), p.url("/v2/keys")}
	if strings.Join(sources, " ") != strings.Join(want, " ") {
		t.Errorf("Status sources = %q, want %q", sources, want)
	}

	if _, err := r.Get(Config{JWKSURI: p.url("/v1/keys"), File: "x"}); err == nil {
		t.Error("an invalid Config was accepted because its JWKS URI is known")
	}
}

func TestRegistryStartAndClose(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/a", "k1")
	p.keys(t, "/b", "k2")
	cfg := func(path string) Config {
		return Config{JWKSURI: p.url(path), RefreshInterval: time.Millisecond, MinRefreshInterval: time.Millisecond,
			MaxStale: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	}
	r := NewRegistry()
	a, err := r.Get(cfg("/a"))
	if err != nil {
		t.Fatal(err)
	}
	r.Start(context.Background())
	b, err := r.Get(cfg("/b")) // added after Start: started too
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "both sets to refresh in the background", func() bool {
		return a.Status().Fetches >= 2 && b.Status().Fetches >= 2
	})

	r.Close()
	wantNoSetGoroutines(t)
	if _, err := r.Get(cfg("/c")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}

// Retain forgets and closes the sets not kept; they stop counting in
// Status, and a later Get makes a new Set.
func TestRegistryRetain(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/v1/keys", "k1")
	p.keys(t, "/v2/keys", "k2")
	r := NewRegistry()
	t.Cleanup(func() { r.Close() })
	quiet := slog.New(slog.DiscardHandler)
	a, err := r.Get(Config{JWKSURI: p.url("/v1/keys"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Get(Config{JWKSURI: p.url("/v2/keys"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Set{a, b} {
		if _, err := s.Keys(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r.Retain([]*Set{a})
	if st := r.Status(); len(st) != 1 || !strings.HasSuffix(st[0].Source, "/v1/keys") {
		t.Fatalf("status after Retain: %+v", st)
	}
	// The dropped set still serves the keys it has, for requests in
	// flight, but fetches no more.
	if _, err := b.Keys(context.Background()); err != nil {
		t.Errorf("a dropped set's keys: %v", err)
	}
	if _, err := b.Refresh(context.Background()); err == nil {
		fetches := p.count("/v2/keys")
		b.Refresh(context.Background())
		if p.count("/v2/keys") != fetches {
			t.Error("a dropped set still fetches")
		}
	}
	again, err := r.Get(Config{JWKSURI: p.url("/v2/keys"), Logger: quiet})
	if err != nil || again == b {
		t.Fatalf("Get after Retain: %v, same set %v", err, again == b)
	}
	r.Retain(nil)
	if st := r.Status(); len(st) != 0 {
		t.Fatalf("status after Retain(nil): %+v", st)
	}
}
