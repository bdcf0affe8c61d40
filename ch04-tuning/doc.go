// Package tuning is chapter 4 of the Floodgate workbook: Go's GC, pools, pprof, rate limiters, circuit breakers.
//
// The chapter's labs live in the numbered folders beside this file, one
// package per lab; see README.md for the map.
package tuning
