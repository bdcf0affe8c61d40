//go:build !unix

package main

func openFiles() (uint64, bool) { return 0, false }
