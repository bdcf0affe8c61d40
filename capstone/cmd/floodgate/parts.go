package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	topics "floodgate/ch03-networking/04-topics"
	auth "floodgate/ch03-networking/07-auth"
	ratelimit "floodgate/ch04-tuning/04-ratelimit"
)

// A part the broker is built from, and whether it works.
type partProblem struct {
	lab   string
	fatal bool // the broker cannot serve a single client without it
	err   string
}

func (p partProblem) String() string {
	return fmt.Sprintf("%s does not work yet: %s", p.lab, p.err)
}

// checkParts tries each chapter part the broker runs on. Built with the
// reference solutions they all work; with `make capstone MINE=1` they are
// the reader's own, and this says which lab to finish first.
func checkParts() []partProblem {
	var out []partProblem
	add := func(lab string, fatal bool, format string, args ...any) {
		out = append(out, partProblem{lab, fatal, fmt.Sprintf(format, args...)})
	}
	buf, err := (&mqtt.Connect{Version: mqtt.V311, ClientID: "x"}).AppendTo(nil, mqtt.V311)
	if err == nil {
		_, err = mqtt.NewReader(bytes.NewReader(buf), mqtt.Config{}).ReadPacket()
	}
	if err != nil {
		add("ch03-networking/03-mqtt", true, "cannot encode and read back a CONNECT (%v)", err)
	}
	var tr topics.Trie[string, int]
	if _, err := tr.Subscribe("a/+", "k", 1); err != nil || len(tr.Match("a/b", nil)) != 1 {
		add("ch03-networking/04-topics", true, "the trie does not match a/+ against a/b (%v)", err)
	}
	if b, err := ratelimit.NewBucket(1, 1); err != nil || !b.Allow(time.Now()) {
		add("ch04-tuning/04-ratelimit", false, "a full token bucket refuses (-accept-rate will refuse everyone)")
	}
	var tat atomic.Int64
	if g, err := ratelimit.NewGCRA(1, 1); err != nil || !g.Allow(&tat, time.Now()) {
		add("ch04-tuning/04-ratelimit", false, "a fresh GCRA refuses (-publish-rate and -byte-rate will disconnect every publisher)")
	}
	acl, err := auth.ParseACL(strings.NewReader("read a/#\n"))
	if err != nil || !acl.Allow("c", "u", "a/b", auth.Read) {
		add("ch03-networking/07-auth", false, "the ACL does not allow read a/# on a/b (-acl and -passwords will refuse)")
	}
	return out
}
