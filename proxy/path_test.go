package proxy

import (
	"net/url"
	"testing"
)

// setPath makes the request target exactly the normalized path, including
// the escapes url.URL cannot hold as a path.
func TestSetPath(t *testing.T) {
	tests := []struct{ path, target string }{
		{"/a/b", "/a/b"},
		{"/a%2Fb%2f", "/a%2Fb%2f"},
		{"/a%5C", "/a%5C"},
		{"//x", "//x"},
		{"/!$&'()*+,;=:@[]", "/!$&'()*+,;=:@[]"},
		{"/%C3%A9", "/%C3%A9"},
		{"/a/%zz", "/a/%zz"},
		{"/a%", "/a%"},
		{"//a%zz", "http://upstream:8080//a%zz"},
	}
	for _, tt := range tests {
		u := &url.URL{Scheme: "http", Host: "upstream:8080", RawQuery: "q=1"}
		setPath(u, tt.path)
		if got := u.RequestURI(); got != tt.target+"?q=1" {
			t.Errorf("setPath(%q): request target %q, want %q", tt.path, got, tt.target+"?q=1")
		}
	}
}

func TestBufferPool(t *testing.T) {
	p := newBufferPool()
	b := p.Get()
	if len(b) != bufferSize {
		t.Fatalf("len %d, want %d", len(b), bufferSize)
	}
	p.Put(b)
	p.Put(make([]byte, 10)) // a foreign buffer is dropped, not pooled
	if n := testing.AllocsPerRun(100, func() { p.Put(p.Get()) }); n != 0 {
		t.Errorf("Get and Put allocate %v times", n)
	}
}

func TestEscapeQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a=1&b=%20&c=/?:@!$'()*+,;", "a=1&b=%20&c=/?:@!$'()*+,;"},
		{"a b", "a%20b"},
		{"q=\"<>\\^`{|}#", "q=%22%3C%3E%5C%5E%60%7B%7C%7D%23"},
		{"\x01\x7f\xc3\xa9", "%01%7F%C3%A9"},
		{"%zz%", "%zz%"},
	}
	for _, tt := range tests {
		if got := escapeQuery(tt.in); got != tt.want {
			t.Errorf("escapeQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got, err := url.ParseQuery(escapeQuery(tt.in)); err == nil {
			want, _ := url.ParseQuery(tt.in)
			if len(got) != len(want) {
				t.Errorf("escapeQuery(%q) changed the parameters: %v, was %v", tt.in, got, want)
			}
			for k, v := range want {
				if len(got[k]) != len(v) || len(v) > 0 && got[k][0] != v[0] {
					t.Errorf("escapeQuery(%q) changed parameter %q: %q, was %q", tt.in, k, got[k], v)
				}
			}
		}
	}
}
