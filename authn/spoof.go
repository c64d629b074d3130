package authn

import (
	"net/http"
	"strings"
)

// withSpoofedCopies returns remove with the names of the headers in h that
// are another spelling of one of outputs: the same name once "_" is read
// as "-" and letter case ignored. CGI, WSGI, Rack and PHP upstreams see
// "X_User" and "X-User" as the same variable (HTTP_X_USER), so a client
// copy under that spelling would reach them as the identity idgate sets.
func withSpoofedCopies(remove []string, h http.Header, outputs []string) []string {
	if len(outputs) == 0 {
		return remove
	}
	for name := range h {
		if !strings.ContainsAny(name, "_-") {
			continue
		}
		for _, out := range outputs {
			if name != out && sameVariable(name, out) {
				remove = append(remove, name)
				break
			}
		}
	}
	return remove
}

// sameVariable reports whether header names a and b differ only in letter
// case and in "_" for "-".
func sameVariable(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if fold(a[i]) != fold(b[i]) {
			return false
		}
	}
	return true
}

// fold maps a header name byte to the CGI variable byte it becomes,
// without the upper-casing: "_" to "-", letters to lower case.
func fold(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}
