package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/idgate/idgate/authn"
	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/enginetest"
	"github.com/idgate/idgate/mint"
	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/proxy"
	"github.com/idgate/idgate/token"
)

// BenchmarkProxy compares a request through idgate — an RS256 token
// verified on every request, policies evaluated, identity headers set —
// with the same request through a bare httputil.ReverseProxy, both over
// loopback to the same upstream.
func BenchmarkProxy(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)

	// An RS256 key, as Entra ID signs with.
	key, err := mint.NewKey("RS256")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().Unix()
	tok, err := key.Sign(map[string]any{"iss": enginetest.Issuer, "sub": "alice", "tid": "tenant-1", "aud": enginetest.Audience, "iat": now, "exp": now + 3600}, nil)
	if err != nil {
		b.Fatal(err)
	}
	docs, err := policy.Parse("policies.yaml", []byte(policies))
	if err != nil {
		b.Fatal(err)
	}
	keys := token.StaticKeys{key.PublicKey()}
	eng, err := engine.New(docs, engine.Options{Keys: func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil }})
	if err != nil {
		b.Fatal(err)
	}
	p, err := proxy.New(eng, u, proxy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.CloseIdleConnections()
	// The same with a verified-token cache, as idgate serve runs.
	cachedEng, err := engine.New(docs, engine.Options{
		Keys:       func(*securityv1beta1.JWTRule) (token.KeySource, error) { return keys, nil },
		TokenCache: authn.NewCache(authn.CacheConfig{}),
	})
	if err != nil {
		b.Fatal(err)
	}
	cached, err := proxy.New(cachedEng, u, proxy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer cached.CloseIdleConnections()
	bareTransport := &http.Transport{MaxIdleConnsPerHost: proxy.DefaultMaxIdleConnsPerHost}
	defer bareTransport.CloseIdleConnections()
	bare := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: bareTransport,
	}

	for _, tt := range []struct {
		name string
		h    http.Handler
	}{{"idgate", p}, {"idgate-cached", cached}, {"bare", bare}} {
		srv, err := proxy.NewServer(tt.h, proxy.ServerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve(ln)
		target := "http://" + ln.Addr().String() + "/api/orders"
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		get := func(b *testing.B) {
			req, _ := http.NewRequest("GET", target, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.Run(tt.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				get(b)
			}
		})
		b.Run(tt.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get(b)
				}
			})
		})
		client.CloseIdleConnections()
		srv.Shutdown(context.Background())
	}
}

// BenchmarkDeny is the cost of refusing a request without a token: no
// upstream, no network.
func BenchmarkDeny(b *testing.B) {
	u, _ := url.Parse("http://127.0.0.1:1")
	p, err := proxy.New(enginetest.New(b, policies, engine.Options{}).Engine, u, proxy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/orders", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		if w.Code != 403 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
