package main

import (
	"os"
	"testing"

	"github.com/idgate/idgate/mint"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestKey(t *testing.T) *mint.Key {
	t.Helper()
	k, err := mint.NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	return k
}
