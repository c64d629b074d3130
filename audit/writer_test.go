package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is an io.Writer the test can read while a Writer writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gate is an io.Writer whose writes wait until it is opened: a disk that
// has stopped.
type gate struct {
	open    chan struct{}
	entered chan struct{} // receives once per write that began
	out     lockedBuffer
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), entered: make(chan struct{}, 1<<16)}
}

func (g *gate) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.open
	return g.out.Write(p)
}

// lines returns the records written, checking each is one valid JSON
// record.
func lines(t *testing.T, out string) []Record {
	t.Helper()
	var recs []Record
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not a JSON record: %v\n%s", len(recs)+1, err, sc.Bytes())
		}
		recs = append(recs, r)
	}
	return recs
}

func numbered(i int) Record {
	r := fullRecord()
	r.RequestID = fmt.Sprintf("req-%d", i)
	return r
}

// Close writes every record accepted before it, in order; records after
// it are dropped and counted, never written.
func TestCloseWritesEveryAcceptedRecord(t *testing.T) {
	var out lockedBuffer
	w := NewWriter(&out, Options{QueueSize: 16, Logger: slog.New(slog.DiscardHandler)})
	const n = 1000
	for i := range n {
		w.Record(context.Background(), numbered(i))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Record(context.Background(), numbered(n))
	recs := lines(t, out.String())
	if len(recs) != n {
		t.Fatalf("%d records written, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.RequestID != fmt.Sprintf("req-%d", i) || r.Schema != Schema {
			t.Fatalf("record %d is %s (schema %q), want req-%d in order", i, r.RequestID, r.Schema, i)
		}
	}
	st := w.Stats()
	want := Stats{Received: n + 1, Written: n, Dropped: Drops{Closed: 1}}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// With the Block policy nothing is dropped: a full queue holds requests
// back until the writer catches up.
func TestBlockLosesNothing(t *testing.T) {
	var out lockedBuffer
	w := NewWriter(&out, Options{QueueSize: 2, Overflow: Block})
	const goroutines, each = 8, 250
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				w.Record(context.Background(), numbered(g*each+i))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := lines(t, out.String())
	st := w.Stats()
	if len(recs) != goroutines*each || st.Written != goroutines*each || st.Dropped.Total() != 0 {
		t.Errorf("%d lines, Stats %+v; want %d written, none dropped", len(recs), st, goroutines*each)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.RequestID] {
			t.Errorf("record %s written twice", r.RequestID)
		}
		seen[r.RequestID] = true
	}
}

// With the Drop policy and a stuck destination, requests never wait:
// what does not fit is dropped, counted exactly (sent = written +
// dropped) and logged once, not once per record.
func TestDropCountsEveryDrop(t *testing.T) {
	g := newGate()
	var logs lockedBuffer
	const queue, sent = 8, 500
	w := NewWriter(g, Options{QueueSize: queue, Overflow: Drop, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	w.Record(context.Background(), numbered(0))
	<-g.entered // the writer holds record 0 in a write that cannot finish
	for i := 1; i < sent; i++ {
		w.Record(context.Background(), numbered(i))
	}
	st := w.Stats()
	if st.Dropped.QueueFull != sent-1-queue || st.Pending != queue {
		t.Errorf("while stuck: Stats %+v; want %d dropped (queue full), %d pending", st, sent-1-queue, queue)
	}
	close(g.open)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st = w.Stats()
	recs := lines(t, g.out.String())
	if st.Received != sent || uint64(len(recs)) != st.Written || st.Written+st.Dropped.Total() != sent {
		t.Errorf("sent %d, wrote %d lines; Stats %+v; want sent = written + dropped", sent, len(recs), st)
	}
	if st.Written != 1+queue {
		t.Errorf("written %d, want the record in the write and the %d queued", st.Written, queue)
	}
	if n := strings.Count(logs.String(), "records dropped"); n != 1 {
		t.Errorf("drops logged %d times, want once (rate-limited):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("dropped=%d", 1)) {
		t.Errorf("drop log does not give the count:\n%s", logs.String())
	}
}

// With the Block policy a request that ends while waiting for room gives
// up: its record is dropped and counted, and the request is not held.
func TestBlockGivesUpWhenRequestEnds(t *testing.T) {
	g := newGate()
	w := NewWriter(g, Options{QueueSize: 1, Overflow: Block, Logger: slog.New(slog.DiscardHandler)})
	w.Record(context.Background(), numbered(0))
	<-g.entered
	w.Record(context.Background(), numbered(1)) // fills the queue
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.Record(ctx, numbered(2)) // returns: its context has ended
	if st := w.Stats(); st.Dropped.Canceled != 1 {
		t.Errorf("Stats %+v, want 1 canceled", st)
	}
	close(g.open)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != 2 || st.Written+st.Dropped.Total() != st.Received {
		t.Errorf("Stats %+v, want 2 written and every record accounted for", st)
	}
}

// A record whose request has ended is still written when there is room.
func TestEndedRequestIsRecordedWhenThereIsRoom(t *testing.T) {
	var out lockedBuffer
	w := NewWriter(&out, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.Record(ctx, numbered(0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(t, out.String())); n != 1 {
		t.Errorf("%d records written, want 1", n)
	}
}

func TestFlush(t *testing.T) {
	var out lockedBuffer
	w := NewWriter(&out, Options{})
	for i := range 100 {
		w.Record(context.Background(), numbered(i))
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(t, out.String())); n != 100 {
		t.Errorf("after Flush %d records written, want 100", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
}

// Flush gives up when its context ends, while the destination is stuck.
func TestFlushHonoursContext(t *testing.T) {
	g := newGate()
	w := NewWriter(g, Options{})
	w.Record(context.Background(), numbered(0))
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Flush = %v, want context.Canceled", err)
	}
	close(g.open)
	w.Close()
}

// failing fails every write after the first ok bytes, writing part of
// the write that crosses it, as a full disk does.
type failing struct {
	ok  int
	out bytes.Buffer
}

var errDiskFull = errors.New("no space left on device")

func (f *failing) Write(p []byte) (int, error) {
	if f.ok <= 0 {
		return 0, errDiskFull
	}
	n := min(len(p), f.ok)
	f.ok -= n
	f.out.Write(p[:n])
	if n < len(p) {
		return n, errDiskFull
	}
	return n, nil
}

// Records that cannot be written are counted and reported by Flush and
// Close; the lines written in full count as written, and a line cut off
// by the failure does not run into the next one.
func TestWriteFailures(t *testing.T) {
	one := len(encode(t, numbered(0)))
	f := &failing{ok: 2*one + one/2}
	var logs lockedBuffer
	w := NewWriter(f, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for i := range 3 {
		w.Record(context.Background(), numbered(i))
	}
	err := w.Flush(context.Background())
	if !errors.Is(err, errDiskFull) {
		t.Errorf("Flush = %v, want the write error", err)
	}
	f.ok = 1 << 20 // space again
	w.Record(context.Background(), numbered(3))
	if err := w.Flush(context.Background()); err != nil {
		t.Errorf("Flush after recovery = %v, want nil", err)
	}
	if err := w.Close(); !errors.Is(err, errDiskFull) {
		t.Errorf("Close = %v, want the write error", err)
	}
	st := w.Stats()
	if st.Written+st.Dropped.WriteFailed != 4 || st.Received != 4 {
		t.Errorf("Stats %+v, want 4 received, all written or failed", st)
	}
	out := strings.Split(strings.TrimSuffix(f.out.String(), "\n"), "\n")
	valid := 0
	for _, l := range out {
		var r Record
		if json.Unmarshal([]byte(l), &r) == nil {
			valid++
		}
	}
	if uint64(valid) != st.Written || !strings.HasSuffix(f.out.String(), "\n") {
		t.Errorf("%d valid lines, %d written; output:\n%s", valid, st.Written, f.out.String())
	}
	if var_ := out[len(out)-1]; !strings.Contains(var_, `"req-3"`) {
		t.Errorf("the record after recovery is not on a line of its own: %q", var_)
	}
	if !strings.Contains(logs.String(), "no space left on device") {
		t.Errorf("write failure not logged:\n%s", logs.String())
	}
}

// Open appends to the file, never truncating it, and creates it
// readable by its owner only.
func TestOpenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for i := range 2 {
		w, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		w.Record(context.Background(), numbered(i))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if recs := lines(t, string(data)); len(recs) != 2 || recs[0].RequestID != "req-0" || recs[1].RequestID != "req-1" {
		t.Errorf("file holds %d records, want req-0 then req-1:\n%s", len(recs), data)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "audit.jsonl"), Options{}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

// Open("-") writes to stdout, which Close leaves open.
func TestOpenStdout(t *testing.T) {
	w, err := Open("-", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w.out != io.Writer(os.Stdout) || w.file != nil {
		t.Errorf("Open(-) writes to %v and owns %v; want stdout, owning nothing", w.out, w.file)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stdout.Stat(); err != nil {
		t.Errorf("stdout unusable after Close: %v", err)
	}
}

func TestParseOverflow(t *testing.T) {
	for _, o := range []Overflow{Block, Drop} {
		if got, err := ParseOverflow(o.String()); err != nil || got != o {
			t.Errorf("ParseOverflow(%q) = %v, %v", o, got, err)
		}
	}
	if _, err := ParseOverflow("Block "); err == nil {
		t.Error(`ParseOverflow("Block ") succeeded`)
	}
}

func BenchmarkWriterRecord(b *testing.B) {
	w := NewWriter(io.Discard, Options{})
	r := fullRecord()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		w.Record(ctx, r)
	}
	w.Close()
}

// BenchmarkEncode is the writer goroutine's cost per record.
func BenchmarkEncode(b *testing.B) {
	r := fullRecord()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.appendJSON(buf[:0])
	}
}

// BenchmarkEncodeReflect is what encoding/json takes for the same record,
// for comparison.
func BenchmarkEncodeReflect(b *testing.B) {
	r := plain(fullRecord())
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		enc.Encode(&r)
	}
}

// A device given as the file (--audit /dev/stdout) cannot be synced;
// closing it is no error.
func TestOpenDevice(t *testing.T) {
	w, err := Open(os.DevNull, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Record(context.Background(), numbered(0))
	if err := w.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if st := w.Stats(); st.Written != 1 {
		t.Errorf("Stats %+v, want 1 written", st)
	}
}
