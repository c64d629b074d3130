package authn

import (
	"iter"
	"net/http"
)

// withSpoofedCopies returns remove with the names of the headers in h that
// are another spelling of one of outputs: the same name once "_" is read
// as "-" and letter case ignored. CGI, WSGI, Rack and PHP upstreams see
// "X_User" and "X-User" as the same variable (HTTP_X_USER), so a client
// copy under that spelling would reach them as the identity idgate sets.
func withSpoofedCopies(remove []string, h http.Header, outputs []string) []string {
	for name := range spoofedCopies(h, outputs) {
		remove = append(remove, name)
	}
	return remove
}

// hasSpoofedCopies reports whether withSpoofedCopies would add a name.
func hasSpoofedCopies(h http.Header, outputs []string) bool {
	for range spoofedCopies(h, outputs) {
		return true
	}
	return false
}

// spoofedCopies yields the names of the headers in h that are another
// spelling of one of outputs.
func spoofedCopies(h http.Header, outputs []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if len(outputs) == 0 {
			return
		}
		for name := range h {
			for _, out := range outputs {
				if len(name) == len(out) && name != out && sameVariable(name, out) {
					if !yield(name) {
						return
					}
					break
				}
			}
		}
	}
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
