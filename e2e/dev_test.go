package e2e

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDevFirstFiveMinutes is a newcomer's first five minutes, automated:
// build idgate, start `idgate dev`, wait until it is ready, get tokens
// with `idgate token`, run the curl commands dev printed and check their
// statuses and the identity headers the echo upstream received, then stop
// it with Ctrl-C.
func TestDevFirstFiveMinutes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the idgate binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "idgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/idgate")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	idpAddr, proxyAddr, upAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	audit := filepath.Join(tmp, "audit.jsonl")

	cmd := exec.Command(bin, "dev",
		"--idp-listen", idpAddr, "--listen", proxyAddr, "--upstream-listen", upAddr,
		"--admin-listen", adminAddr, "--audit", audit)
	cmd.Dir = ".."
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	waitReady(t, "http://"+adminAddr+"/readyz", done, &stderr)
	t.Logf("idgate dev ready in %v (build excluded)", time.Since(start).Round(time.Millisecond))

	// idgate token prints a bare token, for TOKEN=$(idgate token ...).
	out, err := exec.Command(bin, "token", "--idp", "http://"+idpAddr, "--user", "alice").Output()
	if err != nil {
		t.Fatalf("idgate token: %v", err)
	}
	if tok := strings.TrimSpace(string(out)); strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("idgate token printed %q, want one compact JWS", out)
	}

	examples := printedExamples(t, stdout.String())
	if len(examples) < 8 {
		t.Fatalf("idgate dev printed %d examples, want at least 8:\n%s", len(examples), stdout.String())
	}
	seen := map[int]bool{}
	path := filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")
	curl, _ := exec.LookPath("curl")
	if curl == "" {
		t.Log("curl is not installed: running the printed commands' requests with Go's client")
	}
	for _, ex := range examples {
		t.Run(ex.what, func(t *testing.T) {
			var status int
			var body string
			if curl != "" {
				status, body = runShell(t, ex.command, path)
			} else {
				status, body = runWithGo(t, bin, ex.command)
			}
			if status != ex.status {
				t.Fatalf("%s\ngot %d, want %d:\n%s", ex.command, status, ex.status, body)
			}
			seen[status] = true
			if status == http.StatusOK && strings.Contains(ex.command, "--user alice") {
				for _, h := range []string{`"x-user-oid": "a11ce000-0000-4000-8000-00000000a11c"`, `"x-user-name": "Alice Dev"`, `"x-user-tid": "3f8d6a2e-5b7c-4e19-9a0d-1c2b3d4e5f60"`} {
					if !strings.Contains(body, h) {
						t.Errorf("the echo upstream did not receive %s:\n%s", h, body)
					}
				}
				if strings.Contains(strings.ToLower(body), `"authorization"`) {
					t.Errorf("the token was forwarded upstream:\n%s", body)
				}
			}
			if status == http.StatusOK && strings.Contains(ex.command, "--app orders-ops") && !strings.Contains(body, `"x-user-roles": "Orders.Reader,Orders.Admin"`) {
				t.Errorf("the echo upstream did not receive the app's roles:\n%s", body)
			}
			if status != http.StatusOK && strings.Contains(body, "idgate dev echo") {
				t.Errorf("a denied request reached the upstream:\n%s", body)
			}
		})
	}
	for _, s := range []int{200, 401, 403} {
		if !seen[s] {
			t.Errorf("no printed example gets %d", s)
		}
	}

	data, err := os.ReadFile(audit)
	if err != nil || bytes.Count(data, []byte("\n")) < len(examples) {
		t.Errorf("audit trail %s has %d lines (%v), want one per request at least", audit, bytes.Count(data, []byte("\n")), err)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("idgate dev after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idgate dev did not stop within 10s of SIGINT")
	}
	for _, addr := range []string{idpAddr, proxyAddr, upAddr, adminAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after exit: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// TestDevPortTaken checks that a taken port stops idgate dev with exit
// status 2 and names the flag.
func TestDevPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the idgate binary")
	}
	bin := filepath.Join(t.TempDir(), "idgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/idgate")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, flag := range []string{"--idp-listen", "--listen", "--upstream-listen", "--admin-listen"} {
		args := map[string]string{"--idp-listen": freeAddr(t), "--listen": freeAddr(t), "--upstream-listen": freeAddr(t), "--admin-listen": freeAddr(t)}
		args[flag] = taken.Addr().String()
		cmd := exec.Command(bin, "dev")
		for f, v := range args {
			cmd.Args = append(cmd.Args, f, v)
		}
		cmd.Dir = ".."
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%s taken: %v, want exit status 2", flag, err)
		}
		if !strings.Contains(stderr.String(), flag+":") {
			t.Errorf("%s taken: message %q does not name the flag", flag, stderr.String())
		}
	}
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, url string, exited <-chan error, stderr *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("idgate dev exited before ready: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 30s\n%s", url, stderr.String())
}

type example struct {
	status  int
	what    string
	command string
}

var exampleComment = regexp.MustCompile(`^\s*# (\d{3}): (.+)$`)

// printedExamples reads the "# STATUS: what" comments and the curl
// command under each from idgate dev's output.
func printedExamples(t *testing.T, out string) []example {
	t.Helper()
	var list []example
	sc := bufio.NewScanner(strings.NewReader(out))
	var pending *example
	for sc.Scan() {
		line := sc.Text()
		if m := exampleComment.FindStringSubmatch(line); m != nil {
			status, _ := strconv.Atoi(m[1])
			pending = &example{status: status, what: m[2]}
			continue
		}
		if pending != nil && strings.HasPrefix(strings.TrimSpace(line), "curl ") {
			pending.command = strings.TrimSpace(line)
			list = append(list, *pending)
			pending = nil
		}
	}
	return list
}

// runShell runs a printed command as a user would paste it; curl's -w
// prints the status last.
func runShell(t *testing.T, command, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(), "PATH="+path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(s, '\n')
	status, err := strconv.Atoi(s[i+1:])
	if err != nil {
		t.Fatalf("%s: output does not end with a status:\n%s", command, out)
	}
	return status, s[:i+1]
}

var (
	curlMethod = regexp.MustCompile(` -X ([A-Z]+)`)
	curlToken  = regexp.MustCompile(`\$\(idgate token ([^)]*)\)`)
	curlRawTok = regexp.MustCompile(`Authorization: Bearer ([^"$]+)"`)
	curlURL    = regexp.MustCompile(` (http://\S+)$`)
)

// runWithGo makes the request a printed curl command makes, for machines
// without curl: the method, the token idgate token gives, the URL.
func runWithGo(t *testing.T, bin, command string) (int, string) {
	t.Helper()
	method := "GET"
	if m := curlMethod.FindStringSubmatch(command); m != nil {
		method = m[1]
	}
	u := curlURL.FindStringSubmatch(command)
	if u == nil {
		t.Fatalf("no URL in %s", command)
	}
	req, err := http.NewRequest(method, u[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case curlToken.MatchString(command):
		args := strings.Fields(curlToken.FindStringSubmatch(command)[1])
		out, err := exec.Command(bin, append([]string{"token"}, args...)...).Output()
		if err != nil {
			t.Fatalf("idgate token %v: %v", args, err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(out)))
	case curlRawTok.MatchString(command):
		req.Header.Set("Authorization", "Bearer "+curlRawTok.FindStringSubmatch(command)[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// lockedBuffer is a bytes.Buffer a process writes to while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
