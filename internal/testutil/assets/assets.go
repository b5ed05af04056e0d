// Package assets finds what tests need from outside the Go build: the repo
// root and the test control plane built by hack/control-plane.sh.
package assets

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

var (
	controlPlaneOnce sync.Once
	controlPlaneDir  string
	controlPlaneErr  error
)

// ControlPlane returns the directory holding kube-apiserver,
// kube-controller-manager and etcd: $KUBEBUILDER_ASSETS when set, otherwise
// what hack/control-plane.sh prints (it builds them on a cold cache).
func ControlPlane() (string, error) {
	controlPlaneOnce.Do(func() {
		if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
			controlPlaneDir = dir
			return
		}
		root, err := RepoRoot()
		if err != nil {
			controlPlaneErr = err
			return
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(root, "hack", "control-plane.sh"))
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			controlPlaneErr = fmt.Errorf("hack/control-plane.sh: %v: %s", err, stderr.String())
			return
		}
		// The directory is the last line; anything before it is the build's chatter.
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		controlPlaneDir = strings.TrimSpace(lines[len(lines)-1])
		if controlPlaneDir == "" {
			controlPlaneErr = fmt.Errorf("hack/control-plane.sh printed no directory")
		}
	})
	return controlPlaneDir, controlPlaneErr
}
