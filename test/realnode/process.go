package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/backstop-io/backstop/test/cluster"
)

// process is one component the node runs, with its log in the log directory
// and its PID in the run directory (so that a later run can stop it if this
// one is killed).
type process struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
	pidPath string
}

func (n *Node) start(name, bin string, args ...string) (*process, error) {
	p := &process{
		name:    name,
		logPath: filepath.Join(n.LogDir, name+".log"),
		pidPath: filepath.Join(n.dir, "run", name+".pid"),
		done:    make(chan struct{}),
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Die with the test process even if it never gets to Stop; a new
	// process group so a signal reaches the component alone.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := os.WriteFile(p.pidPath, []byte(strconv.Itoa(p.cmd.Process.Pid)), 0o644); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	n.procs = append(n.procs, p)
	return p, nil
}

// waitFor polls ready until it returns nil, failing at once with the tail
// of the component's log if the process exits, or after timeout.
func (p *process) waitFor(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start (%v); log tail:\n%s", p.name, p.cmd.ProcessState, cluster.TailFile(p.logPath, 30))
		default:
		}
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v; log tail:\n%s", p.name, timeout, err, cluster.TailFile(p.logPath, 30))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stop sends SIGTERM, then SIGKILL after a grace period.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	_ = os.Remove(p.pidPath)
}

// run runs a short command and returns its combined output.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
