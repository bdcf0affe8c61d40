// Package concurrency is chapter 2 of the Floodgate workbook: Goroutines and GMP, channels, select, sync, errgroup.
//
// The chapter's labs live in the numbered folders beside this file, one
// package per lab; see README.md for the map.
package concurrency
