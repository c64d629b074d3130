package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of the ServerOptions fields left zero.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// CertFile and KeyFile, when set, terminate TLS with this PEM
	// certificate and key, reloaded when the files change (CertReloader);
	// HTTP/1.1 and HTTP/2 are offered by ALPN. Without them the server
	// speaks cleartext HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
	CertFile, KeyFile string
	// CertCheckInterval is the least time between two looks at the
	// certificate files; zero means DefaultCertCheckInterval.
	CertCheckInterval time.Duration
	// ReadHeaderTimeout bounds reading a request's headers; zero means
	// DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds how long an idle keep-alive connection stays
	// open; zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the size of a request's header section
	// (HTTP/1.1 request line and headers; the HTTP/2 header list); zero
	// means DefaultMaxHeaderBytes. Larger requests get 431.
	MaxHeaderBytes int
	// Logger receives connection errors (TLS handshakes, malformed
	// requests) at debug level and reload events; nil discards them.
	Logger *slog.Logger
}

// A Server serves a handler — typically a Proxy — on listeners, with the
// timeouts and limits a gateway facing clients needs, and shuts down
// gracefully. There are no read or write timeouts on bodies: uploads,
// streamed responses and WebSocket connections may last.
type Server struct {
	srv *http.Server
	tls bool

	// base is the context of every request; cancelling it ends upgraded
	// (WebSocket) connections, which http.Server does not track.
	base   context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// active counts running handlers, upgraded ones included.
	active int
	// idle, when not nil, is closed when active drops to zero.
	idle chan struct{}
}

// NewServer returns a Server for h. With a certificate it loads it now,
// failing when the files do not hold a valid certificate and key.
func NewServer(h http.Handler, opts ServerOptions) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.srv = &http.Server{
		Handler:           s.track(h),
		ReadHeaderTimeout: orDefault(opts.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		IdleTimeout:       orDefault(opts.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    orDefault(opts.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.base },
		Protocols:         new(http.Protocols),
	}
	s.srv.Protocols.SetHTTP1(true)
	switch {
	case opts.CertFile != "" || opts.KeyFile != "":
		if opts.CertFile == "" || opts.KeyFile == "" {
			return nil, errors.New("proxy: TLS needs both a certificate and a key file")
		}
		certs, err := NewCertReloader(opts.CertFile, opts.KeyFile, opts.CertCheckInterval, log)
		if err != nil {
			return nil, err
		}
		s.tls = true
		s.srv.Protocols.SetHTTP2(true)
		s.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	default:
		s.srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return s, nil
}

func orDefault[T time.Duration | int](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// track counts h's running calls in s.active.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.active++
		s.mu.Unlock()
		defer s.leave()
		h.ServeHTTP(w, r)
	})
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active--; s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// waitIdle waits until no handler runs, or ctx ends.
func (s *Server) waitIdle(ctx context.Context) error {
	s.mu.Lock()
	if s.active == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Serve accepts connections on l until Shutdown, terminating TLS when the
// server has a certificate. It returns http.ErrServerClosed after
// Shutdown, and any other error that stopped it.
func (s *Server) Serve(l net.Listener) error {
	if s.tls {
		return s.srv.ServeTLS(l, "", "")
	}
	return s.srv.Serve(l)
}

// Shutdown stops accepting connections, lets in-flight requests finish,
// then ends upgraded connections and waits for their handlers. When ctx
// ends first, every connection is closed at once and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.cancel()
	if werr := s.waitIdle(ctx); err == nil {
		err = werr
	}
	return err
}
