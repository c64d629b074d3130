package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The published vectors in testdata (see testdata/README.md) are run as
// they are: every outcome must be one the vector accepts, except where the
// verify contract decides otherwise (listed, with the reason, below).

func readTestdata(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", name))
}

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	data, err := readTestdata(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// outcome maps Verify's result to a vector category.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var e *Error
	if !errors.As(err, &e) {
		return "error: " + err.Error()
	}
	return string(e.Code)
}

type publicVector struct {
	Name            string          `json:"name"`
	Token           string          `json:"token"`
	JWKS            json.RawMessage `json:"jwks"`
	Issuer          *string         `json:"issuer"`
	Audiences       []string        `json:"audiences"`
	Now             int64           `json:"now"`
	Skew            int64           `json:"clock_skew_seconds"`
	Expected        string          `json:"expected"`
	Accept          []string        `json:"accept"`
	OptionalFeature string          `json:"optional_feature"`
}

func TestPublicVectors(t *testing.T) {
	var vectors []publicVector
	loadJSON(t, "jwt-public-vectors.json", &vectors)
	if len(vectors) != 105 {
		t.Fatalf("read %d vectors, want 105", len(vectors))
	}
	for _, vec := range vectors {
		t.Run(vec.Name, func(t *testing.T) {
			keys, jwksErr := ParseJWKS(vec.JWKS)
			if jwksErr != nil && vec.OptionalFeature != "hmac" {
				// Only the HMAC vectors' sets (oct keys alone) are unusable.
				t.Fatalf("ParseJWKS: %v", jwksErr)
			}
			cfg := Config{
				Audiences: vec.Audiences,
				Keys:      StaticKeys(keys),
				Skew:      time.Duration(vec.Skew) * time.Second,
				Now:       func() time.Time { return time.Unix(vec.Now, 0) },
			}
			if vec.Issuer != nil {
				cfg.Issuers = []string{*vec.Issuer}
			}
			v, err := NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), vec.Token)
			got := outcome(err)
			if vec.OptionalFeature == "hmac" {
				// HMAC keys are shared secrets and idgate's keys are public:
				// every HS* token is unsupported_alg, whatever the vector
				// expects of a verifier that has the secret.
				if got != string(UnsupportedAlg) {
					t.Errorf("HS* vector: got %s (%v), want unsupported_alg", got, err)
				}
				return
			}
			if !slices.Contains(vec.Accept, got) {
				t.Errorf("got %s (%v), want one of %v", got, err, vec.Accept)
			}
		})
	}
}

type wycheproofVector struct {
	TcID            int             `json:"tcId"`
	Group           string          `json:"group"`
	Comment         string          `json:"comment"`
	JWS             string          `json:"jws"`
	JWKS            json.RawMessage `json:"jwks"`
	Result          string          `json:"result"`
	OptionalFeature string          `json:"optional_feature"`
	Recommendation  string          `json:"proxy_recommendation"`
}

// wycheproofDisagreements are the vectors Wycheproof calls valid that the
// verify contract rejects, with the code it requires.
var wycheproofDisagreements = map[string]Code{
	// "an empty segment → malformed": a JWT always has claims.
	"emptyPayload": Malformed,
	// The RFC 7520 ES512 key carries the non-standard "alg":"ES521", and a
	// key's own alg restricts it.
	"rfc7520/Figure27":           AlgNotAllowed,
	"rfc7520WithKeyOps/Figure27": AlgNotAllowed,
	// RFC 7520 §4.2 signs with PS384 and Wycheproof's copy of the key says
	// "alg":"PS256".
	"rfc7520/Figure20":           AlgNotAllowed,
	"rfc7520WithKeyOps/Figure20": AlgNotAllowed,
}

