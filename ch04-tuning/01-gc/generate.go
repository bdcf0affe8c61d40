package gc

import (
	"io"
	"strconv"
)

// Lines is an io.Reader of n synthetic readings from devices devices,
// "sensor-NNNNNN,metric,value,unix-ms\n", the same every time. It
// allocates nothing per line, so it does not disturb what it measures.
type Lines struct {
	N, Devices int
	i          int
	pending    []byte
	buf        [64]byte
}

// Read fills p with whole lines, and returns io.EOF after the last one.
func (l *Lines) Read(p []byte) (int, error) {
	n := 0
	for {
		if len(l.pending) > 0 {
			c := copy(p[n:], l.pending)
			l.pending = l.pending[c:]
			n += c
			if len(l.pending) > 0 {
				return n, nil
			}
		}
		if l.i >= l.N {
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		if n == len(p) {
			return n, nil
		}
		l.pending = l.line(l.i)
		l.i++
	}
}

// line formats reading i into l.buf.
func (l *Lines) line(i int) []byte {
	dev := (i * 7919) % max(l.Devices, 1) // spread the devices around
	b := append(l.buf[:0], "sensor-"...)
	b = appendPadded(b, dev, 6)
	b = append(b, ',')
	b = append(b, metricNames[i%int(numMetrics)]...)
	b = append(b, ',')
	b = strconv.AppendFloat(b, float64(i%4000)/100, 'f', 2, 64)
	b = append(b, ',')
	b = strconv.AppendInt(b, 1_764_000_000_000+int64(i), 10)
	return append(b, '\n')
}

func appendPadded(b []byte, v, width int) []byte {
	var d [20]byte
	s := strconv.AppendInt(d[:0], int64(v), 10)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}
