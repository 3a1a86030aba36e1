// Package testlog holds what crmkit's tests share for reading output that
// other goroutines or processes write.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer collects what many goroutines write (a logger's output, a child
// process's stdout) for a test to read while they go on. The zero value is
// ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String answers everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
