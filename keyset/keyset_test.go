package keyset

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idgate/idgate/token"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no source", Config{}, "no key source"},
		{"two sources", Config{JWKSURI: "https://idp.example/keys", File: "keys.json"}, "more than one key source (File, JWKSURI)"},
		{"discovery and uri", Config{JWKSURI: "https://idp.example/keys", Issuer: "https://idp.example", Discovery: true}, "more than one key source (JWKSURI, Discovery)"},
		{"discovery without issuer", Config{Discovery: true}, "Discovery needs an Issuer"},
		{"issuer without discovery", Config{Issuer: "https://idp.example", JWKSURI: "https://idp.example/keys"}, "Issuer is only used with Discovery"},
		{"relative uri", Config{JWKSURI: "/keys"}, "not an absolute URL"},
		{"no host", Config{JWKSURI: "https:///keys"}, "not an absolute URL"},
		{"http remote", Config{JWKSURI: "http://idp.example/keys"}, "http is only allowed for loopback hosts"},
		{"http lookalike", Config{JWKSURI: "http://localhost.idp.example/keys"}, "http is only allowed for loopback hosts"},
		{"ftp", Config{JWKSURI: "ftp://idp.example/keys"}, `scheme "ftp" is not https`},
		{"credentials", Config{JWKSURI: "https://user:secret@idp.example/keys"}, "credentials in a URL"},
		{"credentials not echoed", Config{JWKSURI: "https://user:secret@idp.example/keys"}, "user:xxxxx@"},
		{"bad url", Config{JWKSURI: "https://idp.example/%zz"}, "not a URL"},
		{"discovery http issuer", Config{Issuer: "http://idp.example", Discovery: true}, "http is only allowed for loopback hosts"},
		{"discovery issuer with query", Config{Issuer: "https://idp.example/?x=1", Discovery: true}, "no query or fragment"},
		{"discovery issuer with fragment", Config{Issuer: "https://idp.example/#", Discovery: true}, "no query or fragment"},
		{"misspelt template", Config{Issuer: "https://login.microsoftonline.com/{tenantId}/v2.0", Discovery: true}, "braces are only allowed"},
		{"template twice", Config{Issuer: "https://h.example/{tenantid}/{tenantid}", Discovery: true}, "braces are only allowed"},
		{"template in segment", Config{Issuer: "https://h.example/t-{tenantid}/v2.0", Discovery: true}, "whole path segment"},
		{"template as host", Config{Issuer: "https://{tenantid}/v2.0", Discovery: true}, "whole path segment"},
		{"negative timeout", Config{JWKSURI: "https://idp.example/keys", FetchTimeout: -time.Second}, "FetchTimeout -1s is negative"},
		{"max stale too short", Config{JWKSURI: "https://idp.example/keys", MaxStale: time.Minute}, "MaxStale 1m0s is shorter than RefreshInterval 20m0s"},
		{"inline not json", Config{JWKS: []byte("not json")}, "inline JWKS"},
		{"inline empty", Config{JWKS: []byte(`{"keys":[]}`)}, "inline JWKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if s != nil {
				t.Errorf("New returned a Set with error %v", err)
			}
			wantErr(t, err, tt.want)
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestNewAcceptsConfig(t *testing.T) {
	for _, cfg := range []Config{
		{JWKSURI: "https://login.microsoftonline.com/contoso.onmicrosoft.com/discovery/v2.0/keys?appid=6731de76-14a6-49ae-97bc-6eba6914391e"},
		{JWKSURI: "http://localhost:8080/keys"},
		{JWKSURI: "http://127.0.0.1/keys"},
		{JWKSURI: "http://127.1.2.3:9/keys"},
		{JWKSURI: "http://[::1]:9/keys"},
		{File: "does-not-exist-yet.json"},
		{Issuer: "https://login.microsoftonline.com/{tenantid}/v2.0", Discovery: true},
		{Issuer: "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/", Discovery: true},
		{JWKSURI: "https://idp.example/keys", RefreshInterval: time.Hour, MaxStale: time.Hour},
	} {
		if _, err := New(cfg); err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
		}
	}
}

func TestFirstFetch(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1", "k2")
	s, _ := newSet(t, Config{JWKSURI: p.url("/keys")}, newClock())

	if st := s.Status(); st.Ready || st.Fetches != 0 {
		t.Fatalf("before Keys: %+v, want nothing fetched", st)
	}
	for range 3 {
		keys, err := s.Keys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantKids(t, keys, "k1", "k2")
	}
	if n := p.count("/keys"); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
	st := s.Status()
	if !st.Ready || st.Keys != 2 || st.Fetches != 1 || st.Failures != 0 || st.LastError != nil || st.Stale() ||
		st.JWKSURI != p.url("/keys") || st.Source != p.url("/keys") || st.LastSuccess.IsZero() {
		t.Errorf("Status = %+v", st)
	}
}

func TestFirstFetchFails(t *testing.T) {
	t.Run("status", func(t *testing.T) {
		p := newIDP(t)
		p.set("/keys", http.StatusInternalServerError, jwks(t, "k1"))
		clk := newClock()
		s, logs := newSet(t, Config{JWKSURI: p.url("/keys")}, clk)

		_, err := s.Keys(context.Background())
		wantErr(t, err, "GET "+p.url("/keys"), "status 500 Internal Server Error")
		if !strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("no error logged:\n%s", logs)
		}
		// Requests arriving while the identity provider is failing do not
		// each fetch again: one fetch per MinRefreshInterval.
		clk.Advance(DefaultMinRefreshInterval - time.Second)
		_, err2 := s.Keys(context.Background())
		if err2 == nil || err2.Error() != err.Error() {
			t.Errorf("second Keys error = %v, want %v", err2, err)
		}
		if n := p.count("/keys"); n != 1 {
			t.Errorf("server saw %d requests within MinRefreshInterval, want 1", n)
		}
		p.keys(t, "/keys", "k1")
		clk.Advance(time.Second)
		keys, err := s.Keys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantKids(t, keys, "k1")
	})
	t.Run("unreachable", func(t *testing.T) {
		p := newIDP(t)
		p.srv.Close()
		s, _ := newSet(t, Config{JWKSURI: p.url("/keys")}, nil)
		_, err := s.Keys(context.Background())
		wantErr(t, err, "GET "+p.url("/keys")+": ", "connection refused")
		if st := s.Status(); st.Ready || st.Failures != 1 || st.LastError == nil || st.Stale() {
			t.Errorf("Status = %+v", st)
		}
	})
}

