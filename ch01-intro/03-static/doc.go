// Package static is an experiment: it builds lab 01's server as a static,
// stripped binary for several settings, checks that it needs no dynamic
// loader, and measures its size and how long it takes from exec to
// accepting connections.
//
// Run `go test -tags floodgate.solution -v -run TestReport ./ch01-intro/03-static/`
// for the table, and see README.md.
package static
