package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fullRecord has every field set, as for an authenticated request that a
// dry-run policy would have denied and an AUDIT policy matched.
func fullRecord() Record {
	return Record{
		Time:             time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC),
		RequestID:        "9f86d081884c7d659a2feaa0c55ad015",
		Frontend:         "proxy",
		Decision:         Allow,
		Enforced:         true,
		Status:           200,
		Reason:           "allowed_by_policy",
		Detail:           "allowed by ALLOW policy orders/require-reader rule 0",
		Policy:           "orders/require-reader",
		Rule:             0,
		Principal:        "https://login.microsoftonline.com/6f1c2a3b-4d5e-4f60-8a71-9b2c3d4e5f60/v2.0/alice-sub",
		OID:              "0b2b6f1e-7d7c-4d7e-9a57-3c1a5d1c2e4f",
		TID:              "6f1c2a3b-4d5e-4f60-8a71-9b2c3d4e5f60",
		AppID:            "3fa2b1c4-6e5d-4c3b-8a9f-0e1d2c3b4a59",
		TokenFingerprint: Fingerprint("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
		Method:           "GET",
		Host:             "orders.example.com",
		Path:             "/api/orders/42",
		SourceIP:         netip.MustParseAddr("10.1.2.3"),
		RemoteIP:         netip.MustParseAddr("203.0.113.7"),
		Latency:          41250 * time.Nanosecond,
		DryRun:           Outcome{Decision: Deny, Status: 403, Reason: "denied_by_policy", Policy: "orders/deny-legacy", Rule: 1},
		Audit:            Match{Policy: "orders/audit-all", Rule: 0},
	}
}

