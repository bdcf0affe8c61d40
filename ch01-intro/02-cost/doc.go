// Package cost measures what a goroutine costs, and what an OS thread
// costs, on the machine it runs on. It is an experiment: run
// `go run ./ch01-intro/02-cost/cmd/cost` and read the table.
//
// A goroutine's cost is its stack (it starts at 2 KiB and grows by copying)
// plus its descriptor, the runtime's g struct, all from the Go heap. An OS
// thread's cost is its user stack (a virtual reservation, resident only
// where touched), its kernel stack, and the runtime's m struct and g0 stack
// when Go created it.
package cost
