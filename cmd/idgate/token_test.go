package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idgate/idgate/devidp"
	"github.com/idgate/idgate/token"
)

func newTestIDP(t *testing.T) *httptest.Server {
	t.Helper()
	p, err := devidp.New(devidp.DefaultDirectory(), devidp.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestTokenCmd(t *testing.T) {
	srv := newTestIDP(t)
	for _, tc := range []struct {
		args  []string
		check func(c map[string]any) bool
	}{
		{[]string{"--user", "alice"}, func(c map[string]any) bool { return c["scp"] == "Orders.Read Orders.Write" && c["ver"] == "2.0" }},
		{[]string{"--user", "alice", "--scope", "Orders.Read"}, func(c map[string]any) bool { return c["scp"] == "Orders.Read" }},
		{[]string{"--app", "orders-ops"}, func(c map[string]any) bool { return c["idtyp"] == "app" && c["scp"] == nil }},
		{[]string{"--user", "bob", "--version", "1"}, func(c map[string]any) bool {
			return c["ver"] == "1.0" && c["aud"] == "api://orders-api" && c["iss"] == "https://sts.windows.net/3f8d6a2e-5b7c-4e19-9a0d-1c2b3d4e5f60/"
		}},
		{[]string{"--user", "bob", "--groups", "admins", "--roles", "Orders.Admin"}, func(c map[string]any) bool {
			g, _ := c["groups"].([]any)
			r, _ := c["roles"].([]any)
			return len(g) == 1 && g[0] == "0b1a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" && len(r) == 1 && r[0] == "Orders.Admin"
		}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCmd(t, append([]string{"token", "--idp", srv.URL}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
				t.Errorf("output %q is not one line", out)
			}
			p, err := token.Parse(strings.TrimSpace(out))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(p.Unverified.Claims) {
				t.Errorf("claims %v", p.Unverified.Claims)
			}
		})
	}

	code, out, _ := runCmd(t, "token", "--idp", srv.URL, "--user", "alice", "-o", "json")
	var resp map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &resp) != nil || resp["access_token"] == nil || resp["token_type"] != "Bearer" {
		t.Errorf("-o json: exit %d, %q", code, out)
	}

	for _, args := range [][]string{
		{},
		{"--user", "mallory"},
		{"--user", "alice", "--password", "wrong"},
		{"--app", "orders-client", "--secret", "wrong"},
		{"--user", "alice", "--version", "3"},
		{"--user", "alice", "-o", "yaml"},
	} {
		code, out, errOut := runCmd(t, append([]string{"token", "--idp", srv.URL}, args...)...)
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("token %v: exit %d, stdout %q, stderr %q; want 2, nothing, a message", args, code, out, errOut)
		}
	}
	code, _, errOut := runCmd(t, "token", "--idp", "http://127.0.0.1:1", "--user", "alice")
	if code != 2 || !strings.Contains(errOut, "is `idgate dev` or `idgate idp` running?") {
		t.Errorf("no provider: exit %d, %q", code, errOut)
	}
}

func TestIDPRotateCmd(t *testing.T) {
	srv := newTestIDP(t)
	code, out, errOut := runCmd(t, "idp", "rotate", "--idp", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	kid := strings.TrimSpace(out)
	code, tok, _ := runCmd(t, "token", "--idp", srv.URL, "--app", "orders-client")
	p, err := token.Parse(strings.TrimSpace(tok))
	if code != 0 || err != nil || p.Unverified.KeyID != kid {
		t.Errorf("token after rotate: exit %d, %v, kid %v, want %s", code, err, p, kid)
	}
}

func TestIDPPrintDirectory(t *testing.T) {
	code, out, _ := runCmd(t, "idp", "--print-directory")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := devidp.ParseDirectory("printed", []byte(out)); err != nil {
		t.Errorf("printed directory does not parse: %v", err)
	}
}
