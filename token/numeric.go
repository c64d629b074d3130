package token

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// numericDate converts a JSON number holding an RFC 7519 NumericDate to
// whole seconds since the epoch. A fraction is dropped (truncated), an
// exponent is applied exactly, and every integer up to 2^63-1 is exact.
// Negative values and values above 2^63-1 are errors.
func numericDate(n json.Number) (int64, error) {
	s := string(n)
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("negative")
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(s[i+1:])
		if err != nil {
			// Only an exponent too large for an int gets here.
			if strings.HasPrefix(s[i+1:], "-") {
				return 0, nil
			}
			if strings.Trim(mant, "0.") == "" {
				return 0, nil
			}
			return 0, errors.New("out of range")
		}
		exp = e
	}
	digits := mant
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		digits = mant[:i] + mant[i+1:]
		exp -= len(mant) - i - 1
	}
	// The value is digits × 10^exp; keep the integer part.
	if exp < 0 {
		if -exp >= len(digits) {
			return 0, nil
		}
		digits = digits[:len(digits)+exp]
		exp = 0
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, nil
	}
	if len(digits)+exp > 19 {
		return 0, errors.New("out of range")
	}
	v, err := strconv.ParseUint(digits+strings.Repeat("0", exp), 10, 64)
	if err != nil || v > math.MaxInt64 {
		return 0, errors.New("out of range")
	}
	return int64(v), nil
}

// formatDate renders seconds since the epoch for a human.
func formatDate(sec int64) string {
	const maxFormattable = 253402300799 // 9999-12-31T23:59:59Z
	if sec < 0 || sec > maxFormattable {
		return strconv.FormatInt(sec, 10) + " seconds after 1970"
	}
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}

// formatSeconds renders a non-negative number of seconds as a duration a
// human reads at a glance: "45s", "2h3m0s", "12 days".
func formatSeconds(n int64) string {
	const day = 24 * 60 * 60
	if n < 0 { // only when a subtraction overflowed
		return "more than 292 years"
	}
	if n >= 2*day {
		return strconv.FormatInt(n/day, 10) + " days"
	}
	return (time.Duration(n) * time.Second).String()
}
