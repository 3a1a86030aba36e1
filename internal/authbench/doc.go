// Package authbench holds benchmarks of the API key and rate limit
// middleware chain in front of a trivial handler, to compare with the bare
// handler. It has no code of its own.
package authbench
