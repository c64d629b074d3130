package request

import (
	"errors"
	"net/http/httptest"
	"testing"
)

func TestCheckMethod(t *testing.T) {
	for _, m := range []string{"GET", "DELETE", "M-SEARCH", "PURGE", "VERSION_CONTROL"} {
		if err := CheckMethod(m); err != nil {
			t.Errorf("CheckMethod(%q) = %v, want nil", m, err)
		}
	}
	for _, m := range []string{"get", "Delete", "POSt"} {
		if _, ok := errors.AsType[*MethodError](CheckMethod(m)); !ok {
			t.Errorf("CheckMethod(%q) is not a *MethodError", m)
		}
	}
}

// A lower-case method is refused before a request has attributes: a DENY
// on DELETE must not be passed by "delete".
func TestFromHTTPLowerCaseMethod(t *testing.T) {
	r := httptest.NewRequest("delete", "/api/orders", nil)
	if _, err := FromHTTP(r, 0); err == nil {
		t.Fatal("FromHTTP accepted the method delete")
	} else if _, ok := errors.AsType[*MethodError](err); !ok {
		t.Errorf("FromHTTP error %v is not a *MethodError", err)
	}
}
