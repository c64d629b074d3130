// Command benchrun measures idgate against its baselines on loopback and
// prints a table, the ratios, and (last line) one JSON object. bench/run
// builds the binaries it starts and runs it; see docs/benchmarks.md.
//
// Every scenario runs for -duration with wrk (HTTP) or ghz (gRPC) at
// -connections; the server's CPU time and peak RSS are read from /proc.
package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/idgate/idgate/mint"
)

// The loopback addresses of the processes the benchmark starts.
const (
	upstreamAddr   = "127.0.0.1:18080"
	baseProxyAddr  = "127.0.0.1:18081"
	idgateAddr     = "127.0.0.1:18082"
	idgateFresh    = "127.0.0.1:18083"
	idgateGRPC     = "127.0.0.1:18084"
	noopAuthzAddr  = "127.0.0.1:18085"
	nginxAddr      = "127.0.0.1:18086"
	oauth2Addr     = "127.0.0.1:18087"
	discoveryAddr  = "127.0.0.1:18088"
	idgateAdmin    = "127.0.0.1:18901"
	idgateAdmin2   = "127.0.0.1:18902"
	tenant         = "11111111-2222-3333-4444-555555555555"
	issuer         = "https://login.microsoftonline.com/" + tenant + "/v2.0"
	audience       = "api://orders"
	allowedPath    = "/api/orders/12345"
	forbiddenPath  = "/api/reports/monthly"
	benchPolicySet = "policy/testdata/bench/entra.yaml"
)

type options struct {
	bin, out    string
	duration    time.Duration
	connections int
	threads     int
	tokens      int
	rounds      int
}

// result is one scenario's measurement.
type result struct {
	Round       int     `json:"round"`
	Name        string  `json:"name"`
	Tool        string  `json:"tool"`
	Requests    int64   `json:"requests"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	CPUusPerReq float64 `json:"cpu_us_per_request"`
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	Unexpected  int64   `json:"unexpected_responses"`
	Note        string  `json:"note,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bench/results/bin", "directory of the built binaries (idgate, upstream, baseproxy, noopauthz)")
	flag.StringVar(&o.out, "out", "bench/results", "directory for generated files and results")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "how long each scenario runs")
	flag.IntVar(&o.connections, "connections", 32, "concurrent connections (HTTP) or requests (gRPC)")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.tokens, "tokens", 2000, "distinct pre-minted tokens for the fresh-token scenario")
	flag.IntVar(&o.rounds, "rounds", 1, "how many times every scenario runs; ratios are the median of the rounds'")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchrun: ")
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	for _, tool := range []string{"wrk", "ghz"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not on PATH (see docs/benchmarks.md)", tool)
		}
	}
	// A process of another run, or anything else, on one of the addresses
	// would answer in place of the one started, and be measured.
	for _, addr := range []string{upstreamAddr, baseProxyAddr, idgateAddr, idgateFresh, idgateGRPC, noopAuthzAddr,
		nginxAddr, oauth2Addr, discoveryAddr, idgateAdmin, idgateAdmin2} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s is taken (another benchmark still running?): %w", addr, err)
		}
		ln.Close()
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	w, err := prepare(o)
	if err != nil {
		return err
	}
	var procs procSet
	defer procs.stopAll()

	log.Printf("crypto floor: RS256 verifications on one core")
	floor := cryptoFloor(w.tokens[0], w.key, 2*time.Second)

	up, err := procs.start(filepath.Join(o.bin, "upstream"), "-listen", upstreamAddr)
	if err != nil {
		return err
	}
	if err := waitHTTP("http://" + upstreamAddr + "/"); err != nil {
		return err
	}

	var results []result
	for round := 1; round <= max(1, o.rounds); round++ {
		rs, err := w.round(o, &procs, up)
		if err != nil {
			return err
		}
		for i := range rs {
			rs[i].Round = round
		}
		results = append(results, rs...)
	}
	return report(o, results, floor)
}

