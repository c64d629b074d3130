package server

import (
	"crypto/sha256"
	"io"
	"os"
	"sort"
)

// fingerprint identifies the contents of a set of files, so that a watcher
// notices any change: an edit, a new or removed file, or a Kubernetes
// ConfigMap's atomic symlink swap (which changes no mtime a stat of the
// old path would see). Unreadable files count as a change too.
func fingerprint(files []string) [sha256.Size]byte {
	sorted := append([]string(nil), files...)
	sort.Strings(sorted)
	h := sha256.New()
	for _, f := range sorted {
		io.WriteString(h, f)
		h.Write([]byte{0})
		fh, err := os.Open(f)
		if err != nil {
			io.WriteString(h, "unreadable:"+err.Error())
			continue
		}
		io.Copy(h, io.LimitReader(fh, 64<<20))
		fh.Close()
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
