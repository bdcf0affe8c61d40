package main

import (
	"io"
	"os"
)

// colors paints text only when the output is a terminal that wants colour.
type colors struct{ on bool }

func newColors(w io.Writer) colors {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return colors{}
	}
	fi, err := f.Stat()
	return colors{on: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (c colors) paint(code, s string) string {
	if !c.on {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

func (c colors) bold(s string) string  { return c.paint("1", s) }
func (c colors) dim(s string) string   { return c.paint("2", s) }
func (c colors) red(s string) string   { return c.paint("31", s) }
func (c colors) green(s string) string { return c.paint("32", s) }
