package realnode

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// isolationChain holds the rule that keeps pods' packets on the bridge.
const isolationChain = "BACKSTOP-REALNODE"

// clean removes everything a node kept under dir, whether it stopped or was
// killed: its processes (by recorded PID), the pods' containers (through
// runc, whose state lives under dir), mounts, the kubelet's cgroups, the
// iptables chains of the kubelet, kube-proxy and the node, the bridge, and
// the state itself. The logs stay until the next run.
func clean(dir, bin string) error {
	var errs []error
	// Processes, the kubelet first so that it restarts nothing.
	for _, name := range []string{"kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "containerd"} {
		killRecorded(filepath.Join(dir, "run", name+".pid"))
	}
	// The pods' containers, and the shims that ran them.
	runcRoot := filepath.Join(dir, "run", "runc", "k8s.io")
	if out, err := exec.Command("runc", "--root", runcRoot, "list", "-q").Output(); err == nil {
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command("runc", "--root", runcRoot, "kill", id, "KILL").Run()
			_ = exec.Command("runc", "--root", runcRoot, "delete", "--force", id).Run()
		}
	}
	killShims(filepath.Join(dir, "run", "containerd"))

	if err := unmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	removeCgroups()
	if err := removeChains(bin); err != nil {
		errs = append(errs, err)
	}
	_ = exec.Command("ip", "link", "del", BridgeName).Run()

	// Everything but the logs.
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if e.Name() == "logs" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killRecorded kills the process whose PID a file records, if it still runs.
func killRecorded(pidFile string) {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = os.Remove(pidFile)
}

// killShims kills the containerd shims started for a containerd whose state
// directory is stateDir: they outlive containerd by design.
func killShims(stateDir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if !strings.HasSuffix(args[0], "containerd-shim-runc-v2") || !strings.Contains(string(data), stateDir) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder unmounts every mount below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], dir+"/") {
			mounts = append(mounts, fields[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// removeCgroups removes the kubelet's (empty, once the containers are gone)
// cgroups: kubepods under each cgroup v1 hierarchy, deepest first.
func removeCgroups() {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
	}
}

// removeChains removes the iptables chains of kube-proxy (its own --cleanup
// mode), of the kubelet (KUBE-*) and of the node (isolationChain), with the
// rules that jump to them, in every table, for IPv4 and IPv6.
func removeChains(bin string) error {
	if bin != "" {
		if _, err := os.Stat(filepath.Join(bin, "kube-proxy")); err == nil {
			_ = exec.Command(filepath.Join(bin, "kube-proxy"), "--cleanup").Run()
		}
	}
	ours := func(chain string) bool { return strings.HasPrefix(chain, "KUBE-") || chain == isolationChain }
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(tool, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				fields := strings.Fields(line)
				switch {
				case len(fields) == 2 && fields[0] == "-N" && ours(fields[1]):
					chains = append(chains, fields[1])
				case len(fields) > 2 && fields[0] == "-A" && !ours(fields[1]) && jumpsToOurs(fields, ours):
					// A rule of a built-in chain that jumps to ours: delete
					// it by its own specification.
					del := exec.Command("sh", "-c", tool+" -w -t "+table+" -D "+strings.TrimPrefix(line, "-A "))
					if out, err := del.CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("%s -t %s -D %s: %v: %s", tool, table, line, err, out))
					}
				}
			}
			for _, c := range chains {
				_ = exec.Command(tool, "-w", "-t", table, "-F", c).Run()
			}
			for _, c := range chains {
				if out, err := exec.Command(tool, "-w", "-t", table, "-X", c).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("%s -t %s -X %s: %v: %s", tool, table, c, err, out))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func jumpsToOurs(fields []string, ours func(string) bool) bool {
	for i := 0; i+1 < len(fields); i++ {
		if (fields[i] == "-j" || fields[i] == "-g") && ours(fields[i+1]) {
			return true
		}
	}
	return false
}
