package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
	"github.com/idgate/idgate/proxy"
	"github.com/idgate/idgate/request"
)

// FuzzServeHTTP sends the proxy arbitrary request targets and headers.
// Whatever they are, it answers without panicking, with a request id and
// one of the statuses idgate gives; and what it forwards carries exactly
// the normalized path, and no client copy of an identity header.
func FuzzServeHTTP(f *testing.F) {
	var hits atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		json.NewEncoder(w).Encode(echo{URI: r.RequestURI, Header: r.Header})
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	p, err := proxy.New(enginetest.New(f, policies, engine.Options{}).Engine, u, proxy.Options{TrustedProxies: 1})
	if err != nil {
		f.Fatal(err)
	}
	defer p.CloseIdleConnections()

	for _, s := range []struct{ target, auth, xff, user string }{
		{"/public/a/../b?c", "", "", "root"},
		{"/public/%2e%2e/api/x", "", "1.2.3.4", ""},
		{"/api/x?access_token=abc", "Bearer x.y.z", "", "x"},
		{"/public/%00", "", "", ""},
		{"*", "", "", ""},
		{"http://h/public/x", "Bearer ", "127.0.0.1, ::1", ""},
		{"/local-only", "", "127.0.0.1", "root"},
		{"/public/\xff?\xff", "bearer \xff", "\xff", "\xff"},
	} {
		f.Add(s.target, s.auth, s.xff, s.user)
	}
	f.Fuzz(func(t *testing.T, target, auth, xff, user string) {
		for _, v := range []string{auth, xff, user} {
			if !httpguts.ValidHeaderFieldValue(v) {
				return // the server refuses such a request before any handler
			}
		}
		r := &http.Request{
			Method: "GET", RequestURI: target, URL: &url.URL{Path: "/"}, Host: "shop.example",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:     http.Header{"Authorization": {auth}, "X-Forwarded-For": {xff}, "X-User": {user}},
			RemoteAddr: "127.0.0.1:5555",
		}
		before := hits.Load()
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		forwarded := hits.Load() != before
		if w.Header().Get("X-Request-Id") == "" {
			t.Fatalf("%q: no X-Request-Id", target)
		}
		norm, pathErr := request.NormalizePath(target)
		switch {
		case pathErr != nil && !strings.HasPrefix(strings.ToLower(target), "http"):
			if forwarded || w.Code != 400 && w.Code != 404 {
				t.Fatalf("%q: %d, forwarded %v; want 400 or 404, never forwarded", target, w.Code, forwarded)
			}
		case w.Code == 401 || w.Code == 403:
			if forwarded {
				t.Fatalf("%q: denied %d but forwarded", target, w.Code)
			}
		case w.Code == 200 && forwarded:
			var got echo
			if err := json.NewDecoder(io.LimitReader(w.Body, 1<<20)).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if pathErr == nil {
				if path, _, _ := strings.Cut(got.URI, "?"); path != norm {
					t.Fatalf("%q: upstream got %q, want path %q", target, got.URI, norm)
				}
			}
			if v := got.Header.Values("X-User"); len(v) > 0 {
				t.Fatalf("%q: upstream got the client's X-User %q", target, v)
			}
		case w.Code == 400 || w.Code == 404:
			// An absolute-form target whose path is not in order, or the
			// upstream's own answer to a target it refuses.
		default:
			t.Fatalf("%q: status %d (forwarded %v): %s", target, w.Code, forwarded, w.Body)
		}
	})
}
