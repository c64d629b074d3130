package token

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Code is a stable reason why a token was rejected. The values are part of
// idgate's contract (logs, metrics, explain output, 401 responses).
type Code string

// The rejection codes, in the order in which checks are made.
const (
	Malformed      Code = "malformed"
	UnsupportedAlg Code = "unsupported_alg"
	UnknownKID     Code = "unknown_kid"
	AlgNotAllowed  Code = "alg_not_allowed"
	BadSignature   Code = "bad_signature"
	WrongIssuer    Code = "wrong_issuer"
	Expired        Code = "expired"
	NotYetValid    Code = "not_yet_valid"
	WrongAudience  Code = "wrong_audience"
)

// Error is the error Verify returns for a rejected token. Callers branch on
// Code; Detail is one human sentence naming the expected and actual values.
type Error struct {
	Code   Code
	Detail string
	// Err is the underlying cause, if any (a key source failure, say).
	Err error
}

// Error returns "code: detail".
func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Detail)
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// errorf returns an *Error with code and a detail formatted as fmt.Sprintf
// does. The detail must stay on one line: quote untrusted values.
func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// maxQuoted bounds how much of an untrusted value a detail repeats.
const maxQuoted = 120

// quote renders an untrusted string for a one-line message: Go-quoted, so
// control characters cannot break the line, and shortened when long.
func quote(s string) string {
	if len(s) > maxQuoted {
		cut := maxQuoted
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// quoteList renders strings as a comma-separated list of quoted values,
// naming at most five.
func quoteList(list []string) string {
	const most = 5
	var b strings.Builder
	for i, s := range list {
		if i == most {
			fmt.Fprintf(&b, ", and %d more", len(list)-most)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(s))
	}
	return b.String()
}
