package realnode

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/backstop-io/backstop/internal/testutil/assets"
)

// pauseImage builds the pause program and writes it as a one-layer image in
// the docker-archive format `ctr images import` reads. It returns the file.
func pauseImage(dir string) (string, error) {
	root, err := assets.RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pause")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./test/realnode/pause")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build pause: %w: %s", err, out)
	}
	program, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	layer, err := tarOf(map[string][]byte{"pause": program})
	if err != nil {
		return "", err
	}
	layerSum := sha256.Sum256(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{"/pause"}, "User": "65535:65535"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(layerSum[:])}},
	})
	if err != nil {
		return "", err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	layerName := hex.EncodeToString(layerSum[:]) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{PauseImage}, "Layers": []string{layerName}}})
	if err != nil {
		return "", err
	}
	archive, err := tarOf(map[string][]byte{"manifest.json": manifest, configName: config, layerName: layer})
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "pause.tar")
	return out, os.WriteFile(out, archive, 0o644)
}

// tarOf writes files (name -> content, mode 0755) into a tar archive.
func tarOf(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
