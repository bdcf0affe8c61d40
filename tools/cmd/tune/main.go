// Command tune reports the limits of this machine that cap how many TCP
// connections one server process can hold, the count each allows, and how to
// raise each one.
//
//	go run floodgate/tools/cmd/tune                 the table
//	go run floodgate/tools/cmd/tune --json          the same, as JSON
//	go run floodgate/tools/cmd/tune --bytes-per-conn 4096 --target 1000000
//	sudo tune --apply [--restore-file F]            raise the sysctls, save the old values to F
//	sudo tune --restore F                           write the saved values back
//
// --apply changes only kernel settings (sysctls) that are short of the
// target, never lowers one, and saves the old values first. It does not
// change RLIMIT_NOFILE, which belongs to a process: the table says how.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"text/tabwriter"
	"time"

	"floodgate/tools/internal/limits"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Geteuid()))
}

// output is the JSON form: the report and the runtime's view of the CPUs.
type output struct {
	limits.Report
	GOMAXPROCS int `json:"gomaxprocs"`
	NumCPU     int `json:"num_cpu"`
}

func run(args []string, stdout, stderr io.Writer, euid int) int {
	fl := flag.NewFlagSet("tune", flag.ContinueOnError)
	fl.SetOutput(stderr)
	asJSON := fl.Bool("json", false, "print JSON instead of a table")
	bpc := fl.Int64("bytes-per-conn", limits.DefaultBytesPerConn, "memory one connection costs, user space and kernel, for the memory estimate")
	target := fl.Int64("target", limits.DefaultTarget, "connection count to plan for")
	apply := fl.Bool("apply", false, "raise the sysctls that are short of --target (root only)")
	restoreFile := fl.String("restore-file", "", "where --apply saves the old values (default tune-restore-TIME.json)")
	restore := fl.String("restore", "", "write back the values saved in this file by --apply (root only)")
	root := fl.String("root", "/", "read and write /proc under this directory (for tests)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: tune [--json] [--bytes-per-conn N] [--target N] [--apply [--restore-file F] | --restore F]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 || (*apply && *restore != "") || *bpc <= 0 || *target <= 0 {
		fl.Usage()
		return 2
	}
	opt := limits.Options{BytesPerConn: *bpc, Target: *target}

	switch {
	case *restore != "":
		changes, err := limits.Restore(*root, *restore, euid)
		printChanges(stdout, "restored", changes)
		return fail(stderr, err)
	case *apply:
		path := *restoreFile
		if path == "" {
			path = "tune-restore-" + time.Now().UTC().Format("20060102T150405Z") + ".json"
		}
		changes, err := limits.Apply(*root, opt, euid, path)
		if err == nil || len(changes) > 0 {
			printChanges(stdout, "applied", changes)
			fmt.Fprintf(stdout, "old values saved in %s: undo with `tune --restore %s`\n", path, path)
		}
		return fail(stderr, err)
	}

	r, err := limits.Read(*root, opt)
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(output{r, runtime.GOMAXPROCS(0), runtime.NumCPU()}); err != nil {
			return fail(stderr, err)
		}
		return 0
	}
	printReport(stdout, r)
	return 0
}

func fail(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "tune:", err)
	if errors.Is(err, limits.ErrNotRoot) {
		fmt.Fprintln(stderr, "tune: run it as root (sudo)")
	}
	return 1
}

func printReport(w io.Writer, r limits.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "LIMIT\tVALUE\tCONNECTIONS\tAPPLIES TO\tFOR %s\n", group(r.Target))
	for _, l := range r.Limits {
		caps := "-"
		if l.Caps != limits.Unlimited {
			caps = group(l.Caps)
		}
		value, suggest := l.Value, l.Suggest
		if l.Err != "" {
			value = "?"
		}
		if suggest == "" {
			suggest = "ok"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Name, value, caps, l.Scope, suggest)
	}
	tw.Flush()

	fmt.Fprintln(w)
	if r.Bottleneck != "" {
		fmt.Fprintf(w, "One server process here can hold about %s connections; the first limit it meets is %s.\n",
			group(r.MaxConns), r.Bottleneck)
	}
	fmt.Fprintf(w, "Memory is estimated at %s B per connection (--bytes-per-conn).\n", group(r.BytesPerConn))
	fmt.Fprintf(w, "GOMAXPROCS is %d on %d CPUs: Go's default already matches the cores; setting it changes nothing.\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU())

	fmt.Fprintln(w, "\nHow to raise each:")
	for _, l := range r.Limits {
		fmt.Fprintf(w, "  %s: %s\n", l.Name, l.Raise)
		if l.Err != "" {
			fmt.Fprintf(w, "    (could not read it: %s)\n", l.Err)
		}
	}
}

func printChanges(w io.Writer, verb string, changes []limits.Change) {
	if len(changes) == 0 {
		fmt.Fprintf(w, "nothing to change: every sysctl is already at or above the target\n")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSCTL\tWAS\tNOW\tRESULT")
	for _, c := range changes {
		res := verb
		if c.Err != "" {
			res = "FAILED: " + c.Err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Key, c.Old, c.New, res)
	}
	tw.Flush()
}

// group is limits.Group, the tools' one way to print counts.
var group = limits.Group
