package topics

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// checkString applies the rules every MQTT topic string obeys, name or
// filter: not empty [MQTT-4.7.3-1], at most 65,535 bytes [MQTT-4.7.3-3],
// well-formed UTF-8 [MQTT-1.5.3-1] and no U+0000 [MQTT-4.7.3-2].
func checkString(op, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s: %w", op, ErrEmpty)
	case len(s) > MaxTopicLen:
		return fmt.Errorf("%s: %d bytes: %w", op, len(s), ErrTooLong)
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s %q: %w", op, s, ErrBadUTF8)
	}
	return nil
}

// nextLevel splits s at its first '/': level is the text before it and rest
// the text after it. last reports that s had no '/', so level is the final
// level. It allocates nothing.
func nextLevel(s string) (level, rest string, last bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], false
	}
	return s, "", true
}
