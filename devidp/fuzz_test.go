package devidp

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzTokenEndpoint sends arbitrary form bodies to the token and
// authorize endpoints: every answer is a token or a clear OAuth error,
// never a panic or a server error.
func FuzzTokenEndpoint(f *testing.F) {
	p, err := New(DefaultDirectory(), Options{Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("/"+tenantID+"/oauth2/v2.0/token", "grant_type=client_credentials&client_id="+clientID+"&client_secret=dev&scope=api%3A%2F%2Forders-api%2F.default")
	f.Add("/organizations/oauth2/token", "grant_type=password&client_id="+clientID+"&client_secret=dev&username=alice&password=dev&resource=api%3A%2F%2Forders-api")
	f.Add("/common/oauth2/v2.0/token", "grant_type=refresh_token&client_id="+clientID+"&client_secret=dev&refresh_token=x&scope=a%2Fb+c%2Fd")
	f.Add("/"+tenantID+"/oauth2/v2.0/token", "grant_type=authorization_code&client_id="+clientID+"&client_secret=dev&code=x&code_verifier=%ff")
	f.Add("/"+tenantID+"/oauth2/v2.0/authorize", "client_id="+clientID+"&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Foauth2%2Fcallback&response_type=code&scope=%2F&user=alice")
	f.Add("/_dev/token", `{"user":"alice","groups":["admins"],"version":1}`)
	f.Fuzz(func(t *testing.T, path, body string) {
		u, err := url.ParseRequestURI(path)
		if err != nil || !strings.HasPrefix(path, "/") || u.RawQuery != "" || u.Fragment != "" || strings.ContainsFunc(path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return // not a request target a client can send
		}
		r := httptest.NewRequest(http.MethodPost, "http://idp.test"+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		switch w.Code {
		case 200, 302, 400, 401, 403, 404, 405, 301, 307, 308: // 3xx: the mux cleans paths
		default:
			t.Fatalf("POST %s %q: status %d\n%s", path, body, w.Code, w.Body)
		}
	})
}