func TestDiscovery(t *testing.T) {
	p := newIDP(t)
	issuer := p.url("/tenant-a/v2.0")
	p.set("/tenant-a/v2.0/.well-known/openid-configuration", http.StatusOK,
		[]byte(`{"issuer":"`+issuer+`","jwks_uri":"`+p.url("/tenant-a/discovery/v2.0/keys")+`","token_endpoint":"x"}`))
	p.keys(t, "/tenant-a/discovery/v2.0/keys", "k1")
	s, _ := newSet(t, Config{Issuer: issuer, Discovery: true}, newClock())

	keys, err := s.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")
	if st := s.Status(); st.Source != issuer || st.JWKSURI != p.url("/tenant-a/discovery/v2.0/keys") {
		t.Errorf("Status = %+v", st)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	p := newIDP(t)
	doc := "/tenant-a/v2.0/.well-known/openid-configuration"
	p.set(doc, http.StatusOK, []byte(`{"issuer":"https://evil.example/tenant-a/v2.0","jwks_uri":"`+p.url("/keys")+`"}`))
	p.keys(t, "/keys", "k1")
	s, _ := newSet(t, Config{Issuer: p.url("/tenant-a/v2.0"), Discovery: true}, newClock())

	_, err := s.Keys(context.Background())
	wantErr(t, err, p.url(doc), `publishes issuer "https://evil.example/tenant-a/v2.0"`, `not the configured "`+p.url("/tenant-a/v2.0")+`"`)
	if n := p.count("/keys"); n != 0 {
		t.Errorf("keys fetched %d times from a mismatched document", n)
	}
}

func TestDiscoveryEntraTemplate(t *testing.T) {
	// Entra's tenant-independent document publishes the {tenantid}
	// issuer; a rule with that issuer finds its keys through it.
	p := newIDP(t)
	doc, err := os.ReadFile("testdata/entra/common-v2-openid-configuration.json")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := os.ReadFile("testdata/entra/common-v2-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	// The same document, as this server's host would publish it.
	doc = []byte(strings.ReplaceAll(string(doc), "https://login.microsoftonline.com", p.srv.URL))
	p.set("/organizations/v2.0/.well-known/openid-configuration", http.StatusOK, doc)
	p.set("/common/discovery/v2.0/keys", http.StatusOK, keys)

	issuer := p.url("/{tenantid}/v2.0")
	s, _ := newSet(t, Config{Issuer: issuer, Discovery: true}, newClock())
	got, err := s.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, got, "Mc7l3Iz93g7uwgNeEmmw_WYGPko", "8IIDH6M8c3cXoeojKme8Jvqsr2Y")
	for _, k := range got {
		if k.Issuer == "" || k.Public == nil {
			t.Errorf("key %q lost its issuer or public key: %+v", k.ID, k)
		}
	}

	// A rule naming the "common" issuer itself never matches a token; say
	// what to configure instead.
	p.set("/common/v2.0/.well-known/openid-configuration", http.StatusOK, doc)
	s2, _ := newSet(t, Config{Issuer: p.url("/common/v2.0"), Discovery: true}, newClock())
	_, err = s2.Keys(context.Background())
	wantErr(t, err, `publishes issuer "`+issuer+`"`, `configure issuer "`+issuer+`" to accept tokens of any tenant`)
}

func TestDiscoveryRejectsBadDocument(t *testing.T) {
	p := newIDP(t)
	issuer := p.url("/t")
	doc := "/t/.well-known/openid-configuration"
	s, _ := newSet(t, Config{Issuer: issuer, Discovery: true}, newClock())

	p.set(doc, http.StatusOK, []byte(`{"issuer":"`+issuer+`","jwks_uri":"http://idp.example/keys"}`))
	_, err := s.Keys(context.Background())
	wantErr(t, err, p.url(doc), `"jwks_uri"`, "http is only allowed for loopback hosts")

	s2, _ := newSet(t, Config{Issuer: issuer, Discovery: true}, newClock())
	p.set(doc, http.StatusOK, []byte(`{"issuer":"`+issuer+`"}`))
	_, err = s2.Keys(context.Background())
	wantErr(t, err, p.url(doc), `no "jwks_uri"`)
}

func TestRotation(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	clk := newClock()
	s, logs := newSet(t, Config{JWKSURI: p.url("/keys")}, clk)
	ctx := context.Background()

	keys, err := s.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")

	// The identity provider adds k2; a token signed with it makes the
	// verifier ask for a Refresh, which fetches it.
	p.keys(t, "/keys", "k1", "k2")
	clk.Advance(DefaultMinRefreshInterval)
	keys, err = s.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1", "k2")
	keys, _ = s.Keys(ctx)
	wantKids(t, keys, "k1", "k2")

	// Then retires k1.
	p.keys(t, "/keys", "k2")
	clk.Advance(DefaultMinRefreshInterval)
	keys, err = s.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k2")
	if n := p.count("/keys"); n != 3 {
		t.Errorf("server saw %d requests, want 3", n)
	}
	if l := logs.String(); !strings.Contains(l, "keys changed") || !strings.Contains(l, "removed=[k1]") {
		t.Errorf("rotation not logged:\n%s", l)
	}
}

func TestSkippedMembersLogged(t *testing.T) {
	p := newIDP(t)
	body := []byte(`{"keys":[` + string(mustJSON(t, jwk(t, "k1"))) + `,{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}]}`)
	p.set("/keys", http.StatusOK, body)
	clk := newClock()
	s, logs := newSet(t, Config{JWKSURI: p.url("/keys")}, clk)
	keys, err := s.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Logged when first seen, not on every refresh.
	if n := strings.Count(logs.String(), "members left out"); n != 1 {
		t.Errorf("left-out members logged %d times, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `kid \"hmac\"`) {
		t.Errorf("log does not name the left-out key:\n%s", logs)
	}
}

func TestRefreshBurstFetchesOnce(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	clk := newClock()
	s, _ := newSet(t, Config{JWKSURI: p.url("/keys")}, clk)
	if _, err := s.Keys(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A burst of tokens with a new kid: the server answers only once all
	// callers are waiting, so they overlap the one fetch.
	hold := make(chan struct{})
	p.setRoute("/keys", route{status: http.StatusOK, body: jwks(t, "k1", "k2"), hold: hold})
	clk.Advance(DefaultMinRefreshInterval)

	const callers = 100
	var wg sync.WaitGroup
	results := make([][]token.Key, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = s.Refresh(context.Background()) })
	}
	eventually(t, "the refresh to reach the server", func() bool { return p.count("/keys") == 2 })
	time.Sleep(5 * time.Millisecond) // let the remaining callers pile up
	close(hold)
	wg.Wait()

	if n := p.count("/keys"); n != 2 {
		t.Errorf("server saw %d requests, want 2 (first fetch + one refresh for %d callers)", n, callers)
	}
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		wantKids(t, results[i], "k1", "k2")
	}
	if st := s.Status(); st.Fetches != 2 {
		t.Errorf("Status.Fetches = %d, want 2", st.Fetches)
	}
}

