package sink

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrSpoolFull is returned when a write would take the spool past its
// byte bound.
var ErrSpoolFull = errors.New("sink: spool full")

// ErrSpoolLocked is returned, wrapped, by New when another pipeline (in
// this process or another) holds the spool directory.
var ErrSpoolLocked = errors.New("sink: spool directory in use by another pipeline")

// The spool is a directory of segment files, NNNNNNNNNNNNNNNNNNNN.seg, each a
// run of frames (see AppendFrame), read oldest first. New records go to the
// newest segment; records the pipeline must put back in front of the spool
// (its memory queue, after a failed delivery or at Close) go to a new
// segment numbered below the oldest. The file "head" holds the oldest
// segment's number and how many of its bytes were delivered, so a restart
// resumes where delivery stopped. Segments that are fully delivered are
// removed.
//
// Durability: appends are written with write(2) at once, so they survive
// a crash of the process; they are fsynced by sync, which the pipeline calls
// before it sleeps (at most RetryInterval after a spill) and at Close. A
// power loss can lose what was written since the last sync. The head file
// is replaced with a rename, not fsynced: after a power loss a few records
// may be delivered twice, never skipped.
//
// A spool is not safe for concurrent use; the pipeline guards it with its
// mutex.
type spool struct {
	dir      string
	maxBytes int64
	segBytes int64
	lock     *os.File   // holds the directory's flock; nil where there is none
	segs     []*segment // oldest first
	bytes    int64      // bytes not yet delivered
	records  int        // records not yet delivered
	buf      []byte
}

type segment struct {
	num     uint64
	f       *os.File
	size    int64
	read    int64 // bytes delivered from the start
	records int   // records not yet delivered
	dirty   bool  // written since the last fsync
}

// firstSegment leaves room below the first segment for prepends.
const firstSegment = 1 << 40

func segName(num uint64) string { return fmt.Sprintf("%020d.seg", num) }

// openSpool opens the spool in dir, creating dir if needed, and cuts any
// torn tail off its segments.
func openSpool(dir string, maxBytes, segBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sink open spool: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &spool{dir: dir, maxBytes: maxBytes, segBytes: segBytes, lock: lock}
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("sink open spool: %w", err)
	}
	var nums []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			nums = append(nums, n)
		}
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	headNum, headOff := s.readHead()
	for _, n := range nums {
		path := filepath.Join(dir, segName(n))
		if n < headNum { // delivered before the last restart
			if err := os.Remove(path); err != nil {
				s.close()
				return nil, fmt.Errorf("sink open spool: %w", err)
			}
			continue
		}
		seg, err := openSegment(path, n)
		if err != nil {
			s.close()
			return nil, err
		}
		if n == headNum {
			if headOff > seg.size {
				headOff = seg.size
			}
			// Count only the frames after the delivered prefix.
			cnt, end, err := scanFrames(io.NewSectionReader(seg.f, headOff, seg.size-headOff))
			if err != nil || headOff+end != seg.size {
				seg.f.Close()
				s.close()
				return nil, fmt.Errorf("sink open spool %s: head offset %d is not a frame boundary", path, headOff)
			}
			seg.read, seg.records = headOff, cnt
		}
		if seg.size == seg.read {
			seg.f.Close()
			os.Remove(path)
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size - seg.read
		s.records += seg.records
	}
	return s, nil
}

// openSegment opens a segment and truncates a torn tail.
func openSegment(path string, num uint64) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sink open spool: %w", err)
	}
	cnt, end, err := scanFrames(f)
	if err != nil {
		if !errors.Is(err, ErrTorn) {
			f.Close()
			return nil, fmt.Errorf("sink open spool %s: %w", path, err)
		}
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("sink open spool %s: cut torn tail: %w", path, err)
		}
	}
	return &segment{num: num, f: f, size: end, records: cnt}, nil
}

// scanFrames counts the valid frames from r's start and where they end.
// It returns ErrTorn when bytes that are not a valid frame follow.
func scanFrames(r io.Reader) (count int, end int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [frameHeader]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				return count, end, nil
			}
			if err == io.ErrUnexpectedEOF {
				return count, end, ErrTorn
			}
			return count, end, err
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size < bodyFixed || size > MaxRecordBytes {
			return count, end, ErrTorn
		}
		buf = append(buf[:0], hdr[:]...)
		buf = append(buf, make([]byte, size)...)
		if _, err := io.ReadFull(br, buf[frameHeader:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return count, end, ErrTorn
			}
			return count, end, err
		}
		if _, _, ok := decodeFrame(buf); !ok {
			return count, end, ErrTorn
		}
		count++
		end += int64(len(buf))
	}
}

func (s *spool) headPath() string { return filepath.Join(s.dir, "head") }

func (s *spool) readHead() (num uint64, off int64) {
	b, err := os.ReadFile(s.headPath())
	if err != nil || len(b) != 16 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:]))
}

// writeHead records the oldest segment and its delivered prefix.
func (s *spool) writeHead() error {
	var b [16]byte
	if len(s.segs) > 0 {
		binary.BigEndian.PutUint64(b[:], s.segs[0].num)
		binary.BigEndian.PutUint64(b[8:], uint64(s.segs[0].read))
	}
	tmp := s.headPath() + ".tmp"
	if err := os.WriteFile(tmp, b[:], 0o600); err != nil {
		return fmt.Errorf("sink spool head: %w", err)
	}
	if err := os.Rename(tmp, s.headPath()); err != nil {
		return fmt.Errorf("sink spool head: %w", err)
	}
	return nil
}

