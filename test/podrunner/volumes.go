package podrunner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// volume is a pod volume materialized on the host.
type volume struct {
	path     string
	readOnly bool // always mounted read-only (Secret, ConfigMap, ...)
}

// prepareVolumes materializes the pod's volumes under dir and returns them by
// name. Secret and ConfigMap contents are written once, when the pod starts.
func (r *Runner) prepareVolumes(ctx context.Context, pod *corev1.Pod, dir string) (map[string]volume, error) {
	objs := r.objects(pod.Namespace)
	vols := map[string]volume{}
	for _, v := range pod.Spec.Volumes {
		vdir := filepath.Join(dir, "volumes", v.Name)
		src := v.VolumeSource
		switch {
		case src.EmptyDir != nil:
			if err := os.MkdirAll(vdir, 0o777); err != nil {
				return nil, err
			}
			// Like the kubelet's emptyDir: writable by every user.
			if err := os.Chmod(vdir, 0o777); err != nil {
				return nil, err
			}
			vols[v.Name] = volume{path: vdir}
		case src.PersistentVolumeClaim != nil:
			p, err := r.claimDir(pod.Namespace, src.PersistentVolumeClaim.ClaimName)
			if err != nil {
				return nil, err
			}
			vols[v.Name] = volume{path: p, readOnly: src.PersistentVolumeClaim.ReadOnly}
		case src.HostPath != nil:
			p := src.HostPath.Path
			if t := src.HostPath.Type; t != nil && *t == corev1.HostPathDirectoryOrCreate {
				if err := os.MkdirAll(p, 0o755); err != nil {
					return nil, err
				}
			}
			vols[v.Name] = volume{path: p}
		case src.Secret != nil:
			s, err := objs.secret(ctx, src.Secret.SecretName)
			if err != nil {
				return nil, err
			}
			if err := writeKeys(vdir, s != nil, isTrue(src.Secret.Optional), "secret", src.Secret.SecretName, secretData(s), src.Secret.Items, src.Secret.DefaultMode); err != nil {
				return nil, err
			}
			vols[v.Name] = volume{path: vdir, readOnly: true}
		case src.ConfigMap != nil:
			cm, err := objs.configMap(ctx, src.ConfigMap.Name)
			if err != nil {
				return nil, err
			}
			var data map[string][]byte
			if cm != nil {
				data = configMapData(cm)
			}
			if err := writeKeys(vdir, cm != nil, isTrue(src.ConfigMap.Optional), "configmap", src.ConfigMap.Name, data, src.ConfigMap.Items, src.ConfigMap.DefaultMode); err != nil {
				return nil, err
			}
			vols[v.Name] = volume{path: vdir, readOnly: true}
		case src.DownwardAPI != nil:
			if err := r.writeDownwardAPI(pod, vdir, src.DownwardAPI.Items, src.DownwardAPI.DefaultMode); err != nil {
				return nil, err
			}
			vols[v.Name] = volume{path: vdir, readOnly: true}
		case src.Projected != nil:
			if err := r.writeProjected(ctx, pod, vdir, src.Projected, objs); err != nil {
				return nil, err
			}
			vols[v.Name] = volume{path: vdir, readOnly: true}
		default:
			return nil, unsupportedf("volume %q: only emptyDir, persistentVolumeClaim, hostPath, secret, configMap, downwardAPI and projected (secret, configMap, downwardAPI) volumes are supported", v.Name)
		}
	}
	return vols, nil
}

func secretData(s *corev1.Secret) map[string][]byte {
	if s == nil {
		return nil
	}
	return s.Data
}

