package request

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Expectations of Istio's integration test for the default BASE
// normalization (istio/istio tests/integration/security/normalization_test.go,
// group "Base", and istio-semantics.md §4.10).
func TestNormalizePathIstioBase(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/", "/"},
		{"/app/", "/app/"},
		{"/app/../admin", "/admin"},
		{"/app", "/app"},
		{"/app//", "/app//"},
		{"/app/%2f", "/app/%2f"},
		{"/app%2f/", "/app%2f/"},
		{"/xyz%30..//abc", "/xyz0..//abc"},
		{"/app/%2E./admin", "/admin"},
		{`/app\admin`, `/app/admin`},
		{`/app/\/\/\admin`, `/app//////admin`},
		{`/%2Fapp%5cadmin%5Cabc`, `/%2Fapp%5cadmin%5Cabc`},
		{`/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, `/%5Capp%2f%5c%2F..%2fadmin%5c/abc`},
		{`/app//../admin`, `/app/admin`},
		{`/app//../../admin`, `/admin`},
		// Group "NotNormalized" of the same test: none of these is a dot
		// segment or an unreserved escape.
		{`/0x2e0x2e/admin`, `/0x2e0x2e/admin`},
		{`/%25c0%25ae%25c0%25ae/admin`, `/%25c0%25ae%25c0%25ae/admin`},
		{`/%252e%252e%252fadmin`, `/%252e%252e%252fadmin`},
		{`/%c0%ae%c0%ae/admin`, `/%c0%ae%c0%ae/admin`},
		{`/.../admin`, `/.../admin`},
		{`/..../admin`, `/..../admin`},
		{`/..;/admin`, `/..;/admin`},
		{`/;/admin`, `/;/admin`},
		{`/admin;a=b/xyz`, `/admin;a=b/xyz`},
		{`/admin,a=b/xyz`, `/admin,a=b/xyz`},
		{`/Admin`, `/Admin`},
		// Group "DecodeAndMergeSlashes" minus the decoding of %2f/%5c.
		{`/%c0%2e%c0%2e/admin`, `/%c0.%c0./admin`},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// Every escape %01-%FF: only the unreserved characters are decoded
// (istio-semantics.md rule 20; normalization_test.go "PercentEncoded", which
// runs in DECODE_AND_MERGE_SLASHES mode and so also decodes %2f and %5c —
// BASE keeps those two).
func TestNormalizePathPercentEncoded(t *testing.T) {
	unreserved := func(c int) bool {
		return c == 0x2d || c == 0x2e || c == 0x5f || c == 0x7e ||
			(c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
	}
	for c := 1; c <= 0xff; c++ {
		for _, format := range []string{"/admin%%%02x", "/admin%%%02X"} {
			in := fmt.Sprintf(format, c)
			want := in
			if unreserved(c) {
				want = "/admin" + string(rune(c))
			}
			got, err := NormalizePath(in)
			if err != nil || got != want {
				t.Errorf("NormalizePath(%q) = %q, %v; want %q", in, got, err, want)
			}
		}
	}
}

func TestNormalizePathDotSegments(t *testing.T) {
	// RFC 3986 §5.2.4 remove_dot_segments, plus Envoy's refusal to climb
	// above the root.
	cases := []struct{ in, want string }{
		{"/.", "/"},
		{"/..", "/"},
		{"/../../..", "/"},
		{"/a/.", "/a/"},
		{"/a/..", "/"},
		{"/a/b/..", "/a/"},
		{"/a/b/../c", "/a/c"},
		{"/a/./b", "/a/b"},
		{"/a/b/c/./../../g", "/a/g"},
		{"/mid/content=5/../6", "/mid/6"},
		{"/a/%2e", "/a/"},
		{"/a/%2E%2e", "/"},
		{"/a/b/.%2E/c", "/a/c"},
		{`/a/b/..\c`, "/a/c"},
		{`/a\..\b`, "/b"},
		{"/a/..b", "/a/..b"},
		{"/a/b..", "/a/b.."},
		{"/a/.b", "/a/.b"},
		{"/a.b/c", "/a.b/c"},
		{"/a%2e/b", "/a./b"},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestNormalizePathQueryIsNotPath(t *testing.T) {
	// istio-semantics.md §4.10: the query is removed for matching
	// (TestAuthz_PathPrecedence: /allow/admin?param=value is /allow/admin).
	cases := []struct{ in, want string }{
		{"/allow/admin?param=value", "/allow/admin"},
		{"/a?", "/a"},
		{"/a/../b?x=/../../c", "/b"},
		{"/?a=%00", "/"},
		{`/a?b\c`, "/a"},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestNormalizePathEscapesRawCharacters(t *testing.T) {
	// Envoy's canonicalizer percent-encodes characters not allowed raw in a
	// path and keeps sub-delimiters as they are.
	cases := []struct{ in, want string }{
		{"/a b", "/a%20b"},
		{"/a\"b", "/a%22b"},
		{"/<x>", "/%3Cx%3E"},
		{"/{x}|^`", "/%7Bx%7D%7C%5E%60"},
		{"/caf\xc3\xa9", "/caf%C3%A9"},
		{"/\x7f\x01", "/%7F%01"},
		{"/!$&'()*+,;=:@[]", "/!$&'()*+,;=:@[]"},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestNormalizePathInvalidEscapesPassThrough(t *testing.T) {
	// A '%' that starts no valid escape is kept (Envoy is permissive, like
	// Chromium); a decoded character must never complete a new escape with
	// such a '%' (Chromium CheckForNestedEscapes).
	cases := []struct{ in, want string }{
		{"/%", "/%"},
		{"/a%", "/a%"},
		{"/a%2", "/a%2"},
		{"/%zz", "/%zz"},
		{"/%g1/x", "/%g1/x"},
		{"/%%", "/%%"},
		{"/%%30", "/%0"},
		{"/%%30%30", "/%2500"},
		{"/%%300", "/%2500"},
		{"/%4%31", "/%2541"},
		{"/%2%65", "/%252e"},
		{"/%%32e", "/%252e"},
		{"/%%32%65", "/%252e"},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestNormalizePathRejects(t *testing.T) {
	cases := []struct {
		in     string
		err    error
		status int
	}{
		{"", ErrEmptyPath, http.StatusNotFound},
		{"*", ErrNotOriginForm, http.StatusNotFound},
		{"http://example.com/a", ErrNotOriginForm, http.StatusNotFound},
		{"a/b", ErrNotOriginForm, http.StatusNotFound},
		{`\a`, ErrNotOriginForm, http.StatusNotFound},
		{"?a", ErrNotOriginForm, http.StatusNotFound},
		{"/app#foo", ErrFragment, http.StatusBadRequest},
		{"/a?b#c", ErrFragment, http.StatusBadRequest},
		// normalization_test.go group "Invalid": /admin%00 → 400.
		{"/admin%00", ErrNULInPath, http.StatusBadRequest},
		{"/admin\x00", ErrNULInPath, http.StatusBadRequest},
		{"/a/../%00/b", ErrNULInPath, http.StatusBadRequest},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		var pe *PathError
		if !errors.As(err, &pe) || !errors.Is(err, c.err) {
			t.Errorf("NormalizePath(%q) = %q, %v; want a *PathError wrapping %v", c.in, got, err, c.err)
			continue
		}
		if pe.Status() != c.status {
			t.Errorf("NormalizePath(%q): Status() = %d, want %d", c.in, pe.Status(), c.status)
		}
		if got != "" {
			t.Errorf("NormalizePath(%q) returned path %q with an error", c.in, got)
		}
	}
}

func TestPathErrorKeepsTargetShort(t *testing.T) {
	_, err := NormalizePath("http://" + strings.Repeat("a", 10000))
	var pe *PathError
	if !errors.As(err, &pe) {
		t.Fatalf("want *PathError, got %v", err)
	}
	if len(pe.Target) > 256 || len(err.Error()) > 512 {
		t.Errorf("error holds %d bytes of target, message %d bytes", len(pe.Target), len(err.Error()))
	}
}

// checkNormalized asserts the two properties every normalized path has.
func checkNormalized(t *testing.T, in, out string) {
	t.Helper()
	again, err := NormalizePath(out)
	if err != nil {
		t.Fatalf("NormalizePath(%q) = %q, which does not normalize again: %v", in, out, err)
	}
	if again != out {
		t.Fatalf("not idempotent: %q → %q → %q", in, out, again)
	}
	for _, seg := range strings.Split(out, "/") {
		if seg == "." || seg == ".." {
			t.Fatalf("NormalizePath(%q) = %q holds a %q segment", in, out, seg)
		}
	}
	if !strings.HasPrefix(out, "/") || strings.ContainsAny(out, "?#\\\x00") {
		t.Fatalf("NormalizePath(%q) = %q is not a clean path", in, out)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"/", "/app/../admin", "/app/%2E./admin", `/app\admin`, "/xyz%30..//abc",
		`/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, "/%%30%30", "/%2%65", "/a/b/.%2e/c",
		"/a b/\xff", "/a?b", "/%", "/.%2e", "/%2e%2", "/a/%2e%2e%2f..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePath(in)
		if err != nil {
			var pe *PathError
			if !errors.As(err, &pe) {
				t.Fatalf("NormalizePath(%q): error %v is not a *PathError", in, err)
			}
			return
		}
		if len(out) > 3*len(in) {
			t.Fatalf("NormalizePath(%q) grew to %d bytes", in, len(out))
		}
		checkNormalized(t, in, out)
	})
}

func BenchmarkNormalizePath(b *testing.B) {
	for _, p := range []string{"/api/v1/orders/12345", "/api/v1/../v2/orders/%41bc?x=1"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizePath(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
