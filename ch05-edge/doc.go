// Package edge is chapter 5 of the Floodgate workbook: Cross-compiling, hot reload, gRPC, store-and-forward, WASM plugins.
//
// The chapter's labs live in the numbered folders beside this file, one
// package per lab; see README.md for the map.
package edge
