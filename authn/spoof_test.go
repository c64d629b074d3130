package authn

import (
	"net/http"
	"slices"
	"testing"
)

// A client copy of an output header spelled with "_" for "-" is removed
// too: CGI-style upstreams read both spellings as one variable.
func TestSpoofedCopiesRemoved(t *testing.T) {
	h := http.Header{"X_user_oid": {"forged"}, "X-User_oid": {"forged"}, "X-User-Oidx": {"kept"}, "X_other": {"kept"}}
	got := withSpoofedCopies(nil, h, []string{"X-User-Oid"})
	slices.Sort(got)
	if want := []string{"X-User_oid", "X_user_oid"}; !slices.Equal(got, want) {
		t.Errorf("removed %q, want %q", got, want)
	}
	if got := withSpoofedCopies(nil, h, nil); got != nil {
		t.Errorf("without output headers removed %q, want nothing", got)
	}
}
