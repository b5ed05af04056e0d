package realnode

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCleanRemovesWhatAKilledRunLeft leaves what a run killed mid-way
// leaves (a running component recorded by PID, a mount, the bridge, the
// isolation chain, state files) and checks that clean removes all of it
// but the logs, as the next run's start does.
func TestCleanRemovesWhatAKilledRunLeft(t *testing.T) {
	// The bridge and its chain are the machine's: no node may run meanwhile.
	lock, err := lockMachine()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	// A run killed before this one (its bridge, chains, processes) is
	// removed first, as every node's start does, so that the debris below
	// is this test's own.
	if err := clean(Dir(), ""); err != nil {
		t.Fatalf("remove what an earlier run left: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{"run", "logs", "kubelet/pods/x/volumes", "containerd"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "logs", "kubelet.log"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A "kubelet" that outlived its test process.
	sleeper := exec.Command("sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	if err := os.WriteFile(filepath.Join(dir, "run", "kubelet.pid"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A volume the kubelet mounted.
	mnt := filepath.Join(dir, "kubelet/pods/x/volumes")
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	// The network the node made.
	n := &Node{dir: dir}
	if err := n.network(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeChains(""); _ = exec.Command("ip", "link", "del", BridgeName).Run() })

	if err := clean(dir, ""); err != nil {
		t.Fatal(err)
	}

	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("the recorded process still runs")
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), dir+"/") {
		t.Errorf("a mount under %s is left", dir)
	}
	if exec.Command("ip", "link", "show", BridgeName).Run() == nil {
		t.Errorf("the bridge %s is left", BridgeName)
	}
	rules, _ := exec.Command("iptables", "-S").Output()
	if strings.Contains(string(rules), isolationChain) {
		t.Errorf("the chain %s is left:\n%s", isolationChain, rules)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "logs" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left in the node's directory: %v, want only logs", names)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "logs", "kubelet.log")); string(data) != "kept\n" {
		t.Error("the logs were not kept")
	}
}
