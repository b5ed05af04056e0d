package podrunner

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// configError is a container configuration problem that may go away (a
// Secret not created yet); the kubelet reports it as
// CreateContainerConfigError and retries.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// unsupportedError is something the pod runner does not implement; the pod
// fails at once.
type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }

func unsupportedf(format string, args ...any) error {
	return &unsupportedError{msg: "podrunner does not support " + fmt.Sprintf(format, args...)}
}

// objects fetches Secrets and ConfigMaps of the pod's namespace once per
// container start.
type objects struct {
	r          *Runner
	namespace  string
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
}

func (r *Runner) objects(namespace string) *objects {
	return &objects{r: r, namespace: namespace, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
}

// secret returns the Secret, nil when it does not exist.
func (o *objects) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	s, err := o.r.cs.CoreV1().Secrets(o.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s, err = nil, nil
	}
	if err != nil {
		return nil, configErrorf("get secret %q: %v", name, err)
	}
	o.secrets[name] = s
	return s, nil
}

// configMap returns the ConfigMap, nil when it does not exist.
func (o *objects) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if c, ok := o.configMaps[name]; ok {
		return c, nil
	}
	c, err := o.r.cs.CoreV1().ConfigMaps(o.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c, err = nil, nil
	}
	if err != nil {
		return nil, configErrorf("get configmap %q: %v", name, err)
	}
	o.configMaps[name] = c
	return c, nil
}

func configMapData(c *corev1.ConfigMap) map[string][]byte {
	out := make(map[string][]byte, len(c.Data)+len(c.BinaryData))
	for k, v := range c.Data {
		out[k] = []byte(v)
	}
	for k, v := range c.BinaryData {
		out[k] = v
	}
	return out
}

// defaultPath is the PATH of a container whose pod does not set one (the
// usual value of a Debian-based image).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// containerEnv resolves the environment of container c as the kubelet does:
// envFrom first, then env (later entries win), with $(VAR) references to
// earlier variables expanded. It returns the environment as a list and as a
// map (for expanding command, args and subPathExpr).
func (r *Runner) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, objs *objects) ([]string, map[string]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}

	for _, from := range c.EnvFrom {
		var data map[string][]byte
		switch {
		case from.SecretRef != nil:
			s, err := objs.secret(ctx, from.SecretRef.Name)
			if err != nil {
				return nil, nil, err
			}
			if s == nil {
				if isTrue(from.SecretRef.Optional) {
					continue
				}
				return nil, nil, configErrorf("secret %q not found", from.SecretRef.Name)
			}
			data = s.Data
		case from.ConfigMapRef != nil:
			cm, err := objs.configMap(ctx, from.ConfigMapRef.Name)
			if err != nil {
				return nil, nil, err
			}
			if cm == nil {
				if isTrue(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, nil, configErrorf("configmap %q not found", from.ConfigMapRef.Name)
			}
			data = configMapData(cm)
		default:
			return nil, nil, unsupportedf("an envFrom source other than secretRef and configMapRef")
		}
		for _, k := range sortedKeys(data) {
			set(from.Prefix+k, string(data[k]))
		}
	}

	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, ok, err := r.envValueFrom(ctx, pod, e.ValueFrom, objs)
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}

	// What a container runtime adds from the image and the pod.
	if _, ok := vars["PATH"]; !ok {
		set("PATH", defaultPath)
	}
	if _, ok := vars["HOSTNAME"]; !ok {
		set("HOSTNAME", hostname(pod))
	}
	if _, ok := vars["HOME"]; !ok {
		set("HOME", "/root")
	}

	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, vars, nil
}

func (r *Runner) envValueFrom(ctx context.Context, pod *corev1.Pod, from *corev1.EnvVarSource, objs *objects) (string, bool, error) {
	switch {
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, err := objs.secret(ctx, ref.Name)
		if err != nil {
			return "", false, err
		}
		if s == nil {
			if isTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("secret %q not found", ref.Name)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if isTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), true, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := objs.configMap(ctx, ref.Name)
		if err != nil {
			return "", false, err
		}
		if cm == nil {
			if isTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("configmap %q not found", ref.Name)
		}
		v, ok := configMapData(cm)[ref.Key]
		if !ok {
			if isTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), true, nil
	case from.FieldRef != nil:
		v, err := r.fieldValue(pod, from.FieldRef.FieldPath)
		return v, err == nil, err
	default:
		return "", false, unsupportedf("resourceFieldRef and fileKeyRef env sources")
	}
}

var labelPath = regexp.MustCompile(`^metadata\.(labels|annotations)\['(.*)'\]$`)

func (r *Runner) fieldValue(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return r.opts.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.podIP", "status.hostIPs", "status.podIPs":
		return nodeIP, nil
	}
	if m := labelPath.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return pod.Labels[m[2]], nil
		}
		return pod.Annotations[m[2]], nil
	}
	return "", unsupportedf("fieldRef %q", path)
}

// expand replaces $(NAME) by the value of NAME when it is defined, and $$ by
// $, as the kubelet does for env values, command, args and subPathExpr.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func isTrue(b *bool) bool { return b != nil && *b }

func hostname(pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	name := pod.Name
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}