// encode writes records through a Writer and returns what it wrote.
func encode(t *testing.T, recs ...Record) []byte {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out, Options{})
	for _, r := range recs {
		w.Record(context.Background(), r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// The schema is a contract: a change to the JSON form of a record shows
// up here, and must come with a new Schema version if it removes or
// changes a field.
func TestRecordGolden(t *testing.T) {
	got := encode(t, fullRecord())
	golden := filepath.Join("testdata", "record.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("record JSON changed (run with -update if intended)\ngot:  %s\nwant: %s", got, want)
	}
}

// An anonymous request's record has no identity fields, and a decision
// without dry-run or AUDIT policies has no such objects; the fields
// every record has are always there.
func TestRecordOmitsAbsentParts(t *testing.T) {
	r := Record{
		Time: time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC), RequestID: "r1", Frontend: "nginx",
		Decision: Deny, Enforced: true, Status: 403, Reason: "no_allow_match", Policy: "", Rule: -1,
		Method: "GET", Host: "h", Path: "/",
	}
	var m map[string]any
	if err := json.Unmarshal(encode(t, r), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"principal", "oid", "tid", "app_id", "token_fingerprint", "dry_run", "audit"} {
		if _, ok := m[k]; ok {
			t.Errorf("anonymous record has %q: %v", k, m[k])
		}
	}
	for _, k := range []string{"schema", "time", "request_id", "frontend", "decision", "enforced", "status", "reason",
		"detail", "policy", "rule", "method", "host", "path", "source_ip", "remote_ip", "latency_ns"} {
		if _, ok := m[k]; !ok {
			t.Errorf("record lacks %q", k)
		}
	}
	if m["schema"] != Schema || m["source_ip"] != "" || m["rule"] != float64(-1) {
		t.Errorf("schema %v, source_ip %q, rule %v; want %s, empty, -1", m["schema"], m["source_ip"], m["rule"], Schema)
	}
}

// docs/audit.md documents every field of the schema.
func TestDocsNameEveryField(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "audit.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			names = append(names, name)
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[Record]())
	for _, n := range names {
		if !bytes.Contains(doc, []byte("`"+n+"`")) {
			t.Errorf("docs/audit.md does not document field %q", n)
		}
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
	if got := Fingerprint("abc"); got != "ba7816bf8f01cfea" {
		t.Errorf("Fingerprint(abc) = %q, want ba7816bf8f01cfea", got)
	}
	if got := Fingerprint(""); got != "" {
		t.Errorf("Fingerprint(\"\") = %q, want empty", got)
	}
}

// Client-chosen values (path, host) cannot make a queued record, and so
// a full queue, hold unbounded memory.
func TestLongFieldsAreCut(t *testing.T) {
	r := fullRecord()
	r.Path = "/" + strings.Repeat("é", 3*MaxField)
	r.Host = strings.Repeat("h", MaxField) // at the limit: kept
	var m map[string]any
	if err := json.Unmarshal(encode(t, r), &m); err != nil {
		t.Fatal(err)
	}
	path := m["path"].(string)
	if len(path) > MaxField || !strings.HasSuffix(path, "…") || !utf8.ValidString(path) || !strings.HasPrefix(path, "/éé") {
		t.Errorf("path cut to %d bytes, valid UTF-8 %v, ends %q; want at most %d ending in …",
			len(path), utf8.ValidString(path), path[max(0, len(path)-8):], MaxField)
	}
	if m["host"] != r.Host {
		t.Errorf("a host of exactly MaxField bytes was changed")
	}
}

// plain is Record without its MarshalJSON: what encoding/json makes of
// the field tags.
type plain Record

// reflectJSON is the JSON encoding/json gives r from its field tags.
func reflectJSON(t *testing.T, r Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(plain(r)); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

// The hand-made encoding is exactly encoding/json's for the field tags,
// so the tags (which decoders use) and the records written agree.
func TestMarshalMatchesFieldTags(t *testing.T) {
	anonymous := Record{Schema: Schema, Decision: Deny, Status: 401, Reason: "malformed", Rule: -1}
	odd := fullRecord()
	odd.Path = "/\"\\\b\f\n\r\t\x00\x1f\x7f<>&\u2028\u2029\xff\xc3(é😀"
	odd.SourceIP = netip.MustParseAddr("fe80::1%eth0")
	odd.RemoteIP = netip.MustParseAddr("::ffff:10.0.0.1")
	odd.Time = time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	for _, r := range []Record{fullRecord(), anonymous, odd, {}} {
		got, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if want := reflectJSON(t, r); !bytes.Equal(got, want) {
			t.Errorf("MarshalJSON\n%s\nencoding/json\n%s", got, want)
		}
	}
}

// Whatever the strings in a record, once cut to MaxField as a Writer
// cuts them, it is encoded exactly as encoding/json would, on one line of
// valid JSON, and the values read back are the values given.
func FuzzRecordLine(f *testing.F) {
	f.Add("GET", "example.com", "/a\nb", "req-1", "alice\u2028", "\x00\x1f\"\\")
	f.Add("", "", "", "", "", "")
	f.Add("P<O>S&T", "h\xffost", "/\u00e9", "id", "sub", "\xc3")
	f.Fuzz(func(t *testing.T, method, host, path, id, principal, detail string) {
		r := fullRecord()
		r.Schema = Schema
		r.Method, r.Host, r.Path, r.RequestID, r.Principal, r.Detail = method, host, path, id, principal, detail
		r.bound()
		out := r.appendJSON(nil)
		if bytes.ContainsAny(out, "\r\n") {
			t.Fatalf("record is not one line: %q", out)
		}
		if want := reflectJSON(t, r); !bytes.Equal(out, want) {
			t.Fatalf("written\n%s\nencoding/json\n%s", out, want)
		}
		var back Record
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("record is not valid JSON: %v\n%q", err, out)
		}
		for _, c := range []struct{ name, got, in string }{
			{"method", back.Method, method}, {"host", back.Host, host}, {"path", back.Path, path},
			{"request_id", back.RequestID, id}, {"principal", back.Principal, principal}, {"detail", back.Detail, detail},
		} {
			if utf8.ValidString(c.in) && len(c.in) <= MaxField && c.got != c.in {
				t.Errorf("%s read back as %q, want %q", c.name, c.got, c.in)
			}
		}
	})
}

// appendString reads plain ASCII 8 bytes at a time: every byte that needs
// escaping, or starts a multi-byte character, is still found whatever its
// place in the word, and the string is encoded exactly as encoding/json
// encodes it.
func TestAppendStringEveryOffset(t *testing.T) {
	specials := []string{"\"", "\\", "\x00", "\x1f", "\n", "\x7f", " ", "~", "\u2028", "é", "\xff", "😀"}
	for _, sp := range specials {
		for n := 0; n <= 20; n++ {
			for at := 0; at <= n; at++ {
				s := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
				want, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				// encoding/json escapes <, > and & for HTML; none is in s.
				if got := appendString(nil, s); !bytes.Equal(got, want) {
					t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
				}
			}
		}
	}
}
