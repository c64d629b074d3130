package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A Sink receives the audit records of decisions.
type Sink interface {
	// Record takes the record of one decision. It is called on the
	// request path, concurrently, with the request's context, once per
	// decision.
	Record(ctx context.Context, r Record)
}

// Overflow says what a Writer does with a record when its queue is full.
type Overflow uint8

const (
	// Block waits for room in the queue (backpressure): the request whose
	// decision it is waits until its record is queued. Only when the
	// request's context ends first is the record dropped, and counted as
	// Drops.Canceled. The default.
	Block Overflow = iota
	// Drop drops the record at once, counts it (Drops.QueueFull) and logs
	// the drop (at most once per DropLogInterval), so that requests never
	// wait on the audit trail.
	Drop
)

// String returns "block" or "drop".
func (o Overflow) String() string {
	switch o {
	case Block:
		return "block"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("Overflow(%d)", uint8(o))
}

// ParseOverflow parses "block" or "drop".
func ParseOverflow(s string) (Overflow, error) {
	switch s {
	case "block":
		return Block, nil
	case "drop":
		return Drop, nil
	}
	return 0, fmt.Errorf("audit: unknown overflow policy %q: want block or drop", s)
}

// DefaultQueueSize is the number of records a Writer queues by default.
const DefaultQueueSize = 4096

// DropLogInterval is the least time between two log lines about dropped
// records, or about failed writes; every drop is counted all the same.
const DropLogInterval = 10 * time.Second

// batchSize is how many bytes of records the writer gathers into one
// write while more records are queued.
const batchSize = 64 << 10

// linger is how long a Writer whose records come close together waits
// for more, after a record, to write them together: how much later than
// it could be a record is written.
const linger = time.Millisecond

// ErrClosed is returned by Flush on a closed Writer.
var ErrClosed = errors.New("audit: writer closed")

// Options configure a Writer.
type Options struct {
	// QueueSize is how many records may wait to be written; 0 means
	// DefaultQueueSize.
	QueueSize int
	// Overflow is what happens to a record when the queue is full.
	Overflow Overflow
	// Logger receives drops and write failures; nil means slog.Default().
	Logger *slog.Logger
}

// Stats account for every record a Writer was given. Once the Writer is
// closed, Received = Written + Dropped.Total(); while it runs, the
// difference is Pending (give or take the records being handed over as
// the counters are read).
type Stats struct {
	// Received counts calls of Record.
	Received uint64
	// Written counts records written to the destination.
	Written uint64
	// Pending is the number of records queued and not yet written.
	Pending int
	// Dropped counts records that were not written, by cause.
	Dropped Drops
}

// Drops count records that were not written, by cause.
type Drops struct {
	// QueueFull: the queue was full and the policy is Drop.
	QueueFull uint64
	// Canceled: the queue was full (policy Block) and the request's
	// context ended before there was room.
	Canceled uint64
	// Closed: the record came after Close.
	Closed uint64
	// WriteFailed: writing the record to the destination failed.
	WriteFailed uint64
}

// Total returns the number of records dropped for any cause.
func (d Drops) Total() uint64 { return d.QueueFull + d.Canceled + d.Closed + d.WriteFailed }

// A Writer is a Sink that writes records as JSON lines (one record per
// line, in the order they were queued) to an io.Writer, from a goroutine
// of its own: at once, or, while records keep coming less than a
// millisecond apart, a millisecond after the previous write. Records
// queued together are written together, and every write holds whole
// lines, so that several processes may append to one file. It is safe
// for concurrent use; Close it to write every queued record.
type Writer struct {
	out   io.Writer
	file  *os.File // the file Open opened, closed by Close
	sync  bool     // file is a regular file, synced by Close
	opts  Options
	log   *slog.Logger
	queue chan item
	done  chan struct{} // closed when run has returned
	err   error         // the write error Close reports; set by run

	mu     sync.RWMutex // held for reading while queueing, for writing by Close
	closed bool

	received    atomic.Uint64
	written     atomic.Uint64
	queueFull   atomic.Uint64
	canceled    atomic.Uint64
	afterClose  atomic.Uint64
	writeFailed atomic.Uint64
	lastDropLog atomic.Int64 // UnixNano of the latest drop log line
}

// item is a queued record, or a Flush request when flushed is non-nil.
type item struct {
	rec     Record
	flushed chan error
}

var _ Sink = (*Writer)(nil)

// NewWriter returns a Writer that writes to out, and starts its goroutine.
func NewWriter(out io.Writer, opts Options) *Writer {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	w := &Writer{
		out:   out,
		opts:  opts,
		log:   opts.Logger,
		queue: make(chan item, opts.QueueSize),
		done:  make(chan struct{}),
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	go w.run()
	return w
}

// Open returns a Writer for the --audit setting: "-" is stdout; anything
// else is a file, created (mode 0600) if missing and appended to, never
// truncated. Close closes the file (never stdout), syncing it first when
// it is a regular file.
func Open(path string, opts Options) (*Writer, error) {
	if path == "-" {
		return NewWriter(os.Stdout, opts), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	w := NewWriter(f, opts)
	w.file = f
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		w.sync = true
	}
	return w, nil
}

// Record queues r to be written. When the queue is full it waits or
// drops r, as Options.Overflow says. String fields longer than MaxField
// are cut.
func (w *Writer) Record(ctx context.Context, r Record) {
	w.received.Add(1)
	if r.Schema == "" {
		r.Schema = Schema
	}
	r.bound()
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.drop(&w.afterClose, "the audit writer is closed")
		return
	}
	select {
	case w.queue <- item{rec: r}:
		return
	default:
	}
	if w.opts.Overflow == Drop {
		w.drop(&w.queueFull, "the audit queue is full")
		return
	}
	select {
	case w.queue <- item{rec: r}:
	case <-ctx.Done():
		w.drop(&w.canceled, "the request ended while waiting for room in the audit queue")
	}
}

// drop counts a dropped record in c and logs it, at most once per
// DropLogInterval.
func (w *Writer) drop(c *atomic.Uint64, why string) {
	c.Add(1)
	now := time.Now().UnixNano()
	last := w.lastDropLog.Load()
	if last != 0 && now-last < int64(DropLogInterval) || !w.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	st := w.Stats()
	w.log.Warn("audit: records dropped: "+why,
		"dropped", st.Dropped.Total(), "queue_full", st.Dropped.QueueFull,
		"canceled", st.Dropped.Canceled, "closed", st.Dropped.Closed,
		"write_failed", st.Dropped.WriteFailed, "queue_size", w.opts.QueueSize,
		"overflow", w.opts.Overflow.String())
}

// Flush waits until every record queued before it has been written, and
// returns the first write error since the previous Flush, if any. It
// returns ctx's error if ctx ends first (the records are still written),
// and ErrClosed after Close.
func (w *Writer) Flush(ctx context.Context) error {
	c := make(chan error, 1)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.queue <- item{flushed: c}:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return context.Cause(ctx)
	}
	select {
	case err := <-c:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Close stops accepting records (later ones are dropped and counted),
// writes every record queued, and syncs and closes the file Open opened.
// It returns the first write error, if any record could not be written,
// or the error of closing the file. Calling it again returns nil.
//
// Close waits for the destination: while a write is stuck (a pipe no one
// reads), so is Close. A caller that must exit in bounded time waits for
// it only so long.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	close(w.queue)
	w.mu.Unlock()
	<-w.done
	err := w.err
	if w.file != nil {
		if e := w.syncFile(); e != nil && err == nil {
			err = fmt.Errorf("audit: %w", e)
		}
		if e := w.file.Close(); e != nil && err == nil {
			err = fmt.Errorf("audit: %w", e)
		}
	}
	return err
}

// syncFile syncs the file Open opened when it is a regular file (a
// device or pipe such as /dev/stdout cannot be synced).
func (w *Writer) syncFile() error {
	if !w.sync {
		return nil
	}
	return w.file.Sync()
}

// Stats returns the Writer's counters.
func (w *Writer) Stats() Stats {
	return Stats{
		Received: w.received.Load(),
		Written:  w.written.Load(),
		Pending:  len(w.queue),
		Dropped: Drops{
			QueueFull:   w.queueFull.Load(),
			Canceled:    w.canceled.Load(),
			Closed:      w.afterClose.Load(),
			WriteFailed: w.writeFailed.Load(),
		},
	}
}

// run writes queued records until the queue is closed.
//
// A record that comes less than linger after the previous write finds
// the trail busy: run waits linger for more before writing it, and writes
// every record queued by then together. While it waits, queueing a record
// does not wake it, so a busy trail costs one wake-up and one write per
// linger, not one per record. A record that comes after a quiet spell is
// written at once.
func (w *Writer) run() {
	defer close(w.done)
	b := batch{w: w}
	var last time.Time // of the latest write
	for {
		it, ok := <-w.queue
		if !ok {
			return
		}
		if b.take(it) && time.Since(last) < linger {
			time.Sleep(linger)
		}
		for more := true; more; {
			select {
			case it, ok := <-w.queue:
				if !ok {
					b.write()
					return
				}
				b.take(it)
				if len(b.buf) >= batchSize {
					b.write()
				}
			default:
				more = false
			}
		}
		b.write()
		last = time.Now()
	}
}

// take adds a queued record to the batch, reporting true, or answers a
// Flush request after writing the batch.
func (b *batch) take(it item) bool {
	if it.flushed != nil {
		b.write()
		it.flushed <- b.sinceFlush
		b.sinceFlush = nil
		return false
	}
	b.buf = it.rec.appendJSON(b.buf)
	b.buf = append(b.buf, '\n')
	b.n++
	return true
}

// batch gathers encoded records for one write. Only run uses it.
type batch struct {
	w   *Writer
	buf []byte
	n   int // records in buf
	// partial is set after a write that failed part way, leaving an
	// unfinished line: the next write starts a new line first.
	partial bool
	// sinceFlush is the first write error since the last Flush.
	sinceFlush error
	lastLog    time.Time
}

// write writes the gathered records.
func (b *batch) write() {
	if b.n == 0 {
		return
	}
	n, p := b.n, b.buf
	b.n, b.buf = 0, b.buf[:0]
	if b.partial {
		if _, err := b.w.out.Write([]byte{'\n'}); err != nil {
			b.fail(n, fmt.Errorf("audit: %w", err))
			return
		}
		b.partial = false
	}
	wrote, err := b.w.out.Write(p)
	wrote = min(max(wrote, 0), len(p)) // a Writer that breaks its contract
	if err == nil && wrote < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		// The lines written in full count as written.
		lines := bytes.Count(p[:wrote], []byte{'\n'})
		b.w.written.Add(uint64(lines))
		b.partial = wrote > 0 && p[wrote-1] != '\n'
		b.fail(n-lines, fmt.Errorf("audit: %w", err))
		return
	}
	b.w.written.Add(uint64(n))
}

// fail counts n records lost to err, remembers err for Flush and Close,
// and logs it at most once per DropLogInterval.
func (b *batch) fail(n int, err error) {
	b.w.writeFailed.Add(uint64(n))
	if b.sinceFlush == nil {
		b.sinceFlush = err
	}
	if b.w.err == nil {
		b.w.err = err
	}
	if now := time.Now(); b.lastLog.IsZero() || now.Sub(b.lastLog) >= DropLogInterval {
		b.lastLog = now
		b.w.log.Error("audit: writing records failed; they are lost",
			"error", err, "records", n, "write_failed_total", b.w.writeFailed.Load())
	}
}