func (s *spool) encode(recs []Record) error {
	s.buf = s.buf[:0]
	for _, r := range recs {
		var err error
		if s.buf, err = AppendFrame(s.buf, r); err != nil {
			return err
		}
	}
	if s.bytes+int64(len(s.buf)) > s.maxBytes {
		return fmt.Errorf("sink spool: %d records of %d bytes: %w", len(recs), len(s.buf), ErrSpoolFull)
	}
	return nil
}

func (s *spool) newSegment(num uint64) (*segment, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, segName(num)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sink spool: %w", err)
	}
	return &segment{num: num, f: f}, nil
}

func (seg *segment) write(b []byte, n int) error {
	if _, err := seg.f.WriteAt(b, seg.size); err != nil {
		// A short write leaves a torn tail that the next open cuts off;
		// the size we count stays at the last whole frame.
		return fmt.Errorf("sink spool write: %w", err)
	}
	seg.size += int64(len(b))
	seg.records += n
	seg.dirty = true
	return nil
}

// append adds recs after every record in the spool, all or none.
func (s *spool) append(recs []Record) error {
	if err := s.encode(recs); err != nil {
		return err
	}
	if len(s.segs) == 0 || s.segs[len(s.segs)-1].size >= s.segBytes {
		num := uint64(firstSegment)
		if len(s.segs) > 0 {
			num = s.segs[len(s.segs)-1].num + 1
		}
		seg, err := s.newSegment(num)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		if len(s.segs) == 1 {
			if err := s.writeHead(); err != nil {
				return err
			}
		}
	}
	if err := s.segs[len(s.segs)-1].write(s.buf, len(recs)); err != nil {
		return err
	}
	s.bytes += int64(len(s.buf))
	s.records += len(recs)
	return nil
}

// prepend puts recs before every record in the spool, all or none, and
// fsyncs them: they are records the caller is about to forget.
func (s *spool) prepend(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	// The pipeline only prepends its memory queue, which holds records
	// older than the whole spool; so the spool's front is still unread
	// and the head file needs only the new front segment.
	if len(s.segs) > 0 && s.segs[0].read > 0 {
		return fmt.Errorf("sink spool: prepend before a partly delivered segment")
	}
	if err := s.encode(recs); err != nil {
		return err
	}
	num := uint64(firstSegment)
	if len(s.segs) > 0 {
		num = s.segs[0].num - 1
	}
	seg, err := s.newSegment(num)
	if err == nil {
		err = seg.write(s.buf, len(recs))
	}
	if err == nil {
		err = seg.f.Sync()
	}
	if err != nil {
		if seg != nil {
			seg.f.Close()
			os.Remove(seg.f.Name())
		}
		return err
	}
	seg.dirty = false
	s.segs = append([]*segment{seg}, s.segs...)
	s.bytes += int64(len(s.buf))
	s.records += len(recs)
	return s.writeHead()
}

// peekChunk is how much of the front segment peek reads at a time.
const peekChunk = 256 << 10

// peek reads up to max records from the front of the spool without
// removing them, and the bytes they take.
func (s *spool) peek(max int) ([]Record, int64, error) {
	f, off, left := s.front()
	return readFrames(f, off, left, max)
}

// front returns the front segment's file and its unread range, for
// readFrames. Only the pipeline's worker removes segments, so the worker
// may read the range after it lets go of the pipeline's mutex.
func (s *spool) front() (f *os.File, off, left int64) {
	if len(s.segs) == 0 {
		return nil, 0, 0
	}
	seg := s.segs[0]
	return seg.f, seg.read, seg.size - seg.read
}

// readFrames reads up to max records from f's range [off, off+left). It
// reads at most peekChunk bytes, or one whole frame when a frame is larger.
func readFrames(f *os.File, off, left int64, max int) ([]Record, int64, error) {
	if f == nil || left == 0 {
		return nil, 0, nil
	}
	want := min(left, peekChunk)
	var hdr [frameHeader]byte
	if left >= frameHeader {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return nil, 0, fmt.Errorf("sink spool read: %w", err)
		}
		if first := int64(binary.BigEndian.Uint32(hdr[:])) + frameHeader; first > want {
			want = min(left, first)
		}
	}
	b := make([]byte, want)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, 0, fmt.Errorf("sink spool read: %w", err)
	}
	recs, n, err := DecodeFrames(b, max)
	if err != nil && len(recs) == 0 {
		return nil, 0, fmt.Errorf("sink spool read %s: %w", f.Name(), err)
	}
	return recs, int64(n), nil
}

// ack removes n records taking nbytes from the front of the spool: the
// records peek returned and the sink accepted.
func (s *spool) ack(n int, nbytes int64) error {
	seg := s.segs[0]
	seg.read += nbytes
	seg.records -= n
	s.bytes -= nbytes
	s.records -= n
	if seg.read < seg.size {
		return s.writeHead()
	}
	s.segs = s.segs[1:]
	if err := s.writeHead(); err != nil {
		return err
	}
	seg.f.Close()
	if err := os.Remove(seg.f.Name()); err != nil {
		return fmt.Errorf("sink spool: %w", err)
	}
	return nil
}

// sync fsyncs the segments written since the last sync.
func (s *spool) sync() error {
	var first error
	for _, seg := range s.segs {
		if seg.dirty {
			if err := seg.f.Sync(); err != nil && first == nil {
				first = fmt.Errorf("sink spool sync: %w", err)
			}
			seg.dirty = false
		}
	}
	return first
}

// close syncs and closes every segment, and lets go of the directory.
func (s *spool) close() error {
	err := s.sync()
	for _, seg := range s.segs {
		seg.f.Close()
	}
	s.segs = nil
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return err
}
