package audit

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON returns the JSON form of r: the audit schema, one object
// with the fields in the order Record declares them.
func (r Record) MarshalJSON() ([]byte, error) {
	return r.appendJSON(make([]byte, 0, 768)), nil
}

// appendJSON appends the JSON form of r to b. It is what encoding/json
// would produce from Record's field tags (a test holds it to that), made
// by hand because the writer goroutine must keep up with decisions that
// take well under a microsecond.
func (r *Record) appendJSON(b []byte) []byte {
	b = append(b, `{"schema":`...)
	b = appendString(b, r.Schema)
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","request_id":`...)
	b = appendString(b, r.RequestID)
	b = append(b, `,"frontend":`...)
	b = appendString(b, r.Frontend)
	b = append(b, `,"decision":`...)
	b = appendString(b, r.Decision)
	b = append(b, `,"enforced":`...)
	b = strconv.AppendBool(b, r.Enforced)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"reason":`...)
	b = appendString(b, r.Reason)
	b = append(b, `,"detail":`...)
	b = appendString(b, r.Detail)
	b = append(b, `,"policy":`...)
	b = appendString(b, r.Policy)
	b = append(b, `,"rule":`...)
	b = strconv.AppendInt(b, int64(r.Rule), 10)
	b = appendOptional(b, `,"principal":`, r.Principal)
	b = appendOptional(b, `,"oid":`, r.OID)
	b = appendOptional(b, `,"tid":`, r.TID)
	b = appendOptional(b, `,"app_id":`, r.AppID)
	b = appendOptional(b, `,"token_fingerprint":`, r.TokenFingerprint)
	b = append(b, `,"method":`...)
	b = appendString(b, r.Method)
	b = append(b, `,"host":`...)
	b = appendString(b, r.Host)
	b = append(b, `,"path":`...)
	b = appendString(b, r.Path)
	b = append(b, `,"source_ip":`...)
	b = appendAddr(b, r.SourceIP)
	b = append(b, `,"remote_ip":`...)
	b = appendAddr(b, r.RemoteIP)
	b = append(b, `,"latency_ns":`...)
	b = strconv.AppendInt(b, int64(r.Latency), 10)
	if r.DryRun != (Outcome{}) {
		o := &r.DryRun
		b = append(b, `,"dry_run":{"decision":`...)
		b = appendString(b, o.Decision)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(o.Status), 10)
		b = append(b, `,"reason":`...)
		b = appendString(b, o.Reason)
		b = append(b, `,"policy":`...)
		b = appendString(b, o.Policy)
		b = append(b, `,"rule":`...)
		b = strconv.AppendInt(b, int64(o.Rule), 10)
		b = append(b, '}')
	}
	if r.Audit != (Match{}) {
		b = append(b, `,"audit":{"policy":`...)
		b = appendString(b, r.Audit.Policy)
		b = append(b, `,"rule":`...)
		b = strconv.AppendInt(b, int64(r.Audit.Rule), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendOptional appends a member named by key (`,"name":`) unless s is
// empty.
func appendOptional(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, key...)
	return appendString(b, s)
}

// appendAddr appends a as a JSON string, "" for the zero Addr.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, `""`...)
	}
	b = append(b, '"')
	start := len(b)
	b = a.AppendTo(b)
	for _, c := range b[start:] {
		if c >= utf8.RuneSelf || !verbatim(c) {
			// Only an IPv6 zone can hold such a byte.
			return appendString(b[:start-1], a.String())
		}
	}
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// verbatim reports whether a JSON string holds the ASCII byte c as it is.
func verbatim(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

// skipVerbatim returns the index of the first byte at or after i that a
// JSON string may not hold as it is, or a later index at most 7 bytes
// before the end of s: it tests 8 bytes at a time, as one 64-bit word,
// whether they are all ASCII and verbatim.
func skipVerbatim(s string, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		if x&highs != 0 {
			return i // a byte >= 0x80
		}
		// With every byte below 0x80, (y - ones) & ^y & highs is not
		// zero exactly when a byte of y is zero, and
		// (x - n*ones) & ^x & highs exactly when a byte of x is below n.
		quote := x ^ (ones * '"')
		backslash := x ^ (ones * '\\')
		if ((x-ones*0x20)&^x|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0 {
			return i
		}
	}
	return i
}

// appendString appends s as a JSON string, escaped as encoding/json does
// without HTML escaping: '"', '\\' and control characters are escaped,
// as are U+2028 and U+2029 (for JavaScript readers), and each byte of
// invalid UTF-8 becomes U+FFFD. The result is always valid JSON and one
// line.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most of a record is plain ASCII: skip it 8 bytes at a time.
		if i = skipVerbatim(s, i); i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if verbatim(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
