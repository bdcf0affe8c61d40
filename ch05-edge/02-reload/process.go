package reload

import "context"

// Message is one reading to process.
type Message struct {
	Seq   uint64
	Value float64
}

// Result is a processed Message, stamped with the version that processed
// it.
type Result struct {
	Seq      uint64
	Version  int
	Scale    float64 // the Scale of that same version
	Value    float64 // Message.Value * Scale
	MaxBatch int
}

// Process reads messages from in until in is closed or ctx ends, and
// sends one Result per message to out. It loads the configuration once per
// message, so reloads never stop it, and each message sees exactly one
// version. It returns nil when in is closed, ctx.Err() otherwise.
func Process(ctx context.Context, h *Holder, in <-chan Message, out chan<- Result) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-in:
			if !ok {
				return nil
			}
			cfg := h.Load() // one snapshot for the whole message
			r := Result{Seq: m.Seq, Version: cfg.Version, Scale: cfg.Scale,
				Value: m.Value * cfg.Scale, MaxBatch: cfg.MaxBatch}
			select {
			case out <- r:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}
