// Command baseproxy is the benchmark's baseline: a bare Go reverse proxy
// (net/http/httputil.ReverseProxy with a buffer pool and keep-alive
// connections to the upstream), doing no authentication at all.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

const bufferSize = 32 << 10

type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if p, ok := b.pool.Get().(*[bufferSize]byte); ok {
		return p[:]
	}
	return make([]byte, bufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if len(buf) == bufferSize {
		b.pool.Put((*[bufferSize]byte)(buf))
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:18080", "upstream URL")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 256,
			DisableCompression:  true,
			ReadBufferSize:      bufferSize,
			WriteBufferSize:     bufferSize,
		},
		BufferPool: &bufferPool{},
	}
	log.Fatal(http.ListenAndServe(*listen, p))
}
