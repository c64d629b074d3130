package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/idgate/idgate/config"
	"github.com/idgate/idgate/mint"
)

// b64 is base64url without padding, as JWS segments are written.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// forge writes a compact JWS from raw header and payload JSON and a
// signature, none of which need be valid.
func forge(header, payload string, sig []byte) string {
	return b64([]byte(header)) + "." + b64([]byte(payload)) + "." + b64(sig)
}

// claimsJSON is the JSON of the usual claims, changed by claims.
func claimsJSON(t *testing.T, claims map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{"iss": "https://issuer.example", "sub": "alice", "aud": "api://orders", "oid": "oid-alice", "iat": now, "exp": now + 3600}
	for k, v := range claims {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every attack of jwt-attacks.md, end to end through the reverse proxy
// and ext_authz: none of them reaches the upstream.
func TestAttackTokens(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	kid := g.key.ID()
	now := time.Now().Unix()
	payload := claimsJSON(t, nil)
	valid := g.token(nil)
	parts := strings.Split(valid, ".")

	attacker, err := mint.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := g.key.Impostor()
	if err != nil {
		t.Fatal(err)
	}
	rsaAttacker, err := mint.NewKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	var attackerJWK map[string]any
	{
		var set struct{ Keys []map[string]any }
		json.Unmarshal(attacker.JWKS(), &set)
		attackerJWK = set.Keys[0]
	}
	// HS256 keyed with what an attacker knows of the public key: the
	// JWKS itself and the PEM of the key.
	pub := g.key.PublicKey().Public
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := func(secret []byte) string {
		h := b64([]byte(`{"alg":"HS256","kid":"`+kid+`","typ":"JWT"}`)) + "." + b64([]byte(payload))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(h))
		return h + "." + b64(m.Sum(nil))
	}
	sigOf := func(tok string) []byte {
		s, _ := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
		return s
	}
	// withHeader signs the usual claims with g.key under extra header
	// members: a valid signature over a header the attacker chose.
	withHeader := func(h map[string]any) string { return signToken(t, g.key, nil, h) }
	tok := func(s string) []string { return []string{"Authorization: Bearer " + s} }

	g.run(t, []attack{
		{name: "the valid token", target: "/api/orders", headers: tok(valid), status: 200},
		{name: "alg none", target: "/api/orders", headers: tok(forge(`{"alg":"none","typ":"JWT"}`, payload, nil)), status: 401},
		{name: "alg NoNe", target: "/api/orders", headers: tok(forge(`{"alg":"NoNe","kid":"`+kid+`"}`, payload, nil)), status: 401},
		{name: "alg none without a signature segment", target: "/api/orders", headers: tok(b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(payload))), status: 401},
		{name: "real alg, empty signature", target: "/api/orders", headers: tok(parts[0] + "." + parts[1] + "."), status: 401},
		{name: "HS256 keyed with the JWKS", target: "/api/orders", headers: tok(hs(g.idp.jwks())), status: 401},
		{name: "HS256 keyed with the PEM public key", target: "/api/orders", headers: tok(hs(pemKey)), status: 401},
		{name: "RS256 header on the ES256 key", target: "/api/orders", headers: tok(forge(`{"alg":"RS256","kid":"`+kid+`"}`, payload, sigOf(valid))), status: 401},
		{name: "unknown kid", target: "/api/orders", headers: tok(signToken(t, attacker, nil, nil)), status: 401},
		{name: "known kid, attacker's key", target: "/api/orders", headers: tok(signToken(t, impostor, nil, nil)), status: 401},
		{name: "no kid, attacker's key", target: "/api/orders", headers: tok(signToken(t, attacker, nil, map[string]any{"kid": nil})), status: 401},
		{name: "another algorithm's attacker key", target: "/api/orders", headers: tok(signToken(t, rsaAttacker, nil, map[string]any{"kid": kid})), status: 401},
		{name: "embedded jwk", target: "/api/orders", headers: tok(signToken(t, attacker, nil, map[string]any{"jwk": attackerJWK})), status: 401},
		{name: "jku to the attacker", target: "/api/orders", headers: tok(signToken(t, attacker, nil, map[string]any{"jku": "http://127.0.0.1:1/jwks"})), status: 401},
		{name: "x5u to the attacker", target: "/api/orders", headers: tok(signToken(t, attacker, nil, map[string]any{"x5u": "http://127.0.0.1:1/cert"})), status: 401},
		{name: "kid path traversal", target: "/api/orders", headers: tok(signToken(t, attacker, nil, map[string]any{"kid": "../../../../dev/null"})), status: 401},
		{name: "crit", target: "/api/orders", headers: tok(withHeader(map[string]any{"crit": []string{"exp"}})), status: 401},
		{name: "b64 false", target: "/api/orders", headers: tok(withHeader(map[string]any{"b64": false, "crit": []string{"b64"}})), status: 401},
		{name: "zip", target: "/api/orders", headers: tok(withHeader(map[string]any{"zip": "DEF"})), status: 401},
		{name: "enc", target: "/api/orders", headers: tok(withHeader(map[string]any{"enc": "A256GCM"})), status: 401},
		{name: "nested JWT", target: "/api/orders", headers: tok(withHeader(map[string]any{"cty": "JWT"})), status: 401},
		{name: "five segments (JWE)", target: "/api/orders", headers: tok(valid + ".AAAA.AAAA"), status: 401},
		{name: "four segments", target: "/api/orders", headers: tok(valid + ".AAAA"), status: 401},
		{name: "padded segments", target: "/api/orders", headers: tok(valid + "=="), status: 401},
		{name: "psychic signature r=s=0", target: "/api/orders", headers: tok(parts[0] + "." + parts[1] + "." + b64(make([]byte, 64))), status: 401},
		{name: "signature too long", target: "/api/orders", headers: tok(parts[0] + "." + parts[1] + "." + b64(append(sigOf(valid), 0))), status: 401},
		{name: "payload changed after signing", target: "/api/orders", headers: tok(parts[0] + "." + b64([]byte(claimsJSON(t, map[string]any{"oid": "oid-admin"}))) + "." + parts[2]), status: 401},
		{name: "duplicate alg in the header", target: "/api/orders", headers: tok(forge(`{"alg":"ES256","alg":"none","kid":"`+kid+`"}`, payload, sigOf(valid))), status: 401},
		{name: "duplicate sub, signed", target: "/api/orders", headers: tok(signedRaw(t, g, `{"iss":"https://issuer.example","sub":"alice","sub":"admin","aud":"api://orders","exp":`+itoa(now+600)+`}`)), status: 401},
		{name: "claim names in another case, signed", target: "/api/orders", headers: tok(signedRaw(t, g, `{"ISS":"https://issuer.example","sub":"alice","aud":"api://orders","exp":`+itoa(now+600)+`}`)), status: 401},
		{name: "exp as a string", target: "/api/orders", headers: tok(g.token(map[string]any{"exp": itoa(now + 600)})), status: 401},
		{name: "exp beyond int64", target: "/api/orders", headers: tok(signedRaw(t, g, `{"iss":"https://issuer.example","sub":"alice","aud":"api://orders","exp":2.001e+206}`)), status: 401},
		{name: "no exp", target: "/api/orders", headers: tok(g.token(map[string]any{"exp": nil})), status: 200},
		{name: "another audience", target: "/api/orders", headers: tok(g.token(map[string]any{"aud": "api://payments"})), status: 403},
		{name: "Microsoft Graph's audience", target: "/api/orders", headers: tok(g.token(map[string]any{"aud": "https://graph.microsoft.com"})), status: 403},
		{name: "an audience list with ours", target: "/api/orders", headers: tok(g.token(map[string]any{"aud": []string{"api://payments", "api://orders"}})), status: 200},
		{name: "aud as a number", target: "/api/orders", headers: tok(g.token(map[string]any{"aud": 7})), status: 401},
		{name: "another issuer, same key", target: "/api/orders", headers: tok(g.token(map[string]any{"iss": "https://login.microsoftonline.com/other-tenant/v2.0"})), status: 401},
		{name: "issuer with a trailing slash", target: "/api/orders", headers: tok(g.token(map[string]any{"iss": "https://issuer.example/"})), status: 401},
		{name: "issuer in another case", target: "/api/orders", headers: tok(g.token(map[string]any{"iss": "https://ISSUER.example"})), status: 401},
		{name: "expired inside the skew", target: "/api/orders", headers: tok(g.token(map[string]any{"exp": now - 30})), status: 200},
		{name: "expired just outside the skew", target: "/api/orders", headers: tok(g.token(map[string]any{"exp": now - 75})), status: 401},
		{name: "expired long ago", target: "/api/orders", headers: tok(g.token(map[string]any{"exp": now - 86400})), status: 401},
		{name: "not yet valid inside the skew", target: "/api/orders", headers: tok(g.token(map[string]any{"nbf": now + 30})), status: 200},
		{name: "not yet valid outside the skew", target: "/api/orders", headers: tok(g.token(map[string]any{"nbf": now + 90})), status: 401},
		{name: "a 20 KiB signed token is fine", target: "/api/orders", headers: tok(g.token(map[string]any{"pad": strings.Repeat("x", 20<<10)})), status: 200},
		{name: "a token of dots", target: "/api/orders", headers: tok(strings.Repeat(".", 30<<10)), status: 401},
		{name: "a deeply nested payload, signed", target: "/api/orders", headers: tok(signedRaw(t, g, `{"iss":"https://issuer.example","sub":"alice","aud":"api://orders","exp":`+itoa(now+600)+`,"x":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`}`)), status: 401},
		{name: "a garbage token on a path that needs none", target: "/public/logo.png", headers: tok("garbage"), status: 401},
		{name: "an expired token on a path that needs none", target: "/public/logo.png", headers: tok(g.token(map[string]any{"exp": now - 3600})), status: 401},
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// signedRaw signs payload JSON exactly as written (duplicate members,
// odd numbers) with the gateway's raw key: the token a compromised or
// careless issuer would produce.
func signedRaw(t *testing.T, g *gateway, payload string) string {
	t.Helper()
	input := b64([]byte(`{"alg":"ES256","kid":"`+rawKID+`","typ":"JWT"}`)) + "." + b64([]byte(payload))
	sig, err := jwt.SigningMethodES256.Sign(input, g.rawKey)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// A token that was verified (and may be cached) stops passing the moment
// it expires: a replay after its exp plus the skew gets 401.
func TestAttackReplayAfterExpiry(t *testing.T) {
	g := startGateway(t, gatewayOptions{config: func(c *config.Config) {
		c.Keys.ClockSkew = config.Duration(time.Nanosecond)
	}})
	exp := time.Now().Add(1500 * time.Millisecond)
	tok := g.token(map[string]any{"exp": exp.Unix()})
	for i := range 3 {
		if r := g.get("/api/orders", tok, ""); r.status != 200 && time.Now().Before(exp.Add(-500*time.Millisecond)) {
			t.Fatalf("use %d before expiry: %d, want 200", i, r.status)
		}
	}
	time.Sleep(time.Until(exp.Truncate(time.Second).Add(1100 * time.Millisecond)))
	for i := range 3 {
		if r := g.get("/api/orders", tok, fmt.Sprintf("replay-%d", i)); r.status != 401 {
			t.Errorf("replay %d after expiry: %d, want 401", i, r.status)
		}
		if got := g.check("GET", "orders.example", "/api/orders", "127.0.0.1", map[string]string{"authorization": "Bearer " + tok}); got != 401 {
			t.Errorf("ext_authz replay %d after expiry: %d, want 401", i, got)
		}
	}
}
