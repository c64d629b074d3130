package request

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Errors a PathError wraps; callers branch on them with errors.Is.
var (
	// ErrEmptyPath: the request carried no request target at all.
	ErrEmptyPath = errors.New("empty request target")
	// ErrNotOriginForm: the target does not start with "/": absolute-form
	// ("http://host/p"), asterisk-form ("*") or a relative path.
	ErrNotOriginForm = errors.New("request target is not in origin form (must start with \"/\")")
	// ErrFragment: the target carries a "#fragment", which clients never
	// send and Envoy rejects.
	ErrFragment = errors.New("request target contains a fragment (\"#\")")
	// ErrNULInPath: the path holds a NUL byte, raw or as "%00".
	ErrNULInPath = errors.New("request path contains a NUL byte")
)

// PathError is the error NormalizePath returns for a request target that
// cannot be authorized. Front ends answer it with Status, the status Envoy
// answers the same request with, and never forward the request.
type PathError struct {
	// Target is the request target as received, cut to 256 bytes.
	Target string
	// Err is one of ErrEmptyPath, ErrNotOriginForm, ErrFragment,
	// ErrNULInPath.
	Err error
}

func (e *PathError) Error() string {
	return fmt.Sprintf("request target %q: %v", e.Target, e.Err)
}

// Unwrap returns the reason, one of the Err* values of this package.
func (e *PathError) Unwrap() error { return e.Err }

