//go:build !unix

package sink

import "os"

// lockDir does not lock on systems without flock; keep one pipeline per
// SpoolDir by configuration there.
func lockDir(string) (*os.File, error) { return nil, nil }
