package multiplex_test

import (
	"fmt"
	"time"

	"floodgate/ch02-concurrency/03-multiplex"
)

// A device that promised a 60-second keepalive is dropped after 90
// seconds of silence; a keepalive of zero means no watchdog at all.
func ExampleGrace() {
	fmt.Println(multiplex.Grace(60 * time.Second))
	fmt.Println(multiplex.Grace(0))
	// Output:
	// 1m30s
	// 0s
}