// Status is the HTTP status Envoy's connection manager rejects such a
// request with: 404 for an empty target or one not in origin form
// (response details "missing_path" and "absolute_path"), 400 for a
// fragment or a NUL byte.
func (e *PathError) Status() int {
	if e.Err == ErrEmptyPath || e.Err == ErrNotOriginForm {
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

func pathError(target string, err error) *PathError {
	const maxTarget = 256
	if len(target) > maxTarget {
		target = target[:maxTarget]
	}
	return &PathError{Target: target, Err: err}
}

// NormalizePath returns the path of an origin-form request target
// ("/a/b?q") normalized the way Istio's default BASE normalization (Envoy's
// normalize_path without merge_slashes) does, which is the path
// AuthorizationPolicy paths are matched against and the path forwarded
// upstream. The query string is not part of the result; callers keep it
// separately.
//
// Normalization, exactly as Envoy's canonicalizer does it:
//   - "." and ".." segments are removed (RFC 3986 §5.2.4); ".." never
//     climbs above "/";  "%2e"/"%2E" count as a dot;
//   - "\" becomes "/";
//   - percent-encoded unreserved characters are decoded: %2D "-", %2E ".",
//     %30-%39 digits, %41-%5A and %61-%7A letters, %5F "_", %7E "~";
//     every other escape, including %2F "/" and %5C "\", is kept exactly
//     as received (hex case preserved);
//   - characters that are not allowed raw in a path (space, control
//     characters, `"`, "<", ">", "^", "`", "{", "|", "}", DEL and all
//     bytes >= 0x80) are percent-encoded;
//   - a "%" that does not start a valid escape ("%zz", "%" at the end) is
//     kept as it is; where decoding would turn it into a new escape
//     ("%%30%30"), the "%" is written as "%25";
//   - repeated slashes are not merged.
//
// NormalizePath is idempotent and its result never contains a "." or ".."
// segment. It fails with a *PathError for an empty target, a target not in
// origin form, a target with a "#fragment", and a path holding a NUL byte
// (raw or "%00") — requests Envoy rejects before any authorization.
func NormalizePath(raw string) (string, error) {
	if raw == "" {
		return "", pathError(raw, ErrEmptyPath)
	}
	if raw[0] != '/' {
		return "", pathError(raw, ErrNotOriginForm)
	}
	if strings.IndexByte(raw, '#') >= 0 {
		return "", pathError(raw, ErrFragment)
	}
	path := raw
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	out, ok := canonicalPath(path)
	if !ok {
		return "", pathError(raw, ErrNULInPath)
	}
	return out, nil
}

// Character classes of the path canonicalizer (Chromium's, as vendored by
// Envoy in source/common/chromium_url).
const (
	pathPass     = iota // copied as is
	pathEscape          // percent-encoded when raw, kept when escaped
	pathUnescape        // decoded when escaped, copied when raw
	pathInvalid         // rejects the path
	pathSpecial         // '.', '\\' and '%': handled by the loop
)

// pathClass returns the class of a byte in a path.
func pathClass(c byte) byte {
	switch {
	case c == 0:
		return pathInvalid
	case c < 0x20 || c >= 0x7f:
		return pathEscape
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '~':
		return pathUnescape
	}
	switch c {
	case '.', '\\', '%':
		return pathSpecial
	case ' ', '"', '#', '<', '>', '?', '^', '`', '{', '|', '}':
		return pathEscape
	}
	return pathPass
}

const upperHex = "0123456789ABCDEF"

func isSlash(c byte) bool { return c == '/' || c == '\\' }

// dotLen reports whether s[i:] starts with a dot, raw (1) or "%2e" (3).
func dotLen(s string, i int) int {
	if s[i] == '.' {
		return 1
	}
	if s[i] == '%' && i+3 <= len(s) && s[i+1] == '2' && (s[i+2] == 'e' || s[i+2] == 'E') {
		return 3
	}
	return 0
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeEscape decodes the escape at s[i] == '%'.
func decodeEscape[T string | []byte](s T, i int) (byte, bool) {
	if i+3 > len(s) {
		return 0, false
	}
	hi, ok1 := unhex(s[i+1])
	lo, ok2 := unhex(s[i+2])
	if !ok1 || !ok2 {
		return 0, false
	}
	return hi<<4 | lo, true
}

// canonicalPath is Chromium's DoPartialPath for a path that starts with '/'.
// It reports false when the path holds a NUL byte.
func canonicalPath(s string) (string, bool) {
	// Fast path: nothing to rewrite.
	clean := true
	for i := 0; i < len(s); i++ {
		if pathClass(s[i]) != pathPass && pathClass(s[i]) != pathUnescape {
			clean = false
			break
		}
	}
	if clean {
		return s, true
	}

	out := make([]byte, 0, len(s)+8)
	ok := true
	lastBadPercent := -1 // index in out of a '%' that began no valid escape
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch pathClass(c) {
		case pathPass, pathUnescape:
			out = append(out, c)
			continue
		case pathInvalid:
			out = append(out, '%', upperHex[c>>4], upperHex[c&0xf])
			ok = false
			continue
		case pathEscape:
			out = append(out, '%', upperHex[c>>4], upperHex[c&0xf])
			continue
		}
		// Special: a dot, a backslash or a percent sign.
		if n := dotLen(s, i); n > 0 {
			if len(out) > 0 && out[len(out)-1] == '/' {
				kind, consumed := classifyAfterDot(s, i+n)
				switch kind {
				case notDirectory:
					out = append(out, '.')
				case directoryCur:
				case directoryUp:
					out = backUpToPreviousSlash(out)
				}
				i += n + consumed - 1
			} else {
				out = append(out, '.')
				i += n - 1
			}
			continue
		}
		if c == '\\' {
			out = append(out, '/')
			continue
		}
		// c == '%'
		v, valid := decodeEscape(s, i)
		if !valid {
			lastBadPercent = len(out)
			out = append(out, '%')
			continue
		}
		i += 2
		if pathClass(v) == pathUnescape {
			out = append(out, v)
			if lastBadPercent >= 0 && lastBadPercent >= len(out)-3 {
				out = fixNestedEscape(s, i+1, lastBadPercent, out)
			}
			continue
		}
		out = append(out, '%', s[i-1], s[i])
		if pathClass(v) == pathInvalid {
			ok = false
		}
	}
	return string(out), ok
}

type dotKind int

const (
	notDirectory dotKind = iota
	directoryCur
	directoryUp
)

// classifyAfterDot looks at what follows a dot that starts a segment and
// returns what the dot means and how many more input bytes it consumes.
func classifyAfterDot(s string, after int) (dotKind, int) {
	if after == len(s) {
		return directoryCur, 0
	}
	if isSlash(s[after]) {
		return directoryCur, 1
	}
	if n := dotLen(s, after); n > 0 {
		next := after + n
		if next == len(s) {
			return directoryUp, n
		}
		if isSlash(s[next]) {
			return directoryUp, n + 1
		}
	}
	return notDirectory, 0
}

// backUpToPreviousSlash drops the last segment of out, which ends in '/',
// never going above the leading '/'.
func backUpToPreviousSlash(out []byte) []byte {
	i := len(out) - 1
	if i == 0 {
		return out
	}
	i--
	for i > 0 && out[i] != '/' {
		i--
	}
	return out[:i+1]
}

// fixNestedEscape is Chromium's CheckForNestedEscapes: after decoding a
// character within two bytes of a '%' that began no valid escape, make sure
// the output does not now hold a valid escape there ("%%30%30" must not
// become "%00"); if it would, the '%' is written as "%25".
func fixNestedEscape(s string, next, badPercent int, out []byte) []byte {
	length := len(out)
	last := out[length-1]
	appendNext := badPercent == length-2
	if appendNext {
		if next == len(s) || s[next] >= 0x80 {
			return out
		}
		out = append(out, s[next])
	}
	if _, valid := decodeEscape(out, badPercent); valid {
		if !appendNext {
			out = append(out, out[badPercent+1])
		}
		out[badPercent+1] = '2'
		out[badPercent+2] = '5'
		out = append(out, last)
	} else if appendNext {
		out = out[:length]
	}
	return out
}