// round runs every scenario once, with the upstream up.
func (w *world) round(o options, procs *procSet, up *proc) ([]result, error) {
	var results []result
	add := func(r result, err error) {
		if err != nil {
			log.Printf("%s: %v", r.Name, err)
			return
		}
		log.Printf("%-26s %10.0f req/s  p50 %.2f ms  p99 %.2f ms  %6.1f µs CPU/req", r.Name, r.RPS, r.P50ms, r.P99ms, r.CPUusPerReq)
		results = append(results, r)
	}
	valid := w.tokens[0]

	add(w.wrk(o, "upstream (no proxy)", up, "http://"+upstreamAddr+allowedPath, []string{valid}, 200))

	base, err := procs.start(filepath.Join(o.bin, "baseproxy"), "-listen", baseProxyAddr, "-upstream", "http://"+upstreamAddr)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP("http://" + baseProxyAddr + "/"); err != nil {
		return nil, err
	}
	add(w.wrk(o, "go reverse proxy", base, "http://"+baseProxyAddr+allowedPath, []string{valid}, 200))
	procs.stop(base)

	if ng, note := startNginx(procs, o); ng != nil {
		if err := waitHTTP("http://" + nginxAddr + "/"); err == nil {
			add(w.wrk(o, "nginx reverse proxy", ng, "http://"+nginxAddr+allowedPath, []string{valid}, 200))
		} else {
			log.Printf("nginx: %v", err)
		}
		procs.stop(ng)
	} else {
		log.Printf("nginx: %s", note)
	}

	idg, err := procs.start(filepath.Join(o.bin, "idgate"), "serve",
		"--policies", w.policyDir, "--listen", idgateAddr, "--upstream", "http://"+upstreamAddr,
		"--grpc-listen", idgateGRPC, "--admin-listen", idgateAdmin, "--audit", os.DevNull, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitHTTP("http://" + idgateAdmin + "/readyz"); err != nil {
		return nil, err
	}
	add(w.wrk(o, "idgate proxy, cached", idg, "http://"+idgateAddr+allowedPath, []string{valid}, 200))
	add(w.wrk(o, "idgate proxy, 401", idg, "http://"+idgateAddr+allowedPath, []string{w.badSignature}, 401))
	add(w.wrk(o, "idgate proxy, 403", idg, "http://"+idgateAddr+forbiddenPath, []string{valid}, 403))
	add(w.ghz(o, "idgate ext_authz, cached", idg, idgateGRPC, valid))
	procs.stop(idg)

	fresh, err := procs.start(filepath.Join(o.bin, "idgate"), "serve", "--config", w.noCacheConfig,
		"--policies", w.policyDir, "--listen", idgateFresh, "--upstream", "http://"+upstreamAddr,
		"--admin-listen", idgateAdmin2, "--audit", os.DevNull, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitHTTP("http://" + idgateAdmin2 + "/readyz"); err != nil {
		return nil, err
	}
	r, err := w.wrk(o, "idgate proxy, fresh token", fresh, "http://"+idgateFresh+allowedPath, w.tokens, 200)
	r.Note = fmt.Sprintf("%d distinct tokens, token cache off", len(w.tokens))
	add(r, err)
	procs.stop(fresh)

	for _, v := range []struct{ name, flag string }{
		{"no-op ext_authz", "-shaped=false"},
		{"no-op ext_authz, idgate's answer", "-shaped"},
	} {
		noop, err := procs.start(filepath.Join(o.bin, "noopauthz"), "-listen", noopAuthzAddr, v.flag)
		if err != nil {
			return nil, err
		}
		add(w.ghz(o, v.name, noop, noopAuthzAddr, valid))
		procs.stop(noop)
	}

	if path, err := exec.LookPath("oauth2-proxy"); err == nil {
		op, stopDiscovery, err := startOAuth2Proxy(procs, path, w)
		if err == nil {
			if err = waitHTTP("http://" + oauth2Addr + "/ping"); err == nil {
				add(w.wrk(o, "oauth2-proxy, bearer JWT", op, "http://"+oauth2Addr+allowedPath, []string{valid}, 200))
			}
			procs.stop(op)
			stopDiscovery()
		}
		if err != nil {
			log.Printf("oauth2-proxy: %v", err)
		}
	} else {
		log.Printf("oauth2-proxy: not on PATH, not measured")
	}

	return results, nil
}

// world is what the scenarios share: the signing key, the tokens, the
// policies and the files derived from them.
type world struct {
	key           *mint.Key
	tokens        []string
	badSignature  string
	policyDir     string
	noCacheConfig string
	protoset      string
}

// prepare mints the tokens and writes the policies (the 10
// AuthorizationPolicies of policy/testdata/bench plus a
// RequestAuthentication with the key inline), idgate's configuration
// without a token cache, and the ext_authz protoset for ghz.
func prepare(o options) (*world, error) {
	key, err := mint.NewKey("RS256")
	if err != nil {
		return nil, err
	}
	w := &world{key: key, policyDir: filepath.Join(o.out, "policies")}
	if err := os.MkdirAll(w.policyDir, 0o755); err != nil {
		return nil, err
	}
	set, err := os.ReadFile(benchPolicySet)
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	ra := fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: entra, namespace: orders}
spec:
  jwtRules:
  - issuer: %s
    audiences: [%q]
    jwks: '%s'
    outputClaimToHeaders:
    - {header: x-user-oid, claim: oid}
`, issuer, audience, key.JWKS())
	for name, data := range map[string][]byte{"authz.yaml": set, "authn.yaml": []byte(ra)} {
		if err := os.WriteFile(filepath.Join(w.policyDir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	w.noCacheConfig = filepath.Join(o.out, "idgate-nocache.yaml")
	noCache := fmt.Sprintf("listen: %s\nupstream: http://%s\npolicies: [policies]\nkeys:\n  token-cache-size: 0\n", idgateFresh, upstreamAddr)
	if err := os.WriteFile(w.noCacheConfig, []byte(noCache), 0o644); err != nil {
		return nil, err
	}

	log.Printf("minting %d RS256 tokens", o.tokens)
	if w.tokens, err = mintTokens(key, o.tokens); err != nil {
		return nil, err
	}
	impostor, err := key.Impostor()
	if err != nil {
		return nil, err
	}
	if w.badSignature, err = impostor.Sign(claims(0), nil); err != nil {
		return nil, err
	}
	w.protoset = filepath.Join(o.out, "ext_authz.protoset")
	if err := writeProtoset(w.protoset); err != nil {
		return nil, err
	}
	return w, nil
}

// claims are the claims of an Entra ID v2 access token for user i that
// the bench policies allow to read orders.
func claims(i int) map[string]any {
	now := time.Now().Unix()
	groups := make([]any, 10)
	for g := range groups {
		groups[g] = fmt.Sprintf("aaaaaaaa-0000-0000-0000-0000000001%02d", g)
	}
	return map[string]any{
		"iss": issuer, "aud": audience, "tid": tenant, "ver": "2.0",
		"sub":   fmt.Sprintf("AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy7%07d", i),
		"oid":   fmt.Sprintf("77777777-0000-0000-0000-%012d", i),
		"azp":   "66666666-0000-0000-0000-000000000000",
		"iat":   now - 60,
		"nbf":   now - 60,
		"exp":   now + 3*3600,
		"name":  "Bench User",
		"scp":   "Orders.Read Profile.Read",
		"roles": []any{"Orders.Read"}, "groups": groups,
		"preferred_username": fmt.Sprintf("user%d@contoso.example", i),
		"uti":                "fqiBqXLPj0eQa82S-IYFAA",
	}
}

func mintTokens(key *mint.Key, n int) ([]string, error) {
	out := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = key.Sign(claims(i), nil)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}

// cryptoFloor returns how many RS256 signatures of raw's size one core
// verifies per second: the most requests per second a gateway that
// verifies every token on one core could serve.
func cryptoFloor(raw string, key *mint.Key, d time.Duration) float64 {
	i := strings.LastIndexByte(raw, '.')
	sig, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil {
		log.Fatal(err)
	}
	pub := key.PublicKey().Public.(*rsa.PublicKey)
	input := []byte(raw[:i])
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		for range 100 {
			h := sha256.Sum256(input)
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
				log.Fatal(err)
			}
		}
		n += 100
	}
	return float64(n) / time.Since(start).Seconds()
}

// writeProtoset writes the descriptors of envoy.service.auth.v3 and its
// imports, for ghz (idgate does not serve gRPC reflection).
func writeProtoset(path string) error {
	fd, err := protoregistry.GlobalFiles.FindFileByPath(authv3.File_envoy_service_auth_v3_external_auth_proto.Path())
	if err != nil {
		return err
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var visit func(f protoreflect.FileDescriptor)
	visit = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imports := f.Imports()
		for i := range imports.Len() {
			visit(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	visit(fd)
	b, err := proto.Marshal(set)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// wrkScript is the Lua script for wrk: every request carries the next
// token of the file given as the script's argument, and done prints the
// figures as JSON.
const wrkScript = `
local tokens, n, i = {}, 0, 0
local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end
init = function(args)
  for line in io.lines(args[1]) do n = n + 1; tokens[n] = line end
  i = (id * 7919) % n
end
request = function()
  i = i % n + 1
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\n{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
`

// wrk runs wrk against url with tokens and checks first that one request
// gets status want.
func (w *world) wrk(o options, name string, server *proc, url string, tokens []string, want int) (result, error) {
	r := result{Name: name, Tool: "wrk"}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tokens[0])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return r, fmt.Errorf("%s answered %d, want %d", url, resp.StatusCode, want)
	}
	script := filepath.Join(o.out, "bench.lua")
	tokFile := filepath.Join(o.out, fmt.Sprintf("tokens-%d.txt", len(tokens)))
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return r, err
	}
	if err := os.WriteFile(tokFile, []byte(strings.Join(tokens, "\n")+"\n"), 0o644); err != nil {
		return r, err
	}
	before := server.sample()
	out, err := exec.Command("wrk", "-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.connections),
		"-d", fmt.Sprintf("%ds", int(o.duration.Seconds())), "--latency", "-s", script, url, "--", tokFile).Output()
	after := server.sample()
	if err != nil {
		return r, fmt.Errorf("wrk: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var s struct {
		Requests     int64 `json:"requests"`
		DurationUS   int64 `json:"duration_us"`
		P50US        int64 `json:"p50_us"`
		P99US        int64 `json:"p99_us"`
		Non2xx       int64 `json:"non2xx"`
		SocketErrors int64 `json:"socket_errors"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		return r, fmt.Errorf("wrk output: %w\n%s", err, out)
	}
	r.Requests = s.Requests
	r.RPS = float64(s.Requests) / (float64(s.DurationUS) / 1e6)
	r.P50ms, r.P99ms = float64(s.P50US)/1000, float64(s.P99US)/1000
	r.Unexpected = s.SocketErrors
	if want == 200 {
		r.Unexpected += s.Non2xx
	} else {
		r.Unexpected += s.Requests - s.Non2xx
	}
	server.fill(&r, before, after)
	return r, nil
}

// ghz runs ghz's Check calls against addr, a request for allowedPath with
// the token, after checking that one Check allows it.
func (w *world) ghz(o options, name string, server *proc, addr, tok string) (result, error) {
	r := result{Name: name, Tool: "ghz"}
	if err := checkOnce(addr, tok); err != nil {
		return r, err
	}
	// The headers Envoy sends with a check: the pseudo-headers, what the
	// client sent, and the x-request-id Envoy made.
	data := fmt.Sprintf(`{"attributes":{"source":{"address":{"socketAddress":{"address":"10.1.2.3","portValue":40000}}},"request":{"http":{"method":"GET","scheme":"https","host":"orders.example.com","path":%[1]q,"headers":{`+
		`":authority":"orders.example.com",":method":"GET",":path":%[1]q,":scheme":"https","accept":"application/json","user-agent":"orders-web/1.0",`+
		`"x-forwarded-proto":"https","x-request-id":"5f0c8e4a-7a8f-4c1e-9d2b-3a6f1e0b9c47","authorization":"Bearer %[2]s"}}}}}`, allowedPath, tok)
	before := server.sample()
	out, err := exec.Command("ghz", "--insecure", "--protoset", w.protoset,
		"--call", "envoy.service.auth.v3.Authorization.Check", "-d", data,
		"-c", strconv.Itoa(o.connections), "--connections", strconv.Itoa(max(1, o.connections/8)),
		"-z", o.duration.String(), "-n", "100000000", "--format", "json", addr).Output()
	after := server.sample()
	if err != nil {
		return r, fmt.Errorf("ghz: %w\n%s", err, out)
	}
	var g struct {
		Count   int64   `json:"count"`
		RPS     float64 `json:"rps"`
		Latency []struct {
			Percentage int   `json:"percentage"`
			Latency    int64 `json:"latency"`
		} `json:"latencyDistribution"`
		Status map[string]int64 `json:"statusCodeDistribution"`
	}
	if err := json.Unmarshal(out, &g); err != nil {
		return r, fmt.Errorf("ghz output: %w", err)
	}
	r.Requests, r.RPS = g.Count, g.RPS
	for _, l := range g.Latency {
		switch l.Percentage {
		case 50:
			r.P50ms = float64(l.Latency) / 1e6
		case 99:
			r.P99ms = float64(l.Latency) / 1e6
		}
	}
	// Calls still in flight when the time is up end as Canceled.
	r.Unexpected = g.Count - g.Status["OK"] - g.Status["Canceled"]
	server.fill(&r, before, after)
	return r, nil
}

// checkOnce sends one Check and wants it allowed.
func checkOnce(addr, tok string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var resp *authv3.CheckResponse
	for range 50 {
		resp, err = authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Scheme: "https", Host: "orders.example.com", Path: allowedPath,
				Headers: map[string]string{"authorization": "Bearer " + tok},
			}},
		}})
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if resp.GetStatus().GetCode() != 0 {
		return fmt.Errorf("Check denied: %s", resp.GetStatus().GetMessage())
	}
	return nil
}

