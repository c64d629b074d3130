package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// newTransport returns the transport that carries requests to upstream:
// keep-alive connections, HTTP/2 when an https upstream offers it (or
// cleartext HTTP/2 when asked), bodies passed through untouched, and the
// upstream's certificate checked against opts.UpstreamCAFile or the
// system roots.
func newTransport(upstream *url.URL, opts Options) (*http.Transport, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: opts.UpstreamServerName}
	if opts.UpstreamCAFile != "" {
		pem, err := os.ReadFile(opts.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("proxy: upstream CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("proxy: upstream CA %s: no PEM certificate in it", opts.UpstreamCAFile)
		}
		tlsConf.RootCAs = pool
	}
	switch {
	case opts.UpstreamCertFile != "" && opts.UpstreamKeyFile != "":
		cert, err := tls.LoadX509KeyPair(opts.UpstreamCertFile, opts.UpstreamKeyFile)
		if err != nil {
			return nil, fmt.Errorf("proxy: upstream client certificate: %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	case opts.UpstreamCertFile != "" || opts.UpstreamKeyFile != "":
		return nil, errors.New("proxy: upstream client certificate: give both the certificate and the key file")
	}

	dial := opts.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	wait := opts.UpstreamTimeout
	if wait <= 0 {
		wait = DefaultUpstreamTimeout
	}
	idle := opts.MaxIdleConnsPerHost
	if idle <= 0 {
		idle = DefaultMaxIdleConnsPerHost
	}
	t := &http.Transport{
		// The upstream is reached directly, whatever HTTP_PROXY says.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   dial,
		ForceAttemptHTTP2:     upstream.Scheme == "https",
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: wait,
		ExpectContinueTimeout: time.Second,
		// Bodies pass through as the upstream sent them.
		DisableCompression: true,
		ReadBufferSize:     bufferSize,
		WriteBufferSize:    bufferSize,
	}
	if opts.UpstreamH2C {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return t, nil
}

// bufferSize is the size of the buffers that copy bodies.
const bufferSize = 32 << 10

// bufferPool is an httputil.BufferPool of bufferSize buffers. It pools
// array pointers, so that neither Get nor Put allocates.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([bufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.pool.Get().(*[bufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if len(buf) == bufferSize {
		b.pool.Put((*[bufferSize]byte)(buf))
	}
}
