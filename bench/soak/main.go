// Command soak holds idgate serve under a steady load for a long time and
// reports whether it stays healthy: resident memory and goroutines after
// warm-up, latency percentiles per interval, and audit records against
// requests answered. It starts the idgate binary it is given, a JWKS
// endpoint and an upstream of its own, all on loopback. bench/soak/run
// builds idgate and runs it; see docs/reliability.md.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/idgate/idgate/mint"
)

const (
	issuer   = "https://issuer.example"
	audience = "api://orders"
)

// policies trust the soak's JWKS endpoint (%s): a token is needed for
// /api/, /api/admin is denied to everyone.
const policies = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: soak}
spec:
  jwtRules:
  - issuer: https://issuer.example
    jwksUri: %s
    audiences: [api://orders]
    outputClaimToHeaders:
    - {header: x-user-oid, claim: oid}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: soak}
spec:
  rules:
  - from:
    - source: {requestPrincipals: ["*"]}
    to:
    - operation: {paths: ["/api/*"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: soak}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/api/admin*"]}
`

func main() {
	var (
		idgate   = flag.String("idgate", "", "the idgate binary to soak (required)")
		duration = flag.Duration("duration", 10*time.Minute, "how long to hold the load")
		rate     = flag.Int("rate", 300, "requests per second")
		interval = flag.Duration("interval", 30*time.Second, "how often to sample")
		warmup   = flag.Duration("warmup", 30*time.Second, "samples before this are warm-up")
		dir      = flag.String("dir", "", "working directory (default: a new temporary one)")
	)
	flag.Parse()
	if *idgate == "" {
		log.Fatal("soak: --idgate is required")
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "idgate-soak-")
		if err != nil {
			log.Fatal(err)
		}
		*dir = d
	}
	if err := run(*idgate, *dir, *duration, *rate, *interval, *warmup); err != nil {
		log.Fatal("soak: ", err)
	}
}

// sample is one look at idgate during the run.
type sample struct {
	at         time.Duration
	requests   int64
	rssKiB     int64
	goroutines int64
	p50, p99   time.Duration
	errors     int64
}

func run(bin, dir string, duration time.Duration, rate int, interval, warmup time.Duration) error {
	key, err := mint.NewKey("ES256")
	if err != nil {
		return err
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(key.JWKS())
	}))
	defer jwks.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()

	policyFile := filepath.Join(dir, "policies.yaml")
	if err := os.WriteFile(policyFile, []byte(fmt.Sprintf(policies, jwks.URL)), 0o644); err != nil {
		return err
	}
	auditFile := filepath.Join(dir, "audit.jsonl")
	os.Remove(auditFile)
	listen, admin := freeAddr(), freeAddr()
	cmd := exec.Command(bin, "serve", "--policies", policyFile, "--listen", listen, "--upstream", upstream.URL,
		"--admin-listen", admin, "--audit", auditFile, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	if err := waitReady("http://" + admin + "/readyz"); err != nil {
		return err
	}
	log.Printf("soak: idgate pid %d on %s, %d req/s for %v, sampling every %v, in %s", cmd.Process.Pid, listen, rate, duration, interval, dir)

	// A pool of tokens that repeat (as real clients reuse theirs), and
	// new tokens signed for some requests.
	pool := make([]string, 50)
	for i := range pool {
		pool[i] = sign(key, fmt.Sprintf("user-%d", i))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}, Timeout: 10 * time.Second}

	var (
		sent, answered, failed atomic.Int64
		mu                     sync.Mutex
		window                 []time.Duration
		wrong                  = map[string]int{}
	)
	one := func(n int64) {
		target, tok, want := "/api/orders", "", http.StatusOK
		switch r := rand.IntN(100); {
		case r < 60:
			tok = pool[rand.IntN(len(pool))]
		case r < 75:
			tok = sign(key, "user-new-"+strconv.FormatInt(n, 10))
		case r < 85:
			target, tok, want = "/api/admin", pool[rand.IntN(len(pool))], http.StatusForbidden
		case r < 95:
			want = http.StatusForbidden
		default:
			tok, want = "garbage."+strconv.FormatInt(n, 10), http.StatusUnauthorized
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+target, nil)
		req.Header.Set("X-Request-Id", "soak-"+strconv.FormatInt(n, 10))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		start := time.Now()
		resp, err := client.Do(req)
		took := time.Since(start)
		if err != nil {
			failed.Add(1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered.Add(1)
		mu.Lock()
		window = append(window, took)
		if resp.StatusCode != want {
			wrong[fmt.Sprintf("%s %d want %d", target, resp.StatusCode, want)]++
		}
		mu.Unlock()
	}

	var samples []sample
	begin := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	next := time.NewTicker(interval)
	defer next.Stop()
	inflight := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	for done := time.After(duration); ; {
		select {
		case <-tick.C:
			select {
			case inflight <- struct{}{}:
				n := sent.Add(1)
				wg.Go(func() { one(n); <-inflight })
			default:
				failed.Add(1) // idgate is so far behind that 1024 wait
			}
			continue
		case <-next.C:
			mu.Lock()
			w := window
			window = nil
			mu.Unlock()
			s := sample{at: time.Since(begin).Round(time.Second), requests: answered.Load(), errors: failed.Load()}
			s.p50, s.p99 = percentile(w, 50), percentile(w, 99)
			s.rssKiB = rss(cmd.Process.Pid)
			s.goroutines = goroutines("http://" + admin + "/metrics")
			samples = append(samples, s)
			log.Printf("soak: %v: %d answered, rss %d KiB, %d goroutines, p50 %v, p99 %v, %d errors", s.at, s.requests, s.rssKiB, s.goroutines, s.p50, s.p99, s.errors)
			continue
		case <-done:
		}
		break
	}
	wg.Wait()

	// SIGTERM: idgate drains and flushes its audit file before it exits.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return err
		}
		log.Printf("soak: idgate exited: %v", err)
	}
	records, ids, err := audit(auditFile)
	if err != nil {
		return err
	}
	report(os.Stdout, samples, warmup, duration, rate, sent.Load(), answered.Load(), failed.Load(), records, ids, wrong)
	return nil
}

// sign makes a token for sub, valid for an hour.
func sign(key *mint.Key, sub string) string {
	now := time.Now().Unix()
	tok, err := key.Sign(map[string]any{"iss": issuer, "aud": audience, "sub": sub, "oid": "oid-" + sub, "iat": now, "exp": now + 3600}, nil)
	if err != nil {
		log.Fatal(err)
	}
	return tok
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(url string) error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s not ready after 30s", url)
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[(len(d)-1)*p/100].Round(10 * time.Microsecond)
}

// rss is the resident set size of pid in KiB, from /proc.
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// goroutines reads go_goroutines from idgate's /metrics.
func goroutines(url string) int64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int64(n)
		}
	}
	return -1
}

// audit counts the records of the audit file and the distinct soak
// request ids among them.
func audit(path string) (records, ids int64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	seen := map[string]bool{}
	for line := range bytes.Lines(data) {
		var r struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return 0, 0, fmt.Errorf("audit line %q: %w", line, err)
		}
		records++
		if strings.HasPrefix(r.RequestID, "soak-") {
			seen[r.RequestID] = true
		}
	}
	return records, int64(len(seen)), nil
}

func report(w io.Writer, samples []sample, warmup, duration time.Duration, rate int, sent, answered, failed, records, ids int64, wrong map[string]int) {
	fmt.Fprintf(w, "\n## Soak: %v at %d req/s\n\n", duration, rate)
	fmt.Fprintf(w, "| t | answered | RSS (MiB) | goroutines | p50 | p99 | client errors |\n|---|---|---|---|---|---|---|\n")
	for _, s := range samples {
		fmt.Fprintf(w, "| %v | %d | %.1f | %d | %v | %v | %d |\n", s.at, s.requests, float64(s.rssKiB)/1024, s.goroutines, s.p50, s.p99, s.errors)
	}
	var after []sample
	for _, s := range samples {
		if s.at > warmup {
			after = append(after, s)
		}
	}
	if len(after) > 1 {
		first, last := after[0], after[len(after)-1]
		fmt.Fprintf(w, "\nAfter warm-up (%v → %v): RSS %.1f → %.1f MiB, goroutines %d → %d.\n", first.at, last.at,
			float64(first.rssKiB)/1024, float64(last.rssKiB)/1024, first.goroutines, last.goroutines)
	}
	fmt.Fprintf(w, "\nRequests sent %d, answered %d, client errors %d; audit records %d, distinct soak request ids in the audit %d (%s).\n",
		sent, answered, failed, records, ids, map[bool]string{true: "equal to the requests answered", false: "NOT equal to the requests answered"}[ids == answered && records == answered])
	if len(wrong) > 0 {
		fmt.Fprintf(w, "Unexpected statuses: %v\n", wrong)
	} else {
		fmt.Fprintf(w, "Every answer had the expected status (200, 401 or 403).\n")
	}
}
