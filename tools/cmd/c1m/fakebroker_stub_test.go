//go:build linux && !floodgate.solution

package main

// fakeBroker needs the reference codec's build (the load generator does).
func fakeBroker([]string) int { return 2 }