// writeKeys writes a Secret's or ConfigMap's keys as files in dir, as the
// kubelet does: all keys, or only items (key -> path, mode), with
// defaultMode (0644 when unset).
func writeKeys(dir string, exists, optional bool, kind, name string, data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if !exists {
		if optional {
			return nil
		}
		return configErrorf("%s %q not found", kind, name)
	}
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode) & os.ModePerm
	}
	if len(items) == 0 {
		for _, k := range sortedKeys(data) {
			if err := writeFile(dir, k, data[k], mode); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return configErrorf("couldn't find key %s in %s %s", it.Key, kind, name)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode) & os.ModePerm
		}
		if err := writeFile(dir, it.Path, v, m); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) writeDownwardAPI(pod *corev1.Pod, dir string, items []corev1.DownwardAPIVolumeFile, defaultMode *int32) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode) & os.ModePerm
	}
	for _, it := range items {
		if it.FieldRef == nil {
			return unsupportedf("downwardAPI resourceFieldRef items")
		}
		var v string
		switch it.FieldRef.FieldPath {
		case "metadata.labels":
			v = formatMap(pod.Labels)
		case "metadata.annotations":
			v = formatMap(pod.Annotations)
		default:
			var err error
			if v, err = r.fieldValue(pod, it.FieldRef.FieldPath); err != nil {
				return err
			}
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode) & os.ModePerm
		}
		if err := writeFile(dir, it.Path, []byte(v), m); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) writeProjected(ctx context.Context, pod *corev1.Pod, dir string, p *corev1.ProjectedVolumeSource, objs *objects) error {
	for _, s := range p.Sources {
		switch {
		case s.Secret != nil:
			sec, err := objs.secret(ctx, s.Secret.Name)
			if err != nil {
				return err
			}
			if err := writeKeys(dir, sec != nil, isTrue(s.Secret.Optional), "secret", s.Secret.Name, secretData(sec), s.Secret.Items, p.DefaultMode); err != nil {
				return err
			}
		case s.ConfigMap != nil:
			cm, err := objs.configMap(ctx, s.ConfigMap.Name)
			if err != nil {
				return err
			}
			var data map[string][]byte
			if cm != nil {
				data = configMapData(cm)
			}
			if err := writeKeys(dir, cm != nil, isTrue(s.ConfigMap.Optional), "configmap", s.ConfigMap.Name, data, s.ConfigMap.Items, p.DefaultMode); err != nil {
				return err
			}
		case s.DownwardAPI != nil:
			if err := r.writeDownwardAPI(pod, dir, s.DownwardAPI.Items, p.DefaultMode); err != nil {
				return err
			}
		default:
			return unsupportedf("projected volume sources other than secret, configMap and downwardAPI")
		}
	}
	return nil
}

func writeFile(dir, rel string, data []byte, mode os.FileMode) error {
	p, err := within(dir, rel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// within joins a relative path to dir, refusing to leave dir.
func within(dir, rel string) (string, error) {
	if filepath.IsAbs(rel) {
		return "", fmt.Errorf("path %q must be relative", rel)
	}
	p := filepath.Join(dir, rel)
	if p != dir && !strings.HasPrefix(p, dir+string(filepath.Separator)) {
		return "", fmt.Errorf("path %q leaves its volume", rel)
	}
	return p, nil
}

// claimDir is the host directory standing for a PersistentVolumeClaim,
// created on demand.
func (r *Runner) claimDir(namespace, claim string) (string, error) {
	p := r.PVCPath(namespace, claim)
	if err := os.MkdirAll(p, 0o777); err != nil {
		return "", err
	}
	return p, nil
}

// mounts turns a container's volumeMounts into shim mounts.
func mounts(c *corev1.Container, vols map[string]volume, vars map[string]string) ([]shimMount, error) {
	var out []shimMount
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %q: no volume of that name", vm.Name)
		}
		src := v.path
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, vars)
		}
		if sub != "" {
			p, err := within(v.path, sub)
			if err != nil {
				return nil, fmt.Errorf("volumeMount %q: subPath: %w", vm.Name, err)
			}
			if _, err := os.Lstat(p); os.IsNotExist(err) {
				if err := os.MkdirAll(p, 0o755); err != nil {
					return nil, err
				}
			}
			src = p
		}
		out = append(out, shimMount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly || v.readOnly})
	}
	return out, nil
}

func formatMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