func TestRefreshRateLimit(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	clk := newClock()
	s, _ := newSet(t, Config{JWKSURI: p.url("/keys"), MinRefreshInterval: time.Minute}, clk)
	ctx := context.Background()
	if _, err := s.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	p.keys(t, "/keys", "k1", "k2")

	steps := []struct {
		advance time.Duration
		fetches int
		kids    []string
	}{
		{59 * time.Second, 1, []string{"k1"}}, // within a minute of the first fetch
		{time.Second, 2, []string{"k1", "k2"}},
		{30 * time.Second, 2, []string{"k1", "k2"}},
		{29 * time.Second, 2, []string{"k1", "k2"}},
		{time.Second, 3, []string{"k1", "k2"}},
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		keys, err := s.Refresh(ctx)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		wantKids(t, keys, st.kids...)
		if n := p.count("/keys"); n != st.fetches {
			t.Errorf("step %d: server saw %d requests, want %d", i, n, st.fetches)
		}
	}
}

func TestOutageServesStale(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	clk := newClock()
	obs := &recorder{}
	s, logs := newSet(t, Config{JWKSURI: p.url("/keys"), Observer: obs}, clk)
	ctx := context.Background()
	if _, err := s.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	fetched := s.Status().LastSuccess

	p.srv.Close()
	clk.Advance(time.Hour)
	outage := clk.Now()
	for _, call := range []func(context.Context) ([]token.Key, error){s.Refresh, s.Keys} {
		keys, err := call(ctx)
		if err != nil {
			t.Fatalf("during the outage: %v", err)
		}
		wantKids(t, keys, "k1")
	}
	st := s.Status()
	if !st.Ready || !st.Stale() || !st.StaleSince.Equal(outage) || !st.LastSuccess.Equal(fetched) ||
		st.Keys != 1 || st.Failures != 1 || st.Fetches != 2 {
		t.Errorf("Status = %+v", st)
	}
	wantErr(t, st.LastError, p.url("/keys"), "connection refused")
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "serving the last good keys") {
		t.Errorf("stale keys not logged:\n%s", l)
	}
	if got := obs.calls(); len(got) != 2 || got[0] != "fetched "+p.url("/keys")+" 1" ||
		!strings.HasPrefix(got[1], "failed "+p.url("/keys")+" keyset: GET") {
		t.Errorf("observer saw %q", got)
	}

	// Later failures keep the time the outage began.
	clk.Advance(time.Hour)
	if _, err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); !st.StaleSince.Equal(outage) || st.Failures != 2 {
		t.Errorf("after a second failure: %+v", st)
	}
}

