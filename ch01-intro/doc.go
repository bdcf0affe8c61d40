// Package intro is chapter 1 of the Floodgate workbook: the ingestion
// server, and what goroutines cost.
//
// The chapter's labs live in the numbered folders beside this file, one
// package per lab; see README.md for the map.
package intro