// startNginx starts nginx as a reverse proxy to the upstream, or says why
// it cannot.
func startNginx(procs *procSet, o options) (*proc, string) {
	path, err := exec.LookPath("nginx")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			return nil, "not installed, not measured"
		}
		path = "/usr/sbin/nginx"
	}
	dir, err := filepath.Abs(filepath.Join(o.out, "nginx"))
	if err != nil {
		return nil, err.Error()
	}
	os.MkdirAll(dir, 0o755)
	conf := fmt.Sprintf(`worker_processes 2;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream app { server %[2]s; keepalive 64; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, upstreamAddr, nginxAddr)
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nil, err.Error()
	}
	p, err := procs.start(path, "-c", file, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	if err != nil {
		return nil, err.Error()
	}
	p.withChildren = true
	return p, ""
}

// startOAuth2Proxy starts oauth2-proxy validating bearer tokens of the
// bench issuer (its keys served by an endpoint of ours, discovery skipped
// as the issuer is not reachable here; the audience is its client id) and
// passing them to the upstream. A token it does not accept is sent to
// sign in (302).
func startOAuth2Proxy(procs *procSet, path string, w *world) (*proc, func(), error) {
	mux := http.NewServeMux()
	base := "http://" + discoveryAddr
	mux.HandleFunc("/keys", func(rw http.ResponseWriter, _ *http.Request) { rw.Write(w.key.JWKS()) })
	ln, err := net.Listen("tcp", discoveryAddr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	stop := func() { srv.Close() }
	p, err := procs.start(path,
		"--http-address", oauth2Addr, "--upstream", "http://"+upstreamAddr,
		"--provider", "oidc", "--oidc-issuer-url", issuer, "--skip-oidc-discovery", "--oidc-jwks-url", base+"/keys",
		"--login-url", base+"/authorize", "--redeem-url", base+"/token",
		"--client-id", audience, "--client-secret", "bench",
		"--cookie-secret", "0123456789abcdef0123456789abcdef", "--email-domain", "*",
		"--skip-jwt-bearer-tokens",
		"--skip-provider-button", "--request-logging=false", "--standard-logging=false", "--auth-logging=false")
	if err != nil {
		stop()
		return nil, nil, err
	}
	return p, stop, nil
}

// report prints the table, the ratios and the JSON, and writes the JSON
// to the output directory.
func report(o options, results []result, floor float64) error {
	rounds := map[int]map[string]result{}
	var names []string
	for _, r := range results {
		if rounds[r.Round] == nil {
			rounds[r.Round] = map[string]result{}
		}
		rounds[r.Round][r.Name] = r
		if !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	// A ratio is computed within each round, where both scenarios ran
	// back to back, and the median of the rounds is reported.
	var spread []string
	ratio := func(a, b string) any {
		var vs []float64
		for _, by := range rounds {
			x, ok1 := by[a]
			y, ok2 := by[b]
			if ok1 && ok2 && y.RPS > 0 {
				vs = append(vs, x.RPS/y.RPS)
			}
		}
		if len(vs) == 0 {
			return nil
		}
		slices.Sort(vs)
		if len(vs) > 1 {
			spread = append(spread, fmt.Sprintf("%s ÷ %s: %.3f–%.3f over %d rounds", a, b, vs[0], vs[len(vs)-1], len(vs)))
		}
		return round(median(vs))
	}
	summary := map[string]any{
		"proxy_vs_baseline":            ratio("idgate proxy, cached", "go reverse proxy"),
		"extauthz_vs_noop":             ratio("idgate ext_authz, cached", "no-op ext_authz"),
		"extauthz_vs_noop_same_answer": ratio("idgate ext_authz, cached", "no-op ext_authz, idgate's answer"),
		"fresh_token_vs_crypto_floor":  nil,
		"proxy_vs_nginx":               ratio("idgate proxy, cached", "nginx reverse proxy"),
		"crypto_floor_verifies_per_s":  round(floor),
	}
	if v := ratio("idgate proxy, cached", "oauth2-proxy, bearer JWT"); v != nil {
		summary["vs_oauth2_proxy"] = v
	}
	// The table shows, for each scenario, the round with its median req/s.
	var table []result
	for _, name := range names {
		var rs []result
		for _, by := range rounds {
			if r, ok := by[name]; ok {
				rs = append(rs, r)
			}
		}
		slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.RPS, b.RPS) })
		table = append(table, rs[(len(rs)-1)/2])
	}
	if floor > 0 {
		var vs []float64
		for _, by := range rounds {
			if r, ok := by["idgate proxy, fresh token"]; ok {
				vs = append(vs, r.RPS/floor)
			}
		}
		if len(vs) > 0 {
			slices.Sort(vs)
			summary["fresh_token_vs_crypto_floor"] = round(median(vs))
		}
	}
	if len(rounds) > 1 {
		summary["rounds"] = len(rounds)
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttool\treq/s\tp50 ms\tp99 ms\tCPU µs/req\tpeak RSS MiB\tunexpected\t")
	for _, r := range table {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.2f\t%.1f\t%.1f\t%d\t\n", r.Name, r.Tool, r.RPS, r.P50ms, r.P99ms, r.CPUusPerReq, r.PeakRSSMiB, r.Unexpected)
	}
	tw.Flush()
	if len(rounds) > 1 {
		fmt.Printf("\n%d rounds; each row is the round with the median req/s; each ratio the median of the rounds':\n", len(rounds))
		for _, line := range spread {
			fmt.Printf("  %s\n", line)
		}
	}
	fmt.Printf("\nRS256 crypto floor: %.0f verifications/s on one core (%.1f µs each)\n", floor, 1e6/floor)
	fmt.Println("ratios (same run, within each round):")
	for _, k := range []string{"proxy_vs_baseline", "proxy_vs_nginx", "extauthz_vs_noop", "extauthz_vs_noop_same_answer", "fresh_token_vs_crypto_floor", "vs_oauth2_proxy"} {
		if v, ok := summary[k]; ok && v != nil {
			fmt.Printf("  %-28s %v\n", k, v)
		}
	}

	full := map[string]any{
		"time": time.Now().UTC().Format(time.RFC3339), "go": runtime.Version(), "cpus": runtime.NumCPU(),
		"duration_s": o.duration.Seconds(), "connections": o.connections,
		"results": results, "summary": summary,
	}
	b, err := json.MarshalIndent(full, "", "  ")
	if err != nil {
		return err
	}
	file := filepath.Join(o.out, "results.json")
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("results: %s\n", file)
	line, err := json.Marshal(summary)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}

// median returns the median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func round(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}

// waitHTTP waits until url answers, for up to 15 seconds.
func waitHTTP(url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready: %w", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A proc is a server process the benchmark started.
type proc struct {
	cmd          *exec.Cmd
	withChildren bool // count its children's CPU and memory too (nginx)
}

// usage is a process's CPU time so far and peak resident memory.
type usage struct {
	cpu     time.Duration
	peakRSS int64 // bytes
}

func (p *proc) pids() []int {
	pids := []int{p.cmd.Process.Pid}
	if !p.withChildren {
		return pids
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 1 && f[1] == strconv.Itoa(p.cmd.Process.Pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// statFields returns the fields of /proc/pid/stat after the command name,
// starting with the state (field 3).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// clockTicks is USER_HZ, the unit of /proc/pid/stat times on Linux.
const clockTicks = 100

func (p *proc) sample() usage {
	var u usage
	for _, pid := range p.pids() {
		if f := statFields(pid); len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			u.cpu += time.Duration(ut+st) * time.Second / clockTicks
		}
		u.peakRSS += vmHWM(pid)
	}
	return u
}

func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (p *proc) fill(r *result, before, after usage) {
	if r.Requests > 0 {
		r.CPUusPerReq = float64((after.cpu - before.cpu).Microseconds()) / float64(r.Requests)
	}
	r.PeakRSSMiB = float64(after.peakRSS) / (1 << 20)
}

// procSet is every process started, so that all are stopped on exit.
type procSet struct{ procs []*proc }

func (s *procSet) start(path string, args ...string) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	p := &proc{cmd: cmd}
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *procSet) stop(p *proc) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func (s *procSet) stopAll() {
	for _, p := range s.procs {
		s.stop(p)
	}
}
