package workbook

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// HintLog remembers how many hints of each task a reader has seen, so that
// `wb hint` gives the next one. It is the only state wb keeps, and losing it
// costs nothing but seeing a hint again.
type HintLog struct {
	Path string // a JSON file; see DefaultHintLog
}

// DefaultHintLog keeps the log in the user's cache folder.
func DefaultHintLog() (HintLog, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return HintLog{}, err
	}
	return HintLog{Path: filepath.Join(dir, "floodgate", "hints.json")}, nil
}

func (h HintLog) load() (map[string]int, error) {
	m := map[string]int{}
	b, err := os.ReadFile(h.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if json.Unmarshal(b, &m) != nil {
		return map[string]int{}, nil // a damaged log only means hints start over
	}
	return m, nil
}

// Seen returns how many hints of key the reader has seen.
func (h HintLog) Seen(key string) (int, error) {
	m, err := h.load()
	return m[key], err
}

// Set records that n hints of key have been seen.
func (h HintLog) Set(key string, n int) error {
	m, err := h.load()
	if err != nil {
		return err
	}
	if n == 0 {
		delete(m, key)
	} else {
		m[key] = n
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.MkdirAll(filepath.Dir(h.Path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(h.Path, b, 0o644)
}
