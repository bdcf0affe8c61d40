//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"floodgate/tools/internal/brokerproc"
)

// buildBroker builds capstone/cmd/floodgate with the solution tag into dir
// and returns the binary's path and what it was built from. With rev, the
// source is that git revision (git archive into dir/src), not the working
// tree, which other people may be editing.
func buildBroker(ctx context.Context, dir, rev string) (exe, source string, err error) {
	root, err := brokerproc.Workspace(ctx)
	if err != nil {
		return "", "", fmt.Errorf("%w: give -broker-bin", err)
	}
	if rev == "" {
		head, _ := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
		source = "working tree at " + strings.TrimSpace(string(head))
	} else {
		full, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", rev+"^{commit}").Output()
		if err != nil {
			return "", "", fmt.Errorf("-broker-rev %s: not a commit of %s", rev, root)
		}
		src := filepath.Join(dir, "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			return "", "", err
		}
		defer os.RemoveAll(src) // only the binary is kept
		// git archive REV | tar -x -C src, without a shell.
		archive := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", rev)
		untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
		pipe, err := archive.StdoutPipe()
		if err != nil {
			return "", "", err
		}
		untar.Stdin = pipe
		if err := archive.Start(); err != nil {
			return "", "", fmt.Errorf("git archive %s: %w", rev, err)
		}
		terr := untar.Run()
		if aerr := archive.Wait(); aerr != nil || terr != nil {
			return "", "", fmt.Errorf("git archive %s | tar -x: %w", rev, errors.Join(aerr, terr))
		}
		root, source = src, "commit "+strings.TrimSpace(string(full))
	}
	exe = filepath.Join(dir, "floodgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "floodgate.solution", "-o", exe, "./capstone/cmd/floodgate")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./capstone/cmd/floodgate (%s): %w\n%s", source, err, b)
	}
	return exe, source, nil
}

// brokerArgv is the broker's command line: MQTT over TCP on addr only,
// the ops listener (metrics) on opsAddr, the epoll engine capped at
// maxConns (above RLIMIT_NOFILE the engine shards by itself), info logs
// (the engine's plan is an info line; there is no per-connection one).
func brokerArgv(exe, addr, opsAddr, engine string, maxConns int, extra []string) []string {
	argv := []string{exe, "-tcp", addr, "-ws", "off", "-ops", opsAddr,
		"-engine", engine, "-max-conns", strconv.Itoa(maxConns), "-log-level", "info"}
	return append(argv, extra...)
}

// broker is the broker process this program started.
type broker struct {
	proc    *brokerproc.Process
	addr    string
	opsAddr string
	logPath string
	log     *os.File
}

func (b *broker) pid() int { return b.proc.PID() }

// startBroker starts argv (with -tcp and -ops filled in by mk from two
// free ports), its output in logPath, and waits up to 30 s until it
// accepts TCP connections.
//
// The child runs in its own process group (a Ctrl-C on the terminal
// reaches this program only, which then stops it in order) and gets
// SIGKILL when this program dies, so it never outlives the driver (see
// brokerproc.Start).
func startBroker(ctx context.Context, logPath string, mk func(addr, opsAddr string) []string) (*broker, error) {
	port, err := brokerproc.FreePort()
	if err != nil {
		return nil, err
	}
	opsPort, err := brokerproc.FreePort()
	if err != nil {
		return nil, err
	}
	addr, opsAddr := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", opsPort)
	argv := mk(addr, opsAddr)
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	proc, err := brokerproc.Start(argv, log)
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("start broker: %w", err)
	}
	b := &broker{proc: proc, addr: addr, opsAddr: opsAddr, logPath: logPath, log: log}
	switch err := proc.WaitListening(ctx, addr, 30*time.Second); {
	case err == nil:
		return b, nil
	case errors.Is(err, brokerproc.ErrExited):
		log.Close()
		return nil, fmt.Errorf("broker exited before it listened (%v): see %s", proc.Err(), logPath)
	case errors.Is(err, brokerproc.ErrNotListening):
		b.stop(5 * time.Second)
		return nil, fmt.Errorf("broker did not listen on %s within 30 s: see %s", addr, logPath)
	default:
		b.stop(5 * time.Second)
		return nil, err
	}
}

// stop ends the broker: SIGTERM to its PID, and SIGKILL if it is still
// there after grace. It says whether the broker had exited by itself
// before (a crash during the run), and how it ended.
func (b *broker) stop(grace time.Duration) (string, error) {
	defer b.log.Close()
	switch b.proc.Stop(grace) {
	case brokerproc.AlreadyExited:
		return fmt.Sprintf("had exited by itself: %v", b.proc.Err()), errors.New("the broker exited during the run: see " + b.logPath)
	case brokerproc.Terminated:
		return fmt.Sprintf("stopped by SIGTERM (%v)", exitText(b.proc.Err())), nil
	default:
		return fmt.Sprintf("killed (SIGKILL) after %v of SIGTERM", grace), nil
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// logLine returns the first line of the broker's log that contains s, or "".
func logLine(path, s string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return sc.Text()
		}
	}
	return ""
}

// engineLine returns the broker's log line that describes its epoll
// engine's plan ("epoll engine: N loops ..."), or "".
func engineLine(logPath string) string { return logLine(logPath, `msg="epoll engine`) }

// sharded says whether the engine line says the loops have private fd
// tables (the sharded mode).
func sharded(line string) bool {
	return strings.Contains(line, "private_fds=true") || strings.Contains(line, "sharded")
}

// scrapeMetrics reads the broker's Prometheus text at
// http://opsAddr/metrics and returns the floodgate_* samples, each label
// set summed into its metric name (connections_closed_total over every
// reason, and so on).
func scrapeMetrics(ctx context.Context, opsAddr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+opsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	// No keep-alive: one request, and no idle connection (or goroutine)
	// left behind.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 8<<20))
}

// parseMetrics parses Prometheus text lines "name{labels} value" and keeps
// the floodgate_ ones, summed over labels, the prefix dropped.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "floodgate_")
		if !ok {
			continue
		}
		name, value := rest, ""
		if i := strings.IndexAny(rest, "{ "); i >= 0 {
			name = rest[:i]
			if j := strings.LastIndexByte(rest, ' '); j >= i {
				value = rest[j+1:]
			}
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("parse metrics: bad line %q", line)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return out, nil
}
