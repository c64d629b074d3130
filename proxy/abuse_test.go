package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestStripH2CUpgrade(t *testing.T) {
	for _, up := range []string{"h2c", "H2C", "websocket, h2c"} {
		h := http.Header{"Upgrade": {up}, "Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"}, "Connection": {"Upgrade, HTTP2-Settings"}}
		stripH2CUpgrade(h)
		if h.Get("Upgrade") != "" || h.Get("Http2-Settings") != "" {
			t.Errorf("Upgrade: %s: left %v", up, h)
		}
	}
	h := http.Header{"Upgrade": {"websocket"}}
	stripH2CUpgrade(h)
	if h.Get("Upgrade") != "websocket" {
		t.Errorf("a WebSocket upgrade was removed: %v", h)
	}
}

func TestCloseIfBodyUnread(t *testing.T) {
	for _, c := range []struct {
		body  string
		close bool
	}{{"", false}, {"x", true}} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.ContentLength = int64(len(c.body))
		w := httptest.NewRecorder()
		closeIfBodyUnread(w, r)
		if got := w.Header().Get("Connection") == "close"; got != c.close {
			t.Errorf("body %q: Connection: close is %v, want %v", c.body, got, c.close)
		}
	}
}
