package authn

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/idgate/idgate/request"
)

// LocationKind says which part of a request a token is read from.
type LocationKind uint8

// The places a jwtRule can read tokens from.
const (
	// InHeader is a request header (jwtRules[].fromHeaders, and the default
	// "Authorization: Bearer").
	InHeader LocationKind = iota + 1
	// InParam is a query parameter (jwtRules[].fromParams, and the default
	// "access_token").
	InParam
	// InCookie is a cookie (jwtRules[].fromCookies).
	InCookie
)

// A Location is one place a token is looked for.
type Location struct {
	Kind LocationKind
	// Name is the header name (in canonical form), query parameter name or
	// cookie name.
	Name string
	// Prefix is what a header value must carry before the token, such as
	// "Bearer "; empty for the whole value. Headers only.
	Prefix string
}

// String describes the location for people: `header "Authorization"
// (prefix "Bearer ")`, `query parameter "access_token"`, `cookie "session"`.
func (l Location) String() string {
	switch l.Kind {
	case InHeader:
		if l.Prefix == "" {
			return fmt.Sprintf("header %q", l.Name)
		}
		return fmt.Sprintf("header %q (prefix %q)", l.Name, l.Prefix)
	case InParam:
		return fmt.Sprintf("query parameter %q", l.Name)
	case InCookie:
		return fmt.Sprintf("cookie %q", l.Name)
	}
	return "unknown location"
}

// The locations a rule reads when it names none: RFC 6750 §2.1 and §2.3, as
// Envoy's jwt_authn defaults them.
var (
	defaultHeader = Location{Kind: InHeader, Name: "Authorization", Prefix: "Bearer "}
	defaultParam  = Location{Kind: InParam, Name: "access_token"}
)

// An extracted token: the raw string and the index of the location (in
// Authenticator.locations) it was found at.
type extracted struct {
	loc int
	raw string
}

// extract appends to out the tokens of a request at locs, in Envoy's
// order: header locations, then query parameters, then cookies, each group
// in the order of locs (which compile sorts the way Envoy does). Every
// value of a repeated header is a token; a query parameter or cookie gives
// its first value. It stops after limit+1 tokens.
func extract(out []extracted, locs []Location, a *request.Attributes, limit int) []extracted {
	add := func(loc int, raw string) bool {
		out = append(out, extracted{loc: loc, raw: raw})
		return len(out) <= limit
	}
	for i, l := range locs {
		switch l.Kind {
		case InHeader:
			for _, v := range a.Header.Values(l.Name) {
				if tok, ok := fromHeaderValue(v, l.Prefix); ok && !add(i, tok) {
					return out
				}
			}
		case InParam:
			if v, ok := queryParam(a.Query, l.Name); ok && !add(i, v) {
				return out
			}
		case InCookie:
			if v, ok := cookie(a.Header, l.Name); ok && !add(i, v) {
				return out
			}
		}
	}
	return out
}

// fromHeaderValue returns the token in one header value. Without a prefix
// the whole value is the token. With one, the value must start with the
// prefix in any letter case (an authentication scheme is case-insensitive,
// RFC 9110 §11.1), or contain it exactly somewhere, as Envoy searches for
// it; the token then starts at the first base64url character after the
// prefix. A value without the prefix holds no token at all.
func fromHeaderValue(v, prefix string) (string, bool) {
	// A field value has no leading or trailing white space (RFC 9110
	// §5.5); HTTP parsers drop it, a front end may not have.
	v = strings.Trim(v, " \t")
	if prefix == "" {
		return v, true
	}
	var rest string
	if len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix) {
		rest = v[len(prefix):]
	} else if i := strings.Index(v, prefix); i >= 0 {
		rest = v[i+len(prefix):]
	} else {
		return "", false
	}
	if i := strings.IndexFunc(rest, isTokenChar); i > 0 {
		rest = rest[i:]
	}
	return rest, true
}

// isTokenChar reports whether r may appear in a compact JWS: the base64url
// alphabet (RFC 4648 §5) and '.'.
func isTokenChar(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' ||
		r == '-' || r == '_' || r == '.'
}

// queryParam returns the first value of the parameter name in the raw
// query string q. Names and values are decoded (percent escapes and '+');
// one that does not decode is taken as it is. A parameter without '=' has
// an empty value.
func queryParam(q, name string) (string, bool) {
	for seg := range strings.SplitSeq(q, "&") {
		n, v, _ := strings.Cut(seg, "=")
		if seg != "" && unescape(n) == name {
			return unescape(v), true
		}
	}
	return "", false
}

func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// cookie returns the first cookie called name in the Cookie headers of h,
// read as Envoy reads them: ';'-separated name=value pairs, spaces before
// the name ignored, a value in double quotes unwrapped, pairs without '='
// skipped.
func cookie(h http.Header, name string) (string, bool) {
	for _, line := range h.Values("Cookie") {
		for seg := range strings.SplitSeq(line, ";") {
			n, v, ok := cutCookie(seg)
			if ok && n == name {
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, true
			}
		}
	}
	return "", false
}

func cutCookie(seg string) (name, value string, ok bool) {
	return strings.Cut(strings.TrimLeft(seg, " "), "=")
}

// withoutParam returns the query string q without any parameter named name;
// the other parameters are kept byte for byte.
func withoutParam(q, name string) string {
	var kept []string
	for seg := range strings.SplitSeq(q, "&") {
		n, _, _ := strings.Cut(seg, "=")
		if seg != "" && unescape(n) != name {
			kept = append(kept, seg)
		}
	}
	return strings.Join(kept, "&")
}

// withoutCookies returns the Cookie header value that remains when every
// cookie called one of names is left out of the Cookie headers of h; left
// is false when no cookie remains.
func withoutCookies(h http.Header, names []string) (value string, left bool) {
	var kept []string
	for _, line := range h.Values("Cookie") {
		for seg := range strings.SplitSeq(line, ";") {
			if n, _, isPair := cutCookie(seg); isPair && slices.Contains(names, n) {
				continue
			}
			if s := strings.TrimLeft(seg, " "); s != "" {
				kept = append(kept, s)
			}
		}
	}
	return strings.Join(kept, "; "), len(kept) > 0
}

// isPreflight reports whether a is a CORS preflight request, which
// authentication lets through untouched (Envoy's bypass_cors_preflight,
// which Istio always sets): OPTIONS with non-empty Origin and
// Access-Control-Request-Method headers.
func isPreflight(a *request.Attributes) bool {
	return a.Method == http.MethodOptions &&
		a.Header.Get("Origin") != "" &&
		a.Header.Get("Access-Control-Request-Method") != ""
}
