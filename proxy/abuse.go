package proxy

import (
	"net/http"
	"strings"
)

// stripH2CUpgrade removes an HTTP/1.1 upgrade to cleartext HTTP/2 from h,
// as Envoy does: the request goes on as plain HTTP/1.1. An upstream that
// accepted the upgrade would take the HTTP/2 requests that follow on the
// same connection without idgate ever deciding them (h2c smuggling).
func stripH2CUpgrade(h http.Header) {
	for _, v := range h.Values("Upgrade") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "h2c") {
				h.Del("Upgrade")
				h.Del("Http2-Settings")
				return
			}
		}
	}
}

// closeIfBodyUnread asks the server to close the connection after a
// response idgate writes itself (a denial, a rejected target) to a
// request whose body it did not read. Otherwise net/http reads up to
// 256 KiB of the body before answering, to keep the connection, and a
// client that sends it slowly holds the answer and the connection as long
// as it likes.
func closeIfBodyUnread(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}
