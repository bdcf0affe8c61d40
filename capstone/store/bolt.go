package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Options configure Open. The zero value is the safe default.
type Options struct {
	// NoSync skips the fsync at each commit: faster, and a power loss may
	// lose the last commits (a process crash does not). Default false.
	NoSync bool
	// GroupCommit commits concurrent writes together (bbolt's DB.Batch):
	// one fsync for many callers, each of which still returns only after
	// its write is durable. A lone writer waits up to BatchDelay longer.
	// Default false.
	GroupCommit bool
	// BatchDelay is how long a group commit waits for more writers.
	// Default 2ms; only with GroupCommit.
	BatchDelay time.Duration
	// Timeout is how long Open waits for another process's lock on the
	// file. Default 1s.
	Timeout time.Duration
}

// Bolt is the bbolt Store: one file, buckets "sessions", "retained" and
// "inflight" (one nested bucket per client). Every write is one bbolt
// transaction, committed and (unless NoSync) fsynced before the method
// returns. Values are JSON. It is safe for concurrent use; bbolt serialises
// writers.
type Bolt struct {
	db     *bolt.DB
	update func(fn func(*bolt.Tx) error) error // db.Update, or db.Batch with GroupCommit
}

var _ Store = (*Bolt)(nil)

var (
	bucketSessions = []byte("sessions")
	bucketRetained = []byte("retained")
	bucketInFlight = []byte("inflight")
)

// Open opens (creating if needed) the bbolt store at path.
func Open(path string, opts Options) (*Bolt, error) {
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		return nil, fmt.Errorf("store open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketRetained, bucketInFlight} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store open %s: %w", path, err)
	}
	b := &Bolt{db: db, update: db.Update}
	if opts.GroupCommit {
		if opts.BatchDelay <= 0 {
			opts.BatchDelay = 2 * time.Millisecond
		}
		db.MaxBatchDelay = opts.BatchDelay
		b.update = db.Batch // every write below may run twice: each is idempotent
	}
	return b, nil
}

// wrap names the operation and maps bbolt's closed error to ErrClosed.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return fmt.Errorf("store %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("store %s: %w", op, err)
}

func decode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// SaveSession implements Store.
func (s *Bolt) SaveSession(sess Session) error {
	return s.write("save session", Change{Op: OpSaveSession, Session: sess})
}

// write makes one change in its own transaction.
func (s *Bolt) write(op string, c Change) error {
	if err := c.check(); err != nil {
		return err
	}
	return wrap(op, s.update(func(tx *bolt.Tx) error { return applyTx(tx, c) }))
}

// Apply implements Store: one transaction, one commit.
func (s *Bolt) Apply(cs []Change) error {
	for _, c := range cs {
		if err := c.check(); err != nil {
			return err
		}
	}
	return wrap("apply", s.db.Update(func(tx *bolt.Tx) error {
		for _, c := range cs {
			if err := applyTx(tx, c); err != nil {
				return err
			}
		}
		return nil
	}))
}

// applyTx makes c in tx. It is idempotent (db.Batch may run it twice).
func applyTx(tx *bolt.Tx, c Change) error {
	switch c.Op {
	case OpSaveSession:
		v, err := json.Marshal(c.Session)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSessions).Put([]byte(c.Session.ClientID), v)
	case OpDeleteSession:
		if err := tx.Bucket(bucketSessions).Delete([]byte(c.ClientID)); err != nil {
			return err
		}
		err := tx.Bucket(bucketInFlight).DeleteBucket([]byte(c.ClientID))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	case OpSetRetained:
		if len(c.Message.Payload) == 0 {
			return tx.Bucket(bucketRetained).Delete([]byte(c.Message.Topic))
		}
		v, err := json.Marshal(c.Message)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRetained).Put([]byte(c.Message.Topic), v)
	case OpPutInFlight:
		return putFlightTx(tx, c.InFlight)
	case OpDeleteInFlight:
		f := c.InFlight
		b := tx.Bucket(bucketInFlight).Bucket([]byte(f.ClientID))
		if b == nil {
			return nil
		}
		return b.Delete(boltFlightKey(f.Direction, f.PacketID))
	}
	return fmt.Errorf("op %d: %w", c.Op, ErrInvalid)
}

