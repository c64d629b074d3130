package devidp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultAddr is where `idgate idp` and `idgate dev` serve the provider.
const DefaultAddr = "127.0.0.1:9400"

// maxResponseSize bounds what a Client reads from a provider.
const maxResponseSize = 1 << 20

// A Client asks a running dev provider for tokens, as scripts and the
// `idgate token` command do.
type Client struct {
	// BaseURL is the provider's URL ("http://127.0.0.1:9400").
	BaseURL string
	// HTTP makes the requests; nil means http.DefaultClient.
	HTTP *http.Client
}

// An Error is an error response from the provider.
type Error struct {
	Status      int
	Code        string // the OAuth error ("invalid_grant")
	Description string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("dev identity provider answered %d: %s", e.Status, e.Description)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Description)
}

// Password gets a delegated token with the resource-owner password grant
// on the v2 token endpoint of tenant ("organizations" when empty). scope
// is a v2 scope parameter ("api://orders-api/.default"); secret is empty
// for a public client.
func (c *Client) Password(ctx context.Context, tenant, clientID, secret, username, password, scope string) (*TokenResponse, []byte, error) {
	return c.tokenRequest(ctx, tenant, url.Values{
		"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {secret},
		"username": {username}, "password": {password}, "scope": {scope},
	})
}

// ClientCredentials gets an app-only token for a confidential client.
func (c *Client) ClientCredentials(ctx context.Context, tenant, clientID, secret, scope string) (*TokenResponse, []byte, error) {
	return c.tokenRequest(ctx, tenant, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope},
	})
}

func (c *Client) tokenRequest(ctx context.Context, tenant string, form url.Values) (*TokenResponse, []byte, error) {
	if tenant == "" {
		tenant = "organizations"
	}
	for k, v := range form {
		if len(v) == 1 && v[0] == "" {
			delete(form, k)
		}
	}
	u := strings.TrimSuffix(c.BaseURL, "/") + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// Mint asks the dev-only /_dev/token endpoint for a token.
func (c *Client) Mint(ctx context.Context, mr MintRequest) (*TokenResponse, []byte, error) {
	body, err := json.Marshal(mr)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+"/_dev/token", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

// Rotate asks the provider to rotate its signing key and returns the new
// signing key's ID.
func (c *Client) Rotate(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+"/_dev/rotate", nil)
	if err != nil {
		return "", err
	}
	data, err := c.send(req)
	if err != nil {
		return "", err
	}
	var out struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.KID == "" {
		return "", fmt.Errorf("dev identity provider: unexpected rotate answer %.200q", data)
	}
	return out.KID, nil
}

// do sends a token request and decodes the response; it also returns the
// response body as received.
func (c *Client) do(req *http.Request) (*TokenResponse, []byte, error) {
	data, err := c.send(req)
	if err != nil {
		return nil, nil, err
	}
	var tr TokenResponse
	if err := json.Unmarshal(data, &tr); err != nil || tr.AccessToken == "" {
		return nil, nil, fmt.Errorf("dev identity provider: not a token response: %.200q", data)
	}
	return &tr, data, nil
}

func (c *Client) send(req *http.Request) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dev identity provider at %s: %w (is `idgate dev` or `idgate idp` running?)", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return nil, fmt.Errorf("dev identity provider: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, &Error{Status: resp.StatusCode, Code: e.Error, Description: e.Description}
		}
		return nil, &Error{Status: resp.StatusCode, Description: strings.TrimSpace(string(data))}
	}
	return data, nil
}

// Directory returns the provider's directory, without passwords and
// secrets.
func (c *Client) Directory(ctx context.Context) (*Directory, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.BaseURL, "/")+"/_dev/directory", nil)
	if err != nil {
		return nil, err
	}
	data, err := c.send(req)
	if err != nil {
		return nil, err
	}
	var d Directory
	if err := json.Unmarshal(data, &d); err != nil || len(d.Tenants) == 0 {
		return nil, fmt.Errorf("dev identity provider: not a directory: %.200q", data)
	}
	return &d, nil
}

// TokenOptions say which token Token gets.
type TokenOptions struct {
	// MintRequest names the tenant, user or app, API, scopes and any
	// overrides.
	MintRequest
	// Password is the user's password and Secret the client's secret,
	// for the real grants; empty means DefaultPassword for both.
	Password string
	Secret   string
	// PublicClient sends no client secret (a client registered without
	// one).
	PublicClient bool
}

// Overrides reports whether o asks for something only the dev-only mint
// endpoint gives: a token version, roles, groups, an audience or an
// expired token.
func (o *TokenOptions) Overrides() bool {
	return o.Version != 0 || o.Roles != nil || o.Groups != nil || o.Audience != "" || o.Expired
}

// Token gets a token as o says: through Entra's own grants when it can
// (password for a user, client_credentials for an app, on the v2 token
// endpoint), else from the dev-only mint endpoint. It returns the token
// response and its body as received.
func (c *Client) Token(ctx context.Context, o TokenOptions) (*TokenResponse, []byte, error) {
	if o.User == "" && o.App == "" {
		return nil, nil, fmt.Errorf("name a user or an app")
	}
	if o.Overrides() {
		return c.Mint(ctx, o.MintRequest)
	}
	d, err := c.Directory(ctx)
	if err != nil {
		return nil, nil, err
	}
	t := &d.Tenants[0]
	if o.Tenant != "" {
		if t = d.tenant(o.Tenant); t == nil {
			return nil, nil, fmt.Errorf("no tenant %q", o.Tenant)
		}
	}
	api, err := mintAPI(t, o.API)
	if err != nil {
		return nil, nil, err
	}
	var user *User
	if o.User != "" {
		if user = t.user(o.User); user == nil {
			return nil, nil, fmt.Errorf("no user %q in tenant %s", o.User, t.ID)
		}
	}
	client, err := mintClient(t, api, o.App, user != nil)
	if err != nil {
		return nil, nil, err
	}
	resource := api.AppIDURI
	if resource == "" {
		resource = api.ClientID
	}
	secret := o.Secret
	if o.PublicClient {
		secret = ""
	} else if secret == "" {
		secret = DefaultPassword
	}
	if user == nil {
		if len(o.Scopes) > 0 {
			return nil, nil, fmt.Errorf("an app-only token has no scopes: name a user")
		}
		return c.ClientCredentials(ctx, t.ID, client.ClientID, secret, resource+"/.default")
	}
	scopes := []string{resource + "/.default"}
	if len(o.Scopes) > 0 {
		scopes = scopes[:0]
		for _, s := range o.Scopes {
			scopes = append(scopes, resource+"/"+s)
		}
	}
	password := o.Password
	if password == "" {
		password = DefaultPassword
	}
	return c.Password(ctx, t.ID, client.ClientID, secret, user.upn(t), password, strings.Join(scopes, " "))
}
