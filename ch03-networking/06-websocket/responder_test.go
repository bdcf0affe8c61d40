package websocket

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// respond is a test-only MQTT 3.1.1 responder, just enough for a paho client:
// CONNECT gets CONNACK accepted, SUBSCRIBE gets a SUBACK granting QoS 0,
// PINGREQ gets PINGRESP, a QoS 0 PUBLISH is echoed back as it came, and
// DISCONNECT ends the connection. It is not a broker (lab 05 builds one),
// and it parses bytes by hand on purpose: under plain `go test` the
// chapter's codec is the reader's unfinished stub, and this lab's tests must
// not fail because of another lab.
//
// It returns nil at DISCONNECT or a clean end of stream, and an error for
// anything it does not handle.
func respond(conn net.Conn) error {
	r := bufio.NewReader(conn)
	for {
		first, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := readRemainingLength(r)
		if err != nil {
			return err
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		var reply []byte
		switch first >> 4 {
		case 1: // CONNECT
			reply = []byte{0x20, 0x02, 0x00, 0x00}
		case 3: // PUBLISH
			if qos := first >> 1 & 3; qos != 0 {
				return fmt.Errorf("responder: PUBLISH QoS %d not handled", qos)
			}
			reply = append([]byte{first}, appendRemainingLength(nil, n)...)
			reply = append(reply, body...)
		case 8: // SUBSCRIBE: packet id, then (filter, options) pairs
			if len(body) < 2 {
				return errors.New("responder: short SUBSCRIBE")
			}
			var granted []byte
			for rest := body[2:]; len(rest) > 0; {
				if len(rest) < 2 {
					return errors.New("responder: short SUBSCRIBE filter")
				}
				l := int(binary.BigEndian.Uint16(rest)) + 3
				if len(rest) < l {
					return errors.New("responder: short SUBSCRIBE filter")
				}
				granted = append(granted, 0x00)
				rest = rest[l:]
			}
			reply = append([]byte{0x90}, appendRemainingLength(nil, 2+len(granted))...)
			reply = append(reply, body[0], body[1])
			reply = append(reply, granted...)
		case 12: // PINGREQ
			reply = []byte{0xD0, 0x00}
		case 14: // DISCONNECT
			return nil
		default:
			return fmt.Errorf("responder: packet type %d not handled", first>>4)
		}
		if _, err := conn.Write(reply); err != nil {
			return err
		}
	}
}

func readRemainingLength(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			if n > 1<<20 {
				return 0, fmt.Errorf("responder: packet of %d bytes too large", n)
			}
			return n, nil
		}
		shift += 7
	}
	return 0, errors.New("responder: remaining length longer than 4 bytes")
}

func appendRemainingLength(dst []byte, n int) []byte {
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if n == 0 {
			return dst
		}
	}
}
