package request

import (
	"fmt"
	"net/http"
)

// MethodError is the error for a request method that cannot be
// authorized: one holding a lower-case letter, which Envoy rejects with
// 400 before any authorization (istio-semantics.md §4.10). Policies match
// methods case-sensitively, so "delete" would slip past a DENY on DELETE
// to an upstream that reads methods without regard to case. Front ends
// answer it with Status and never forward the request.
type MethodError struct {
	// Method is the method as received, cut to 32 bytes.
	Method string
}

func (e *MethodError) Error() string {
	return fmt.Sprintf("request method %q is not in upper case", e.Method)
}

// Status is the HTTP status such a request is answered with: 400.
func (e *MethodError) Status() int { return http.StatusBadRequest }

// CheckMethod returns a *MethodError when method holds a lower-case
// letter, else nil.
func CheckMethod(method string) error {
	for i := 0; i < len(method); i++ {
		if c := method[i]; 'a' <= c && c <= 'z' {
			const maxMethod = 32
			if len(method) > maxMethod {
				method = method[:maxMethod]
			}
			return &MethodError{Method: method}
		}
	}
	return nil
}
