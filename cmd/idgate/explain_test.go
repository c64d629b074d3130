package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const (
	v2Issuer = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
	v1Issuer = "https://sts.windows.net/11111111-2222-3333-4444-555555555555/"
	apiID    = "6e0c9d4b-1a8f-4a36-9a5b-3c2f3d1e0a77"
)

func TestExplainDeniedByScope(t *testing.T) {
	code, out, errOut := runIdgate(t, "", "explain", "-p", "../../examples/roles-groups-scopes.yaml",
		"-X", "POST", "--url", "https://orders.example.com/api/orders",
		"--claims", `{"iss":"`+v2Issuer+`","aud":"`+apiID+`","sub":"alice","scp":"Orders.Read"}`)
	if code != 1 {
		t.Fatalf("exit status = %d, want 1 (denied)\n%s", code, errOut)
	}
	for _, want := range []string{
		"403 denied (denied_by_policy) by orders/writes-need-scope rule 0\n",
		"jwtRule 0 (issuer \"" + v2Issuer + "\"): verified",
		`to[0].operation.methods: "POST" matches "POST"`,
		"DENY orders/admin-only: no rule matched",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestExplainAllowedExits0(t *testing.T) {
	code, out, errOut := runIdgate(t, "", "explain", "-p", "../../examples/localhost-exempt.yaml", "--source-ip", "::1")
	if code != 0 {
		t.Fatalf("exit status = %d, want 0\n%s%s", code, out, errOut)
	}
	if !strings.HasPrefix(out, "200 allowed (allowed_by_policy) by orders/token-or-localhost rule 1\n") {
		t.Errorf("output:\n%s", out)
	}
}

// The v1-token-meets-v2-issuer mistake is the most common Entra failure:
// explain must name it and say what to change.
func TestExplainHintsV1TokenAtV2Rule(t *testing.T) {
	_, out, _ := runIdgate(t, "", "explain", "-p", "../../examples/aad-token-required.yaml",
		"--claims", `{"iss":"`+v1Issuer+`","aud":"api://orders","sub":"alice"}`)
	if !strings.HasPrefix(out, "401 denied (wrong_issuer)") {
		t.Errorf("want a 401 wrong_issuer:\n%s", out)
	}
	if !strings.Contains(out, `(v1) but only "`+v2Issuer+`" (v2) is accepted — set accessTokenAcceptedVersion: 2`) {
		t.Errorf("no v1/v2 hint:\n%s", out)
	}
}

func TestExplainHintsScopeNotSplit(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/p.yaml", `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: entra, namespace: orders}
spec:
  jwtRules:
  - issuer: `+v2Issuer+`
    jwksUri: https://login.microsoftonline.com/common/discovery/v2.0/keys
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: readers, namespace: orders}
spec:
  rules:
  - when:
    - key: request.auth.claims[scp]
      values: ["Orders.Read"]
`)
	code, out, _ := runIdgate(t, "", "explain", "-p", dir+"/p.yaml", "-o", "json",
		"--claims", `{"iss":"`+v2Issuer+`","sub":"alice","scp":"Orders.Read Orders.Write"}`)
	if code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	var rec explainRecord
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rec.Status != 403 || rec.Reason != "no_allow_match" || rec.Policy != "orders/readers" {
		t.Errorf("decision = %d %s %s, want 403 no_allow_match orders/readers", rec.Status, rec.Reason, rec.Policy)
	}
	if len(rec.Hints) != 1 || !strings.Contains(rec.Hints[0], "spaceDelimitedClaims") {
		t.Errorf("hints = %q, want the spaceDelimitedClaims hint", rec.Hints)
	}
	if rec.Authorization == nil || len(rec.Tokens) != 1 || rec.Tokens[0].Checks[0].Code != "" {
		t.Errorf("record lacks the trace or the verified token: %s", out)
	}
}

func TestExplainRealTokenWithJWKS(t *testing.T) {
	dir := t.TempDir()
	key := newTestKey(t)
	writeFile(t, dir+"/jwks.json", string(key.JWKS()))
	writeFile(t, dir+"/p.yaml", `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: entra, namespace: orders}
spec:
  jwtRules:
  - issuer: `+v2Issuer+`
    jwksUri: https://login.microsoftonline.com/common/discovery/v2.0/keys
`)
	tok, err := key.Sign(map[string]any{"iss": v2Issuer, "sub": "alice", "exp": 2000000000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runIdgate(t, tok, "explain", "-p", dir+"/p.yaml", "--jwks", dir+"/jwks.json", "--token", "-", "--at", "1900000000")
	if code != 0 || !strings.HasPrefix(out, "200 allowed (allowed_no_policies)") {
		t.Errorf("exit %d:\n%s%s", code, out, errOut)
	}
	code, out, _ = runIdgate(t, tok, "explain", "-p", dir+"/p.yaml", "--jwks", dir+"/jwks.json", "--token", "-", "--at", "2000000061")
	if code != 1 || !strings.HasPrefix(out, "401 denied (expired)") {
		t.Errorf("past exp+skew: exit %d:\n%s", code, out)
	}
}

func TestExplainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"explain"},
		{"explain", "-p", "../../examples", "--token", "x", "--claims", "{}"},
		{"explain", "-p", "../../examples", "--jwks", "k.json"},
		{"explain", "-p", "../../examples", "--url", "ftp://x/"},
		{"explain", "-p", "../../examples", "-H", "novalue"},
		{"explain", "-p", "../../examples", "--claims", "[1]"},
		{"explain", "-p", "../../examples", "--token-in", "body:x"},
		{"explain", "-p", "testdata/test/missing.yaml"},
	} {
		if code, _, _ := runIdgate(t, "", args...); code != 2 {
			t.Errorf("idgate %v exited %d, want 2", args, code)
		}
	}
}