// verifyJWS verifies a JWS whose payload need not be a JWT claims set, as
// Verify does up to and including the signature.
func verifyJWS(ctx context.Context, v *Verifier, raw string) error {
	p, _, err := parseJWS(raw)
	if err != nil {
		return err
	}
	if p.alg = lookupAlgorithm(p.Unverified.Algorithm); p.alg == nil {
		return &Error{Code: UnsupportedAlg, Detail: unsupportedAlgDetail(p.Unverified.Algorithm)}
	}
	if _, _, e := v.checkSignature(ctx, p); e != nil {
		return e
	}
	return nil
}

func TestWycheproof(t *testing.T) {
	var vectors []wycheproofVector
	loadJSON(t, "wycheproof-jws.json", &vectors)
	if len(vectors) != 401 {
		t.Fatalf("read %d vectors, want 401", len(vectors))
	}
	counts := map[string]int{}
	for _, vec := range vectors {
		t.Run(fmt.Sprintf("%d_%s_%s", vec.TcID, vec.Group, vec.Comment), func(t *testing.T) {
			keys, jwksErr := ParseJWKS(vec.JWKS)
			v, err := NewVerifier(Config{Keys: StaticKeys(keys)})
			if err != nil {
				t.Fatal(err)
			}
			err = verifyJWS(context.Background(), v, vec.JWS)
			got := outcome(err)
			want := "ok"
			switch {
			case vec.OptionalFeature == "hmac":
				// See TestPublicVectors: every HS* token is unsupported_alg;
				// malformed ones fail before their alg is looked at.
				if got == "ok" {
					t.Fatalf("tcId %d: HMAC vector accepted", vec.TcID)
				}
				counts["hmac"]++
				return
			case vec.Result == "invalid" || vec.Recommendation == "reject":
				if got == "ok" {
					t.Fatalf("tcId %d (%s): invalid vector accepted", vec.TcID, vec.Comment)
				}
				counts["rejected"]++
				return
			case wycheproofDisagreements[vec.Comment] != "":
				want = string(wycheproofDisagreements[vec.Comment])
			case wycheproofDisagreements[vec.Group+"/"+vec.Comment] != "":
				want = string(wycheproofDisagreements[vec.Group+"/"+vec.Comment])
			}
			if jwksErr != nil {
				t.Fatalf("tcId %d: ParseJWKS: %v", vec.TcID, jwksErr)
			}
			if got != want {
				t.Fatalf("tcId %d (%s): got %s (%v), want %s", vec.TcID, vec.Comment, got, err, want)
			}
			counts["valid, "+want]++
		})
	}
	t.Logf("wycheproof: %v", counts)
}

func TestEntraIssuerTemplates(t *testing.T) {
	var vectors []struct {
		Name     string `json:"name"`
		Template string `json:"issuer_template"`
		Iss      string `json:"token_iss"`
		Tid      string `json:"token_tid"`
		Valid    bool   `json:"expected_valid"`
	}
	loadJSON(t, "entra-issuer-template-vectors.json", &vectors)
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, vec := range vectors {
		t.Run(vec.Name, func(t *testing.T) {
			s, err := newIssuerSet([]string{vec.Template}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.accepts(vec.Iss, vec.Tid); got != vec.Valid {
				t.Errorf("accepts(%q, %q) with %q = %v, want %v", vec.Iss, vec.Tid, vec.Template, got, vec.Valid)
			}
		})
	}
}

func TestEnvoyAudienceMatching(t *testing.T) {
	var vectors []struct {
		Test       string   `json:"test"`
		Configured []string `json:"configured_audiences"`
		Aud        []string `json:"token_aud"`
		Allowed    bool     `json:"expected_allowed"`
	}
	loadJSON(t, "envoy-audience-matching.json", &vectors)
	if len(vectors) != 35 {
		t.Fatalf("read %d vectors, want 35", len(vectors))
	}
	for _, vec := range vectors {
		s := newAudienceSet(vec.Configured)
		if got := s.accepts(vec.Aud); got != vec.Allowed {
			t.Errorf("%s: %q accepts %q = %v, want %v", vec.Test, vec.Configured, vec.Aud, got, vec.Allowed)
		}
	}
}
