package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse: it never panics or hangs, and
// a rejection names the file. (An empty document is the defaults, which
// serve validates after the command line is applied, so an accepted
// configuration need not be complete.)
func FuzzParse(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(full),
		"",
		"listen: 127.0.0.1:8080\nupstream: http://127.0.0.1:9000\npolicies: [p.yaml]\n",
		"timeouts: {read-header: 5s, upstream: -1s}\n",
		"keys: {refresh-interval: 1h, max-stale: 1m}\n",
		"a: &x [*x]\n",
		"listen: [1, 2]\n",
		"limits: {max-header-bytes: 99999999999999999999}\n",
		"unknown: 1\n",
		"---\n---\n",
		"timeouts: {shutdown: 10000000000000000000h}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Parse("idgate.yaml", data); err != nil && !strings.Contains(err.Error(), "idgate.yaml") {
			t.Errorf("error %q does not name the file", err)
		}
	})
}
