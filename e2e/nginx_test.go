package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/idgate/idgate/extauthz"
	"github.com/idgate/idgate/forwardauth"
)

// nginxConf is the configuration docs/forward-auth.md recommends, around
// a test upstream and a test idgate.
var nginxConf = template.Must(template.New("nginx.conf").Parse(`
{{if .Root}}user root;{{end}}
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;
events { worker_connections 64; }
http {
    access_log {{.Dir}}/access.log;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;

    # WWW-Authenticate of a 403 (a token for another audience); nginx
    # copies the one of a 401 itself.
    map $status $idgate_challenge_403 {
        403     $idgate_www_authenticate;
        default "";
    }

    upstream idgate { server {{.Idgate}}; keepalive 16; }

    server {
        listen {{.Listen}};

        location / {
            auth_request /_idgate;
            auth_request_set $idgate_request_id $upstream_http_x_request_id;
            auth_request_set $idgate_www_authenticate $upstream_http_www_authenticate;
            auth_request_set $idgate_user_oid $upstream_http_x_user_oid;

            # Identity headers: idgate's value, or none at all (an empty
            # value removes the header), never the client's.
            proxy_set_header X-User-Oid $idgate_user_oid;

            # The token is not forwarded (forwardOriginalToken: false).
            proxy_set_header Authorization "";
            proxy_set_header X-Request-Id $idgate_request_id;
            add_header X-Request-Id $idgate_request_id always;
            add_header WWW-Authenticate $idgate_challenge_403 always;

            proxy_pass {{.Upstream}};
        }

        location = /_idgate {
            internal;
            proxy_pass http://idgate/nginx;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
    }
}
`))

// startNginx runs nginx with nginxConf in front of upstream, asking
// idgate, and returns its base URL. Without nginx on PATH the test is
// skipped, unless CI is set: CI must run it.
func startNginx(t *testing.T, upstream, idgate string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nginx is not on PATH and CI is set: .ci/run installs it (%v)", err)
		}
		t.Skipf("nginx is not on PATH (apt-get install nginx-light, or nginx): %v", err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	var conf bytes.Buffer
	err = nginxConf.Execute(&conf, map[string]any{
		"Root": os.Geteuid() == 0, "Dir": dir, "Listen": listen, "Upstream": upstream, "Idgate": strings.TrimPrefix(idgate, "http://"),
	})
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
		}
	})
	// Wait until nginx listens (or gives up).
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", err, out.String(), log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s", listen)
		}
	}
	return "http://" + listen
}