func TestStaleBeyondMaxStale(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	clk := newClock()
	s, logs := newSet(t, Config{JWKSURI: p.url("/keys"), RefreshInterval: time.Hour, MaxStale: 2 * time.Hour}, clk)
	ctx := context.Background()
	if _, err := s.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	p.set("/keys", http.StatusServiceUnavailable, nil)

	clk.Advance(2 * time.Hour) // exactly MaxStale: still served
	if keys, err := s.Refresh(ctx); err != nil {
		t.Fatalf("at MaxStale: %v", err)
	} else {
		wantKids(t, keys, "k1")
	}
	clk.Advance(time.Second)
	for name, call := range map[string]func(context.Context) ([]token.Key, error){"Keys": s.Keys, "Refresh": s.Refresh} {
		keys, err := call(ctx)
		if keys != nil || !errors.Is(err, ErrStale) {
			t.Fatalf("%s beyond MaxStale = %d keys, %v; want ErrStale", name, len(keys), err)
		}
		wantErr(t, err, p.url("/keys"), "2h0m1s ago, longer than MaxStale 2h0m0s", "status 503")
	}
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := s.Refresh(ctx); !errors.Is(err, ErrStale) {
		t.Fatalf("Refresh = %v, want ErrStale", err)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "older than MaxStale") {
		t.Errorf("a failed fetch with expired keys not logged as an error:\n%s", l)
	}
	if st := s.Status(); st.Ready || !st.Stale() {
		t.Errorf("Status = %+v, want stale and not ready", st)
	}

	// The identity provider comes back: keys work again.
	p.keys(t, "/keys", "k2")
	clk.Advance(DefaultMinRefreshInterval)
	keys, err := s.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k2")
	if st := s.Status(); !st.Ready || st.Stale() || st.LastError != nil {
		t.Errorf("Status after recovery = %+v", st)
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	clk := newClock()
	s, _ := newSet(t, Config{JWKSURI: p.url("/keys"), FetchTimeout: 50 * time.Millisecond}, clk)
	ctx := context.Background()
	if _, err := s.Keys(ctx); err != nil {
		t.Fatal(err)
	}

	hold := make(chan struct{}) // never closed: the server does not answer
	p.setRoute("/keys", route{status: http.StatusOK, body: jwks(t, "k2"), hold: hold})
	clk.Advance(DefaultMinRefreshInterval)
	keys, err := s.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")
	st := s.Status()
	if !errors.Is(st.LastError, context.DeadlineExceeded) {
		t.Errorf("LastError = %v, want a deadline", st.LastError)
	}
	wantErr(t, st.LastError, p.url("/keys"), "no complete answer within 50ms")

	// A slow body counts as well: headers come at once, the body stalls.
	p.setRoute("/slow-body", route{status: http.StatusOK, body: jwks(t, "k2"), hold: hold, stallBody: true})
	s2, _ := newSet(t, Config{JWKSURI: p.url("/slow-body"), FetchTimeout: 50 * time.Millisecond}, clk)
	_, err = s2.Keys(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow body: %v, want a deadline", err)
	}
	wantErr(t, err, p.url("/slow-body"), "no complete answer within 50ms")
}

func TestBadResponsesKeepKeys(t *testing.T) {
	big := append([]byte(`{"keys":[],"padding":"`), strings.Repeat("x", 2<<20)...)
	big = append(big, `"}`...)
	tests := []struct {
		name   string
		status int
		body   []byte
		want   string
	}{
		{"garbage", http.StatusOK, []byte("\x00\x01 not a key set"), ""},
		{"html", http.StatusOK, []byte("<html><body>Sign in</body></html>"), ""},
		{"truncated", http.StatusOK, []byte(`{"keys":[{"kty":"EC","crv":"P-256"`), ""},
		{"no keys member", http.StatusOK, []byte(`{}`), ""},
		{"empty set", http.StatusOK, []byte(`{"keys":[]}`), ""},
		{"server error", http.StatusInternalServerError, []byte(`{"keys":[]}`), "status 500"},
		{"not found", http.StatusNotFound, nil, "status 404"},
		{"oversized", http.StatusOK, big, "larger than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t)
			p.keys(t, "/keys", "k1")
			clk := newClock()
			s, _ := newSet(t, Config{JWKSURI: p.url("/keys")}, clk)
			ctx := context.Background()
			if _, err := s.Keys(ctx); err != nil {
				t.Fatal(err)
			}

			p.set("/keys", tt.status, tt.body)
			clk.Advance(DefaultMinRefreshInterval)
			keys, err := s.Refresh(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantKids(t, keys, "k1")
			st := s.Status()
			if st.Keys != 1 || !st.Stale() || !st.Ready {
				t.Errorf("Status = %+v", st)
			}
			wantErr(t, st.LastError, p.url("/keys"), tt.want)

			// Without earlier keys the same answer is an error.
			fresh, _ := newSet(t, Config{JWKSURI: p.url("/keys")}, clk)
			_, err = fresh.Keys(ctx)
			wantErr(t, err, p.url("/keys"), tt.want)
		})
	}
}

func TestBackgroundRefresh(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	s, _ := newSet(t, Config{
		JWKSURI:            p.url("/keys"),
		RefreshInterval:    10 * time.Millisecond,
		MinRefreshInterval: time.Millisecond,
		MaxStale:           time.Hour,
	}, nil)
	s.Start(context.Background())
	eventually(t, "the first background fetch", func() bool { return s.Status().Ready })
	fetches := p.count("/keys")

	p.keys(t, "/keys", "k1", "k2")
	eventually(t, "the background refresh to pick up k2", func() bool {
		keys, err := s.Keys(context.Background())
		return err == nil && len(keys) == 2
	})
	if n := p.count("/keys"); n <= fetches {
		t.Errorf("server saw %d requests, want more than %d", n, fetches)
	}
}

func TestBackgroundRetriesAfterFailure(t *testing.T) {
	p := newIDP(t)
	p.set("/keys", http.StatusBadGateway, nil)
	s, _ := newSet(t, Config{
		JWKSURI:            p.url("/keys"),
		RefreshInterval:    time.Hour,
		MinRefreshInterval: time.Millisecond,
		MaxStale:           time.Hour,
	}, nil)
	s.Start(context.Background())
	eventually(t, "a failed fetch", func() bool { return s.Status().Failures >= 1 })
	p.keys(t, "/keys", "k1")
	// Far sooner than RefreshInterval: retries back off from
	// MinRefreshInterval.
	eventually(t, "a retry to succeed", func() bool { return s.Status().Ready })
}

func TestBackoffSchedule(t *testing.T) {
	clk := newClock()
	s, _ := newSet(t, Config{JWKSURI: "https://idp.example/keys", RefreshInterval: 5 * time.Minute, MinRefreshInterval: 30 * time.Second, MaxStale: time.Hour}, clk)
	t0 := clk.Now()
	s.lastAttempt, s.lastSuccess = t0, t0
	if got := s.dueLocked(); !got.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("after a success: due %s, want +5m", got.Sub(t0))
	}
	s.lastErr = errors.New("down")
	for streak, want := range map[int]time.Duration{
		1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 4: 4 * time.Minute, 5: 5 * time.Minute, 60: 5 * time.Minute,
	} {
		s.failStreak = streak
		if got := s.dueLocked().Sub(t0); got != want {
			t.Errorf("after %d failures: due +%s, want +%s", streak, got, want)
		}
	}
}

