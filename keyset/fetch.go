package keyset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/idgate/idgate/token"
)

// maxRedirects bounds the redirects the default client follows.
const maxRedirects = 5

// loaded is what one read of a source produced.
type loaded struct {
	keys []token.Key
	// skipped are the JWK Set members token.ParseJWKSReport left out.
	skipped []token.SkippedKey
	// jwksURI is where the JWK Set came from; "" for a file.
	jwksURI string
}

// load reads the keys of a fetched source (file, JWKS URI or discovery)
// once.
func (s *Set) load(ctx context.Context) (loaded, error) {
	switch {
	case s.cfg.File != "":
		data, err := readFile(s.cfg.File)
		if err != nil {
			return loaded{}, err
		}
		return parseKeys(s.cfg.File, data)
	case s.cfg.JWKSURI != "":
		return s.loadJWKS(ctx, s.cfg.JWKSURI)
	default:
		data, err := s.get(ctx, s.discoveryURL)
		if err != nil {
			return loaded{}, err
		}
		d, err := ParseDiscovery(data)
		if err != nil {
			return loaded{}, fmt.Errorf("keyset: %s: %w", s.discoveryURL, err)
		}
		if err := checkIssuer(s.cfg.Issuer, d.Issuer, s.discoveryURL); err != nil {
			return loaded{}, err
		}
		return s.loadJWKS(ctx, d.JWKSURI)
	}
}

// loadJWKS fetches and parses the JWK Set at rawURL.
func (s *Set) loadJWKS(ctx context.Context, rawURL string) (loaded, error) {
	data, err := s.get(ctx, rawURL)
	if err != nil {
		return loaded{}, err
	}
	l, err := parseKeys(rawURL, data)
	l.jwksURI = rawURL
	return l, err
}

// parseKeys parses a JWK Set read from where. A set without a key that can
// verify signatures is an error (token.ParseJWKSReport), so it never
// replaces keys that work.
func parseKeys(where string, data []byte) (loaded, error) {
	keys, skipped, err := token.ParseJWKSReport(data)
	if err != nil {
		return loaded{}, fmt.Errorf("keyset: %s: %w", where, err)
	}
	return loaded{keys: keys, skipped: skipped}, nil
}

// get fetches rawURL and returns its body, which must come with status 200
// and be at most maxBody bytes.
func (s *Set) get(ctx context.Context, rawURL string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("keyset: GET %s: %w", rawURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the method and URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("keyset: GET %s: no complete answer within %s: %w", rawURL, s.cfg.FetchTimeout, err)
		}
		return nil, fmt.Errorf("keyset: GET %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("keyset: GET %s: status %s", rawURL, resp.Status)
	}
	body, err := readCapped(resp.Body)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("keyset: GET %s: no complete answer within %s: %w", rawURL, s.cfg.FetchTimeout, err)
		}
		return nil, fmt.Errorf("keyset: GET %s: %w", rawURL, err)
	}
	return body, nil
}

// readFile reads a JWK Set file of at most maxBody bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyset: %w", err)
	}
	defer f.Close()
	data, err := readCapped(f)
	if err != nil {
		return nil, fmt.Errorf("keyset: read %s: %w", path, err)
	}
	return data, nil
}

// readCapped reads r to its end, failing once it passes maxBody bytes.
func readCapped(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("larger than %d bytes", maxBody)
	}
	return data, nil
}

// newClient returns the client a Set uses when Config.Client is nil: its
// own connection pool (closed with the Set), proxies from the
// environment, and redirects followed only within the same scheme and host.
func newClient() *http.Client {
	return &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			from := via[0].URL
			if req.URL.Scheme != from.Scheme || req.URL.Host != from.Host {
				return fmt.Errorf("redirect to %s://%s refused: keys are only fetched from the configured host", req.URL.Scheme, req.URL.Host)
			}
			return nil
		},
	}
}