// nginx with auth_request in front of an upstream enforces idgate's
// decisions, with the configuration docs/forward-auth.md gives.
func TestNginx(t *testing.T) {
	f := newFixture(t)
	up := newUpstream(t)
	authz := httptest.NewServer(forwardauth.Handler(f.Engine, forwardauth.Options{
		TrustedProxies: 1,
		Next:           extauthz.HTTPHandler(f.Engine, extauthz.Options{TrustedProxies: 1, Logger: discard}),
		Logger:         discard,
	}))
	t.Cleanup(authz.Close)
	base := startNginx(t, up.URL, authz.URL)
	valid := f.token(t, nil)

	type result struct {
		status int
		header http.Header
		body   string
		echo   *echoed // what the upstream saw; nil when it saw nothing
	}
	send := func(t *testing.T, method, target string, h map[string]string) result {
		t.Helper()
		before := up.hits.Load()
		req, err := http.NewRequest(method, base+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "orders.example"
		setHeaders(req, h)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r := result{status: resp.StatusCode, header: resp.Header, body: string(b)}
		hits := up.hits.Load() - before
		switch {
		case hits > 1:
			t.Fatalf("the upstream saw %d requests", hits)
		case hits == 1:
			r.echo = &echoed{}
			if err := json.Unmarshal(b, r.echo); err != nil {
				t.Fatalf("upstream answer %q: %v", b, err)
			}
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("no X-Request-Id in nginx's answer (%d)", r.status)
		}
		return r
	}

	t.Run("allowed: identity headers reach the upstream, the token does not", func(t *testing.T) {
		r := send(t, "GET", "/api/orders?page=2", map[string]string{"Authorization": "Bearer " + valid, "X-Request-Id": "nginx-1"})
		if r.status != 200 || r.echo == nil {
			t.Fatalf("status %d, upstream saw %v; body %q", r.status, r.echo, r.body)
		}
		if got := r.echo.Header.Get("X-User-Oid"); got != "oid-alice" {
			t.Errorf("upstream X-User-Oid %q, want oid-alice", got)
		}
		if got := r.echo.Header.Get("Authorization"); got != "" {
			t.Errorf("upstream got the token: %q", got)
		}
		if r.echo.URI != "/api/orders?page=2" {
			t.Errorf("upstream URI %q", r.echo.URI)
		}
		if got := r.echo.Header.Get("X-Request-Id"); got != "nginx-1" || r.header.Get("X-Request-Id") != "nginx-1" {
			t.Errorf("request id upstream %q, to the client %q, want nginx-1 both", got, r.header.Get("X-Request-Id"))
		}
		if d, ok := f.decision("nginx-1"); !ok || d.frontend != "nginx" || !d.d.Allowed {
			t.Errorf("decision %+v, %v: want an allowed one from nginx under the same id", d, ok)
		}
	})
	t.Run("a forged identity header is replaced", func(t *testing.T) {
		r := send(t, "GET", "/api/orders", map[string]string{"Authorization": "Bearer " + valid, "X-User-Oid": "forged"})
		if r.echo == nil || r.echo.Header.Get("X-User-Oid") != "oid-alice" {
			t.Fatalf("status %d, upstream saw %+v", r.status, r.echo)
		}
	})
	t.Run("a forged identity header is removed when idgate sets none", func(t *testing.T) {
		r := send(t, "GET", "/public/logo.png", map[string]string{"X-User-Oid": "forged"})
		if r.echo == nil {
			t.Fatalf("status %d, want 200", r.status)
		}
		if vs := r.echo.Header.Values("X-User-Oid"); len(vs) != 0 {
			t.Errorf("upstream X-User-Oid %q, want none", vs)
		}
	})
	t.Run("no token on a protected route: 403", func(t *testing.T) {
		r := send(t, "GET", "/api/orders", nil)
		if r.status != 403 || r.echo != nil {
			t.Fatalf("status %d, upstream saw %v", r.status, r.echo)
		}
		if vs := r.header.Values("Www-Authenticate"); len(vs) != 0 {
			t.Errorf("WWW-Authenticate %q on a policy denial", vs)
		}
	})
	t.Run("bad token: 401 with one WWW-Authenticate", func(t *testing.T) {
		r := send(t, "GET", "/api/orders", map[string]string{"Authorization": "Bearer " + f.token(t, map[string]any{"exp": 1})})
		if r.status != 401 || r.echo != nil {
			t.Fatalf("status %d, upstream saw %v", r.status, r.echo)
		}
		want := `Bearer realm="http://orders.example/api/orders", error="invalid_token"`
		if vs := r.header.Values("Www-Authenticate"); len(vs) != 1 || vs[0] != want {
			t.Errorf("WWW-Authenticate %q, want exactly %q", vs, want)
		}
	})
	t.Run("a token for another audience: 403 with WWW-Authenticate", func(t *testing.T) {
		r := send(t, "GET", "/api/orders", map[string]string{"Authorization": "Bearer " + f.token(t, map[string]any{"aud": "api://other"})})
		if r.status != 403 || r.echo != nil {
			t.Fatalf("status %d, upstream saw %v", r.status, r.echo)
		}
		if vs := r.header.Values("Www-Authenticate"); len(vs) != 1 || !strings.Contains(vs[0], `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", vs)
		}
	})
	t.Run("the request id of a denial finds its decision", func(t *testing.T) {
		r := send(t, "GET", "/admin", map[string]string{"Authorization": "Bearer " + valid})
		id := r.header.Get("X-Request-Id")
		d, ok := f.decision(id)
		if r.status != 403 || !ok || d.d.Reason != "denied_by_policy" {
			t.Errorf("status %d, decision under %q: %+v %v", r.status, id, d, ok)
		}
	})
	t.Run("the original URI is decided, not nginx's normalized one", func(t *testing.T) {
		r := send(t, "GET", "/public/%2e%2e/admin", nil)
		if r.status != 403 || r.echo != nil {
			t.Fatalf("status %d, upstream saw %v", r.status, r.echo)
		}
	})
	t.Run("forged client addresses are overridden by nginx", func(t *testing.T) {
		// Only 127.0.0.2 may use /local/; the client is 127.0.0.1.
		r := send(t, "GET", "/local/debug", map[string]string{"X-Real-IP": "127.0.0.2", "X-Forwarded-For": "127.0.0.2"})
		if r.status != 403 || r.echo != nil {
			t.Fatalf("status %d, upstream saw %v", r.status, r.echo)
		}
	})
	t.Run("the client address is X-Real-IP", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
		}}
		defer client.CloseIdleConnections()
		req, _ := http.NewRequest("GET", base+"/local/debug", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d from 127.0.0.2, want 200", resp.StatusCode)
		}
	})
	t.Run("a target idgate cannot authorize is refused", func(t *testing.T) {
		// nginx passes a fragment on in $request_uri (and refuses a NUL
		// itself); idgate refuses it with a 403, which nginx passes on.
		before := up.hits.Load()
		resp := rawGet(t, base, "/api/orders#frag", "Authorization: Bearer "+valid)
		if resp.StatusCode != 403 || up.hits.Load() != before {
			t.Fatalf("status %d, upstream hits %d", resp.StatusCode, up.hits.Load()-before)
		}
		d, ok := f.decision(resp.Header.Get("X-Request-Id"))
		if resp.Header.Get("X-Request-Id") == "" || ok {
			t.Errorf("X-Request-Id %q, decision %+v: want an id and no decision", resp.Header.Get("X-Request-Id"), d)
		}
	})
}

// rawGet sends "GET target" to base exactly as given, which net/http
// cannot do for a target with a fragment, and returns the response.
func rawGet(t *testing.T, base, target string, headers ...string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET " + target + " HTTP/1.1\r\nHost: orders.example\r\nConnection: close\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
