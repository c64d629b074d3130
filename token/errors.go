package token

import "fmt"

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

func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }
