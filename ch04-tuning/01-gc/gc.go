//go:build !floodgate.solution

package gc

// Parse parses "device,metric,value,unix-ms" (a trailing "\r" or spaces
// are allowed) without allocating: r.Device shares line's memory. It
// returns an error wrapping ErrSyntax for anything else.
func Parse(line []byte) (Reading, error) {
	// TODO: Task 1. Cut the line at its commas with bytes.IndexByte (or
	// bytes.Cut), match the metric name, and hand the number fields to
	// strconv as string(b) where the conversion does not escape.
	return Reading{}, ErrSyntax
}

// Add folds r into its device's stats. For a device it has seen before it
// allocates nothing; for a new one it copies the name once.
func (a *Aggregator) Add(r Reading) {
	// TODO: Task 2. Look the device up with a.devices[string(r.Device)],
	// keep *Stats in the map so an update needs no store, and create the
	// map and the entry only when missing.
}