// LoadSession implements Store.
func (s *Bolt) LoadSession(clientID string) (Session, error) {
	var sess Session
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(clientID))
		if v == nil {
			return ErrNotFound
		}
		return decode(v, &sess)
	})
	return sess, wrap(fmt.Sprintf("load session %q", clientID), err)
}

// DeleteSession implements Store.
func (s *Bolt) DeleteSession(clientID string) error {
	if clientID == "" {
		return nil // nothing is stored under it
	}
	return s.write("delete session", Change{Op: OpDeleteSession, ClientID: clientID})
}

// Sessions implements Store.
func (s *Bolt) Sessions() ([]Session, error) {
	var out []Session
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(_, v []byte) error {
			var sess Session
			if err := decode(v, &sess); err != nil {
				return err
			}
			out = append(out, sess)
			return nil
		})
	})
	return out, wrap("sessions", err)
}

// SetRetained implements Store.
func (s *Bolt) SetRetained(m Message) error {
	return s.write("set retained", Change{Op: OpSetRetained, Message: m})
}

// Retained implements Store.
func (s *Bolt) Retained() ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).ForEach(func(_, v []byte) error {
			var m Message
			if err := decode(v, &m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	return out, wrap("retained", err)
}

// flightKey is direction (1 byte) then packet identifier (2 bytes, big
// endian). A value is the sequence number (8 bytes) then the JSON.
func boltFlightKey(dir Direction, id uint16) []byte {
	return []byte{byte(dir), byte(id >> 8), byte(id)}
}

// PutInFlight implements Store.
func (s *Bolt) PutInFlight(f InFlight) error {
	return s.write("put in-flight", Change{Op: OpPutInFlight, InFlight: f})
}

func putFlightTx(tx *bolt.Tx, f InFlight) error {
	j, err := json.Marshal(f)
	if err != nil {
		return err
	}
	b, err := tx.Bucket(bucketInFlight).CreateBucketIfNotExists([]byte(f.ClientID))
	if err != nil {
		return err
	}
	k := boltFlightKey(f.Direction, f.PacketID)
	var seq uint64
	if old := b.Get(k); len(old) >= 8 {
		seq = binary.BigEndian.Uint64(old) // an update keeps its place
	} else if seq, err = b.NextSequence(); err != nil {
		return err
	}
	v := make([]byte, 8+len(j))
	binary.BigEndian.PutUint64(v, seq)
	copy(v[8:], j)
	return b.Put(k, v)
}

// DeleteInFlight implements Store.
func (s *Bolt) DeleteInFlight(clientID string, dir Direction, packetID uint16) error {
	if clientID == "" {
		return nil
	}
	return s.write("delete in-flight", Change{Op: OpDeleteInFlight,
		InFlight: InFlight{ClientID: clientID, Direction: dir, PacketID: packetID}})
}

// InFlight implements Store.
func (s *Bolt) InFlight(clientID string) ([]InFlight, error) {
	type seqFlight struct {
		seq uint64
		f   InFlight
	}
	var fs []seqFlight
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInFlight).Bucket([]byte(clientID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			if len(v) < 8 {
				return ErrCorrupt
			}
			var f InFlight
			if err := decode(v[8:], &f); err != nil {
				return err
			}
			fs = append(fs, seqFlight{binary.BigEndian.Uint64(v), f})
			return nil
		})
	})
	if err != nil {
		return nil, wrap("in-flight", err)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].seq < fs[j].seq })
	out := make([]InFlight, len(fs))
	for i, f := range fs {
		out[i] = f.f
	}
	return out, nil
}

// Close implements Store. It returns ErrClosed (wrapped) when called twice.
func (s *Bolt) Close() error {
	if s.db.Path() == "" { // bbolt clears the path on close
		return fmt.Errorf("store close: %w", ErrClosed)
	}
	return wrap("close", s.db.Close())
}