func TestLazyRefreshWithoutStart(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	clk := newClock()
	s, _ := newSet(t, Config{JWKSURI: p.url("/keys")}, clk)
	ctx := context.Background()
	if _, err := s.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	p.keys(t, "/keys", "k2")

	clk.Advance(DefaultRefreshInterval - time.Second)
	keys, _ := s.Keys(ctx)
	wantKids(t, keys, "k1")
	if n := p.count("/keys"); n != 1 {
		t.Fatalf("fetched before RefreshInterval: %d requests", n)
	}

	// Past RefreshInterval the old keys answer at once while a fetch
	// replaces them.
	clk.Advance(time.Second)
	keys, err := s.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")
	eventually(t, "the refresh", func() bool { return s.Status().Fetches == 2 })
	keys, _ = s.Keys(ctx)
	wantKids(t, keys, "k2")
}

func TestKeysHonoursContext(t *testing.T) {
	p := newIDP(t)
	hold := make(chan struct{})
	p.setRoute("/keys", route{status: http.StatusOK, body: jwks(t, "k1"), hold: hold})
	s, _ := newSet(t, Config{JWKSURI: p.url("/keys")}, newClock())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Keys(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Keys with a cancelled context = %v", err)
	}
	wantErr(t, err, "waiting for keys from "+p.url("/keys"))

	// The fetch carried on for everyone else.
	close(hold)
	keys, err := s.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")
	if n := p.count("/keys"); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	wantNoSetGoroutines(t) // none left by earlier tests
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	hold := make(chan struct{})
	defer close(hold)
	p.setRoute("/slow", route{status: http.StatusOK, body: jwks(t, "k1"), hold: hold})

	started := func(uri string) *Set {
		s, err := New(Config{JWKSURI: p.url(uri), RefreshInterval: time.Millisecond, MinRefreshInterval: time.Millisecond, MaxStale: time.Hour,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		s.Start(context.Background())
		s.Start(context.Background()) // a second Start does nothing
		return s
	}
	busy := started("/keys")
	eventually(t, "refreshes", func() bool { return busy.Status().Fetches >= 3 })
	stuck := started("/slow") // a fetch in flight that would never end
	eventually(t, "the stuck fetch", func() bool { return p.count("/slow") == 1 })
	if len(setGoroutines()) == 0 {
		t.Fatal("no Set goroutines while started")
	}

	busy.Close()
	stuck.Close()
	stuck.Close() // closing twice is harmless
	wantNoSetGoroutines(t)

	// A closed Set serves what it has and fetches no more.
	before := busy.Status()
	keys, err := busy.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")
	if _, err := stuck.Keys(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("closed Set without keys: %v, want ErrClosed", err)
	}
	busy.Start(context.Background())
	if _, err := busy.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	// (The server may still count a request sent before Close; the Set's
	// own record shows whether it began another fetch.)
	if after := busy.Status(); !after.LastFetch.Equal(before.LastFetch) || after.Fetches != before.Fetches {
		t.Errorf("a closed Set fetched again: before %+v, after %+v", before, after)
	}
	wantNoSetGoroutines(t)
}

func TestStartEndsWithContext(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	s, _ := newSet(t, Config{JWKSURI: p.url("/keys"), RefreshInterval: time.Millisecond, MinRefreshInterval: time.Millisecond, MaxStale: time.Hour}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	eventually(t, "refreshes", func() bool { return s.Status().Fetches >= 2 })
	cancel()
	eventually(t, "the refresher to stop", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.running
	})
	// Without the refresher, Keys refreshes on its own again.
	if _, err := s.Keys(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	write := func(data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(jwks(t, "k1"))
	clk := newClock()
	s, _ := newSet(t, Config{File: path}, clk)
	ctx := context.Background()
	keys, err := s.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")

	// A rotated file (a remounted Kubernetes Secret, say) is read again.
	write(jwks(t, "k2"))
	clk.Advance(DefaultMinRefreshInterval)
	keys, err = s.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k2")

	// A half-written file does not replace good keys.
	write([]byte(`{"keys":[`))
	clk.Advance(DefaultMinRefreshInterval)
	keys, err = s.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k2")
	wantErr(t, s.Status().LastError, path)

	missing, _ := newSet(t, Config{File: filepath.Join(dir, "missing.json")}, clk)
	_, err = missing.Keys(ctx)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	wantErr(t, err, "missing.json")

	write(make([]byte, maxBody+1))
	big, _ := newSet(t, Config{File: path}, clk)
	_, err = big.Keys(ctx)
	wantErr(t, err, path, "larger than 1048576 bytes")
}

func TestInlineSource(t *testing.T) {
	s, _ := newSet(t, Config{JWKS: jwks(t, "k1", "k2")}, nil)
	for _, call := range []func(context.Context) ([]token.Key, error){s.Keys, s.Refresh} {
		keys, err := call(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantKids(t, keys, "k1", "k2")
	}
	s.Start(context.Background())
	if st := s.Status(); !st.Ready || st.Keys != 2 || st.Source != "inline JWKS" || st.Fetches != 0 {
		t.Errorf("Status = %+v", st)
	}
}

func TestRedirects(t *testing.T) {
	p := newIDP(t)
	p.keys(t, "/keys", "k1")
	p.setRoute("/moved", route{status: http.StatusFound, header: http.Header{"Location": {"/keys"}}})
	other := newIDP(t)
	other.keys(t, "/keys", "evil")
	p.setRoute("/elsewhere", route{status: http.StatusFound, header: http.Header{"Location": {other.url("/keys")}}})

	same, _ := newSet(t, Config{JWKSURI: p.url("/moved")}, nil)
	keys, err := same.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantKids(t, keys, "k1")

	cross, _ := newSet(t, Config{JWKSURI: p.url("/elsewhere")}, nil)
	_, err = cross.Keys(context.Background())
	wantErr(t, err, p.url("/elsewhere"), "redirect to "+other.srv.URL+" refused")
	if n := other.count("/keys"); n != 0 {
		t.Errorf("followed a redirect to another host")
	}
}

// recorder is an Observer that records its calls.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) Fetched(source string, keys int, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, "fetched "+source+" "+strconv.Itoa(keys))
}

func (r *recorder) FetchFailed(source string, err error, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, "failed "+source+" "+err.Error())
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

func BenchmarkKeys(b *testing.B) {
	s, err := New(Config{JWKSURI: "https://idp.example/keys"})
	if err != nil {
		b.Fatal(err)
	}
	s.keys, s.lastAttempt, s.lastSuccess = []token.Key{{ID: "k1"}}, time.Now(), time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Keys(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
