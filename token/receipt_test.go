package token

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// swappableKeys is a KeySource whose keys a test replaces.
type swappableKeys struct {
	mu   sync.Mutex
	keys []Key
	err  error
}

func (s *swappableKeys) Keys(context.Context) ([]Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.err
}

func (s *swappableKeys) Refresh(ctx context.Context) ([]Key, error) { return s.Keys(ctx) }

func (s *swappableKeys) set(keys []Key, err error) {
	s.mu.Lock()
	s.keys, s.err = keys, err
	s.mu.Unlock()
}

// testClock is a clock a test moves.
type testClock struct{ sec atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.sec.Store(testNow.Unix())
	return c
}

func (c *testClock) now() time.Time { return time.Unix(c.sec.Load(), 0) }

func es256Token(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	return mint(t, testP256Key(), map[string]any{"alg": "ES256", "kid": kid}, claims)
}

func recheckVerifier(t *testing.T, keys KeySource, clock *testClock) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{
		Issuers:   []string{"https://issuer.example"},
		Audiences: []string{"api://orders"},
		Keys:      keys,
		Now:       clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Recheck agrees with a fresh Verify about exp, nbf and iat, with the
// skew, as the clock moves.
func TestRecheckTimes(t *testing.T) {
	clock := newTestClock()
	keys := &swappableKeys{keys: []Key{publicKey("k1", testP256Key())}}
	v := recheckVerifier(t, keys, clock)
	raw := es256Token(t, "k1", validClaims()) // nbf, iat now-60; exp now+3600
	tok, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	r := tok.Receipt()
	for _, s := range []struct {
		at      int64 // seconds after testNow
		want    Code
		expired bool
	}{
		{0, "ok", false},
		{3600 + 60, "ok", false},         // within the skew after exp
		{3600 + 61, Expired, true},       // past it
		{-60 - 60, "ok", false},          // clock set back, within the skew
		{-60 - 61, NotYetValid, false},   // before nbf - skew
		{1 << 40, Expired, true},         // far future
		{-(1 << 40), NotYetValid, false}, // far past
	} {
		clock.sec.Store(testNow.Unix() + s.at)
		_, err := v.Verify(context.Background(), raw)
		if got := code(err); got != s.want {
			t.Fatalf("at now%+ds: Verify says %s, want %s", s.at, got, s.want)
		}
		if got := v.Recheck(context.Background(), r); got != (s.want == "ok") {
			t.Fatalf("at now%+ds: Recheck = %v, Verify says %s", s.at, got, s.want)
		}
		if got := v.Expired(r); got != s.expired {
			t.Fatalf("at now%+ds: Expired = %v", s.at, got)
		}
	}
}

// Recheck needs the key that verified the token in the key set now, and
// agrees with a fresh Verify.
func TestRecheckKeyChanges(t *testing.T) {
	k1 := publicKey("k1", testP256Key())
	other := publicKey("k1", testP384Key()) // same kid, other key
	restricted := k1
	restricted.Algorithm = "ES384"
	stranger := publicKey("k2", testP256Key())
	cases := []struct {
		name string
		next []Key
		err  error
		want Code
	}{
		{"same set", nil, nil, "ok"},
		{"refetched, same key", []Key{publicKey("k0", testEdKey()), publicKey("k1", testP256Key())}, nil, "ok"},
		{"removed", []Key{publicKey("k0", testEdKey())}, nil, UnknownKID},
		{"same kid, other key", []Key{other}, nil, AlgNotAllowed},
		{"restricted to another alg", []Key{restricted}, nil, AlgNotAllowed},
		{"same key, other kid", []Key{stranger}, nil, UnknownKID},
		{"key source fails", nil, errors.New("jwks unavailable"), UnknownKID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys := &swappableKeys{keys: []Key{k1}}
			v := recheckVerifier(t, keys, newTestClock())
			raw := es256Token(t, "k1", validClaims())
			tok, err := v.Verify(context.Background(), raw)
			if err != nil {
				t.Fatal(err)
			}
			if c.next != nil || c.err != nil {
				keys.set(c.next, c.err)
			}
			_, err = v.Verify(context.Background(), raw)
			if got := code(err); got != c.want {
				t.Fatalf("Verify after the change: %s, want %s", got, c.want)
			}
			for range 2 { // the second time through the re-anchored ref
				if got := v.Recheck(context.Background(), tok.Receipt()); got != (c.want == "ok") {
					t.Fatalf("Recheck = %v, Verify says %s", got, c.want)
				}
			}
		})
	}
}

// Tokens verified with one key set share the refs of its keys.
func TestReceiptsShareKeyRefs(t *testing.T) {
	keys := StaticKeys{publicKey("k1", testP256Key())}
	v := recheckVerifier(t, keys, newTestClock())
	a, err := v.Verify(context.Background(), es256Token(t, "k1", validClaims()))
	if err != nil {
		t.Fatal(err)
	}
	c := validClaims()
	c["sub"] = "someone-else"
	b, err := v.Verify(context.Background(), es256Token(t, "k1", c))
	if err != nil {
		t.Fatal(err)
	}
	if a.Receipt().key.Load() != b.Receipt().key.Load() {
		t.Fatal("two tokens verified with one key hold two key refs")
	}
	if p, err := Parse(es256Token(t, "k1", c)); err != nil || p.Unverified.Receipt() != nil {
		t.Fatalf("an unverified token has a receipt (%v)", err)
	}
}

// A packed date means what the date meant.
func TestPackDate(t *testing.T) {
	for _, d := range []date{{}, {sec: 0, set: true}, {sec: -1, set: true}, {sec: 1 << 40, set: true},
		{sec: noDate, set: true}, {sec: noDate + 1, set: true}, {sec: math.MaxInt64, set: true}} {
		got := unpackDate(packDate(d))
		want := d
		if d.set && d.sec == noDate {
			want.sec = noDate + 1
		}
		if got != want {
			t.Errorf("unpackDate(packDate(%+v)) = %+v", d, got)
		}
	}
}
