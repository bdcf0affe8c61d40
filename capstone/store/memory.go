package store

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Memory is a Store held in memory, for tests and for a broker that needs
// no persistence. Its zero value is not usable; call NewMemory.
type Memory struct {
	mu       sync.Mutex // guards every field below
	closed   bool
	sessions map[string]Session
	retained map[string]Message
	flights  map[flightKey]memFlight
	seq      uint64 // last sequence handed to an in-flight message
}

type flightKey struct {
	client string
	dir    Direction
	id     uint16
}

type memFlight struct {
	seq uint64
	f   InFlight
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		sessions: make(map[string]Session),
		retained: make(map[string]Message),
		flights:  make(map[flightKey]memFlight),
	}
}

var _ Store = (*Memory)(nil)

func (m *Memory) lock(op string) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("store %s: %w", op, ErrClosed)
	}
	return nil
}

// SaveSession implements Store.
func (m *Memory) SaveSession(s Session) error {
	if s.ClientID == "" {
		return fmt.Errorf("store save session: empty client id: %w", ErrInvalid)
	}
	if err := m.lock("save session"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.sessions[s.ClientID] = cloneSession(s)
	return nil
}

// LoadSession implements Store.
func (m *Memory) LoadSession(clientID string) (Session, error) {
	if err := m.lock("load session"); err != nil {
		return Session{}, err
	}
	defer m.mu.Unlock()
	s, ok := m.sessions[clientID]
	if !ok {
		return Session{}, fmt.Errorf("store load session %q: %w", clientID, ErrNotFound)
	}
	return cloneSession(s), nil
}

// DeleteSession implements Store.
func (m *Memory) DeleteSession(clientID string) error {
	if err := m.lock("delete session"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.deleteSessionLocked(clientID)
	return nil
}

func (m *Memory) deleteSessionLocked(clientID string) {
	delete(m.sessions, clientID)
	for k := range m.flights {
		if k.client == clientID {
			delete(m.flights, k)
		}
	}
}

// Sessions implements Store.
func (m *Memory) Sessions() ([]Session, error) {
	if err := m.lock("sessions"); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, cloneSession(s))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out, nil
}

// SetRetained implements Store.
func (m *Memory) SetRetained(msg Message) error {
	if msg.Topic == "" {
		return fmt.Errorf("store set retained: empty topic: %w", ErrInvalid)
	}
	if err := m.lock("set retained"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.setRetainedLocked(msg)
	return nil
}

func (m *Memory) setRetainedLocked(msg Message) {
	if len(msg.Payload) == 0 {
		delete(m.retained, msg.Topic)
		return
	}
	m.retained[msg.Topic] = cloneMessage(msg)
}

// Retained implements Store.
func (m *Memory) Retained() ([]Message, error) {
	if err := m.lock("retained"); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]Message, 0, len(m.retained))
	for _, msg := range m.retained {
		out = append(out, cloneMessage(msg))
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].Topic, out[j].Topic) < 0 })
	return out, nil
}

// PutInFlight implements Store.
func (m *Memory) PutInFlight(f InFlight) error {
	if err := validFlight(f); err != nil {
		return err
	}
	if err := m.lock("put in-flight"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.putFlightLocked(f)
	return nil
}

func (m *Memory) putFlightLocked(f InFlight) {
	k := flightKey{f.ClientID, f.Direction, f.PacketID}
	old, ok := m.flights[k]
	seq := old.seq
	if !ok {
		m.seq++
		seq = m.seq
	}
	f.Message = cloneMessage(f.Message)
	m.flights[k] = memFlight{seq: seq, f: f}
}

// DeleteInFlight implements Store.
func (m *Memory) DeleteInFlight(clientID string, dir Direction, packetID uint16) error {
	if err := m.lock("delete in-flight"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.flights, flightKey{clientID, dir, packetID})
	return nil
}

// InFlight implements Store.
func (m *Memory) InFlight(clientID string) ([]InFlight, error) {
	if err := m.lock("in-flight"); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var fs []memFlight
	for k, f := range m.flights {
		if k.client == clientID {
			fs = append(fs, f)
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].seq < fs[j].seq })
	out := make([]InFlight, len(fs))
	for i, f := range fs {
		out[i] = f.f
		out[i].Message = cloneMessage(f.f.Message)
	}
	return out, nil
}

// Apply implements Store: the changes are made together, under one lock.
func (m *Memory) Apply(cs []Change) error {
	for _, c := range cs {
		if err := c.check(); err != nil {
			return err
		}
	}
	if err := m.lock("apply"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for _, c := range cs {
		switch c.Op {
		case OpSaveSession:
			m.sessions[c.Session.ClientID] = cloneSession(c.Session)
		case OpDeleteSession:
			m.deleteSessionLocked(c.ClientID)
		case OpSetRetained:
			m.setRetainedLocked(c.Message)
		case OpPutInFlight:
			m.putFlightLocked(c.InFlight)
		case OpDeleteInFlight:
			delete(m.flights, flightKey{c.InFlight.ClientID, c.InFlight.Direction, c.InFlight.PacketID})
		}
	}
	return nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("store close: %w", ErrClosed)
	}
	m.closed = true
	return nil
}

func validFlight(f InFlight) error {
	switch {
	case f.ClientID == "":
		return fmt.Errorf("store put in-flight: empty client id: %w", ErrInvalid)
	case f.PacketID == 0:
		return fmt.Errorf("store put in-flight: packet id 0: %w", ErrInvalid)
	case f.Direction != Outbound && f.Direction != Inbound:
		return fmt.Errorf("store put in-flight: direction %d: %w", f.Direction, ErrInvalid)
	}
	return nil
}

func cloneMessage(m Message) Message {
	m.Payload = slices.Clone(m.Payload)
	m.CorrelationData = slices.Clone(m.CorrelationData)
	m.UserProperties = slices.Clone(m.UserProperties)
	return m
}

func cloneSession(s Session) Session {
	s.Subscriptions = slices.Clone(s.Subscriptions)
	if s.Will != nil {
		w := *s.Will
		w.Message = cloneMessage(w.Message)
		s.Will = &w
	}
	return s
}
