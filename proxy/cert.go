package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCertCheckInterval is how often, at most, a CertReloader looks at
// its files when none is given.
const DefaultCertCheckInterval = time.Second

// A CertReloader serves a TLS certificate from a PEM certificate file and
// key file, and picks up new contents of the files (a renewed
// certificate, a Kubernetes secret update) without a restart. Its
// GetCertificate goes in a tls.Config.
//
// A handshake looks at the files when the check interval has passed since
// the last look; when their contents changed and form a valid pair, later
// handshakes use the new certificate. Until then — a half-written file, a
// key that does not match — the certificate in force stays.
type CertReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	cert atomic.Pointer[tls.Certificate]
	// next is when the files are next looked at (Unix nanoseconds).
	next atomic.Int64

	mu              sync.Mutex // held while looking at the files
	certPEM, keyPEM []byte     // what cert was made of
	lastErr         string     // the last reload failure logged
	now             func() time.Time
}

// NewCertReloader loads certFile and keyFile, failing when they do not
// hold a valid certificate and matching key. interval is the least time
// between two looks at the files; zero means DefaultCertCheckInterval.
// Reload failures are logged to log (nil: discarded).
func NewCertReloader(certFile, keyFile string, interval time.Duration, log *slog.Logger) (*CertReloader, error) {
	if interval <= 0 {
		interval = DefaultCertCheckInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &CertReloader{certFile: certFile, keyFile: keyFile, interval: interval, log: log, now: time.Now}
	certPEM, keyPEM, err := c.read()
	if err != nil {
		return nil, err
	}
	if err := c.load(certPEM, keyPEM); err != nil {
		return nil, err
	}
	c.next.Store(c.now().Add(interval).UnixNano())
	return c, nil
}

// GetCertificate returns the certificate in force, first reloading the
// files if they changed. It never fails once NewCertReloader succeeded.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.now().UnixNano() >= c.next.Load() && c.mu.TryLock() {
		// One handshake looks; the others use the certificate in force.
		c.check()
		c.next.Store(c.now().Add(c.interval).UnixNano())
		c.mu.Unlock()
	}
	return c.cert.Load(), nil
}

// check reloads the files if their contents changed. c.mu is held.
func (c *CertReloader) check() {
	certPEM, keyPEM, err := c.read()
	if err == nil {
		if bytes.Equal(certPEM, c.certPEM) && bytes.Equal(keyPEM, c.keyPEM) {
			c.lastErr = ""
			return
		}
		err = c.load(certPEM, keyPEM)
	}
	if err != nil {
		// Files being replaced fail until both are written: say so once.
		if msg := err.Error(); msg != c.lastErr {
			c.lastErr = msg
			c.log.Warn("TLS certificate not reloaded; the one in force stays", "error", err)
		}
		return
	}
	c.lastErr = ""
	c.log.Info("TLS certificate reloaded", "cert", c.certFile)
}

func (c *CertReloader) read() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(c.certFile); err != nil {
		return nil, nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(c.keyFile); err != nil {
		return nil, nil, fmt.Errorf("TLS key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// load makes the pair the certificate in force. c.mu is held, or c is
// not shared yet.
func (c *CertReloader) load(certPEM, keyPEM []byte) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert.Store(&cert)
	c.certPEM, c.keyPEM = certPEM, keyPEM
	return nil
}
