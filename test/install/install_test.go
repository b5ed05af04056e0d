package install

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/backstop-io/backstop/test/cluster"
)

var helms = []string{Helm3, Helm4}

func deploymentOf(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	ds := Filter(objs, "Deployment")
	if len(ds) != 1 {
		t.Fatalf("%d Deployments rendered, want 1", len(ds))
	}
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(ds[0].Object, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestChart_Lint(t *testing.T) {
	for _, h := range helms {
		helm := Tool(t, h)
		for _, v := range chartVariants {
			t.Run("helm "+h+"/"+v.name, func(t *testing.T) {
				out := Run(t, helm, append([]string{"lint", "--strict", ChartDir}, v.args...)...)
				if !strings.Contains(string(out), "0 chart(s) failed") {
					t.Errorf("helm lint:\n%s", out)
				}
			})
		}
	}
}

func TestChart_RejectsBadValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown value", []string{"--set", "replicas=2"}, "'replicas' not allowed"},
		{"bad pull policy", []string{"--set", "image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
		{"extraArgs not a flag", []string{"--set", "extraArgs[0]=oops"}, "/extraArgs/0"},
		{"watchNamespace not a name", []string{"--set", "watchNamespace=Not_A_Namespace"}, "/watchNamespace"},
		{"digest not sha256", []string{"--set", "image.digest=latest"}, "/image/digest"},
		{"kube version too old", []string{"--kube-version", "1.29.0"}, "requires kubeVersion"},
	}
	for _, h := range helms {
		helm := Tool(t, h)
		for _, tt := range tests {
			t.Run("helm "+h+"/"+tt.name, func(t *testing.T) {
				out, err := RunErr(helm, append([]string{"template", "backstop", ChartDir}, tt.args...)...)
				if err == nil {
					t.Fatalf("helm template accepted %v:\n%.400s", tt.args, out)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("helm template %v failed for another reason than %q: %v", tt.args, tt.want, err)
				}
			})
		}
	}
}

func TestChart_Deployment(t *testing.T) {
	for _, h := range helms {
		helm := Tool(t, h)
		t.Run("helm "+h+"/defaults", func(t *testing.T) {
			d := deploymentOf(t, RenderChart(t, helm, "backstop", "backstop-system"))
			checkHardened(t, d)
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != "ghcr.io/backstop-io/backstop:0.1.0" {
				t.Errorf("image %q, want the chart's appVersion", c.Image)
			}
			for _, want := range []string{"--leader-elect=true", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081", "--agent-image=" + c.Image} {
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %q lack %q", c.Args, want)
				}
			}
			if hasPrefix(c.Args, "--watch-namespace") {
				t.Errorf("args %q watch one namespace by default", c.Args)
			}
			if d.Spec.Template.Spec.ServiceAccountName != "backstop" {
				t.Errorf("serviceAccountName %q", d.Spec.Template.Spec.ServiceAccountName)
			}
		})
		t.Run("helm "+h+"/overrides", func(t *testing.T) {
			digest := "sha256:" + strings.Repeat("ab", 32)
			d := deploymentOf(t, RenderChart(t, helm, "bk", "ops",
				"--set", "watchNamespace=apps",
				"--set", "agent.image=registry.example/backstop-agent:1.2.3",
				"--set", "image.digest="+digest,
				"--set", "extraArgs[0]=--enable-http2",
				"--set", "nodeSelector.pool=system",
				"--set", "tolerations[0].key=dedicated", "--set", "tolerations[0].operator=Exists",
				"--set", "podSecurityContext.runAsUser=65532"))
			checkHardened(t, d)
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != "ghcr.io/backstop-io/backstop@"+digest {
				t.Errorf("image %q, want the digest", c.Image)
			}
			for _, want := range []string{"--watch-namespace=apps", "--agent-image=registry.example/backstop-agent:1.2.3", "--leader-election-namespace=ops"} {
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %q lack %q", c.Args, want)
				}
			}
			if c.Args[len(c.Args)-1] != "--enable-http2" {
				t.Errorf("extraArgs not last: %q", c.Args)
			}
			if d.Name != "bk-backstop" || d.Namespace != "ops" {
				t.Errorf("Deployment %s/%s", d.Namespace, d.Name)
			}
			ps := d.Spec.Template.Spec
			if ps.NodeSelector["pool"] != "system" || len(ps.Tolerations) != 1 {
				t.Errorf("nodeSelector %v, tolerations %v", ps.NodeSelector, ps.Tolerations)
			}
		})
	}
}

func hasPrefix(args []string, prefix string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, prefix) })
}

// checkHardened checks what a restricted Pod Security Standard and our own
// rules ask of the operator pod.
func checkHardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	if !slices.Equal(c.Command, []string{"/usr/local/bin/backstop"}) || len(c.Args) == 0 || c.Args[0] != "manager" {
		t.Errorf("command %q args %q, want /usr/local/bin/backstop manager", c.Command, c.Args)
	}
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", psc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v", sc)
	}
	probe := func(p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "health" {
			t.Errorf("probe %s: %+v", path, p)
		}
	}
	probe(c.LivenessProbe, "/healthz")
	probe(c.ReadinessProbe, "/readyz")
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["health"] != 8081 || ports["https"] != 8443 {
		t.Errorf("ports %v", ports)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
}

// TestChartAndKustomize_InstallTheSame: `kubectl apply -k config/default`
// installs what `helm install backstop charts/backstop -n backstop-system`
// does: the same objects, the same pod, the same rules.
func TestChartAndKustomize_InstallTheSame(t *testing.T) {
	chart := RenderChart(t, Tool(t, Helm3), "backstop", "backstop-system", "--include-crds")
	kust := BuildKustomization(t, "config/default")

	// Helm creates the release namespace itself (--create-namespace).
	if got, want := Keys(kust, "Namespace"), Keys(chart); !reflect.DeepEqual(got, want) {
		t.Errorf("objects differ:\nkustomize %q\nchart     %q", got, want)
	}

	// The pod: kustomize hands the image to --agent-image through $(AGENT_IMAGE).
	kd, cd := deploymentOf(t, kust), deploymentOf(t, chart)
	kc := &kd.Spec.Template.Spec.Containers[0]
	vars := map[string]string{}
	var env []corev1.EnvVar
	for _, e := range kc.Env {
		if e.Name == "AGENT_IMAGE" {
			vars[e.Name] = e.Value
			continue
		}
		env = append(env, e)
	}
	kc.Env = env
	if vars["AGENT_IMAGE"] != kc.Image {
		t.Errorf("AGENT_IMAGE %q, image %q", vars["AGENT_IMAGE"], kc.Image)
	}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	for i, a := range kc.Args {
		kc.Args[i] = ref.ReplaceAllStringFunc(a, func(m string) string { return vars[m[2:len(m)-1]] })
	}
	if !reflect.DeepEqual(kd.Spec.Template.Spec, cd.Spec.Template.Spec) {
		t.Errorf("pod specs differ:\nkustomize %+v\nchart     %+v", kd.Spec.Template.Spec, cd.Spec.Template.Spec)
	}
	if !reflect.DeepEqual(kd.Spec.Selector, cd.Spec.Selector) {
		t.Errorf("selectors differ: %v, %v", kd.Spec.Selector, cd.Spec.Selector)
	}

	// Rules, bindings, the Service and the CRDs.
	for _, o := range kust {
		other := Find(chart, o.GetKind(), o.GetName())
		if other == nil {
			continue
		}
		for _, field := range []string{"rules", "roleRef", "subjects", "spec"} {
			if o.GetKind() == "Deployment" {
				continue
			}
			a, _, _ := unstructured.NestedFieldNoCopy(o.Object, field)
			b, _, _ := unstructured.NestedFieldNoCopy(other.Object, field)
			if !reflect.DeepEqual(normalize(t, a), normalize(t, b)) {
				t.Errorf("%s %s: %s differs:\nkustomize %v\nchart     %v", o.GetKind(), o.GetName(), field, a, b)
			}
		}
	}
}

// normalize makes YAML-decoded values comparable (int64 vs float64 and the like).
func normalize(t *testing.T, v any) any {
	t.Helper()
	if v == nil {
		return nil
	}
	u := &unstructured.Unstructured{Object: map[string]any{"v": v}}
	data, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	out := &unstructured.Unstructured{}
	if err := out.UnmarshalJSON(append([]byte(`{"kind":"X","apiVersion":"v1",`), data[1:]...)); err != nil {
		t.Fatal(err)
	}
	return out.Object["v"]
}

// TestInstall_OnAPIServer renders the chart with Helm 3 and Helm 4 (default
// values; watchNamespace with the ServiceMonitor on) and builds config/default,
// and applies each to a real API server that starts with no CRDs.
func TestInstall_OnAPIServer(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t, cluster.Options{})
	version, err := ServerVersion(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	install := func(t *testing.T, objs []*unstructured.Unstructured, extra ...*unstructured.Unstructured) {
		t.Helper()
		var apply []*unstructured.Unstructured
		for _, o := range objs {
			served, err := Served(c.Config, o)
			if err != nil {
				t.Fatal(err)
			}
			if !served && o.GetKind() == "ServiceMonitor" {
				t.Logf("skipping %s %s: the API server has no %s", o.GetKind(), o.GetName(), o.GroupVersionKind().GroupKind())
				continue
			}
			apply = append(apply, o)
		}
		if err := Apply(ctx, c.Config, append(extra, apply...)); err != nil {
			t.Fatal(err)
		}
		for _, o := range apply {
			ok, err := Exists(ctx, c.Config, o)
			if err != nil || !ok {
				t.Errorf("%s %s/%s not on the server after apply (%v)", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
		if len(Filter(apply, "Deployment")) != 1 || len(Filter(apply, "CustomResourceDefinition")) != 6 {
			t.Fatalf("applied %q", Keys(apply))
		}
		// The operator's pod passes the restricted Pod Security Standard:
		// its namespace enforces it, and the API server admits the pod.
		d := deploymentOf(t, apply)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: d.Name + "-", Namespace: d.Namespace, Labels: d.Spec.Template.Labels}, Spec: d.Spec.Template.Spec}
		nsObj, err := c.Clientset.CoreV1().Namespaces().Get(ctx, d.Namespace, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if nsObj.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Fatalf("namespace %s does not enforce the restricted standard: %v", d.Namespace, nsObj.Labels)
		}
		if _, err := c.Clientset.CoreV1().Pods(d.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("the operator pod is not admitted: %v", err)
		}
	}
	namespace := func(name string) *unstructured.Unstructured {
		ns := &unstructured.Unstructured{}
		ns.SetAPIVersion("v1")
		ns.SetKind("Namespace")
		ns.SetName(name)
		ns.SetLabels(map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
		return ns
	}

	for _, h := range helms {
		helm := Tool(t, h)
		t.Run("helm "+h+"/defaults", func(t *testing.T) {
			release := "helm" + h[1:]
			objs := RenderChart(t, helm, release, release+"-system", "--include-crds", "--kube-version", version)
			install(t, objs, namespace(release+"-system"))
		})
		t.Run("helm "+h+"/watchNamespace and serviceMonitor", func(t *testing.T) {
			release := "helm" + h[1:] + "-ns"
			objs := RenderChart(t, helm, release, release+"-system", "--include-crds", "--kube-version", version,
				"--set", "watchNamespace="+release+"-apps", "--set", "metrics.serviceMonitor.enabled=true")
			checkServiceMonitor(t, objs)
			install(t, objs, namespace(release+"-system"), namespace(release+"-apps"))
			if Find(objs, "Role", release+"-backstop-manager") == nil {
				t.Errorf("no manager Role: %q", Keys(objs))
			}
		})
	}
	for _, h := range helms {
		helm := Tool(t, h)
		t.Run("helm "+h+"/install, upgrade, uninstall", func(t *testing.T) {
			release := "real" + h[1:]
			ns := release + "-system"
			kc := "--kubeconfig=" + c.KubeconfigPath
			out := string(Run(t, helm, "install", release, ChartDir, "-n", ns, "--create-namespace", kc))
			if !strings.Contains(out, "kubectl get backstop -A") || !strings.Contains(out, "watching every namespace") {
				t.Errorf("helm install printed no NOTES:\n%s", out)
			}
			deploy := &unstructured.Unstructured{}
			deploy.SetAPIVersion("apps/v1")
			deploy.SetKind("Deployment")
			deploy.SetNamespace(ns)
			deploy.SetName(release + "-backstop")
			if ok, err := Exists(ctx, c.Config, deploy); err != nil || !ok {
				t.Fatalf("no Deployment after helm install (%v)", err)
			}
			Run(t, helm, "upgrade", release, ChartDir, "-n", ns, kc, "--set", "replicaCount=2", "--set", "watchNamespace="+ns)
			d, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, release+"-backstop", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if *d.Spec.Replicas != 2 || !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--watch-namespace="+ns) {
				t.Errorf("after helm upgrade: replicas %d, args %q", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Args)
			}
			if _, err := c.Clientset.RbacV1().Roles(ns).Get(ctx, release+"-backstop-manager", metav1.GetOptions{}); err != nil {
				t.Errorf("no manager Role after the upgrade to one namespace: %v", err)
			}
			if _, err := c.Clientset.RbacV1().ClusterRoles().Get(ctx, release+"-backstop-manager", metav1.GetOptions{}); err == nil {
				t.Error("the manager ClusterRole outlived the upgrade to one namespace")
			}
			Run(t, helm, "uninstall", release, "-n", ns, kc)
			if ok, err := Exists(ctx, c.Config, deploy); err != nil || ok {
				t.Errorf("Deployment still there after helm uninstall (%v)", err)
			}
			// Helm never deletes the CRDs: users' backups outlive the operator.
			if _, err := c.Clientset.Discovery().ServerResourcesForGroupVersion("backstop.io/v1alpha1"); err != nil {
				t.Errorf("backstop.io/v1alpha1 gone after helm uninstall: %v", err)
			}
		})
	}
	t.Run("kustomize config/default", func(t *testing.T) {
		install(t, BuildKustomization(t, "config/default"))
	})
	t.Run("kustomize config/prometheus", func(t *testing.T) {
		checkServiceMonitor(t, append(BuildKustomization(t, "config/prometheus"), BuildKustomization(t, "config/default")...))
	})
}

// checkServiceMonitor checks that the ServiceMonitor scrapes the metrics
// Service's https port over HTTPS. (Its CRD belongs to the Prometheus
// Operator and is not installed in the test API server.)
func checkServiceMonitor(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	sms := Filter(objs, "ServiceMonitor")
	if len(sms) != 1 {
		t.Fatalf("%d ServiceMonitors", len(sms))
	}
	sm := sms[0]
	selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	var svc *unstructured.Unstructured
	for _, s := range Filter(objs, "Service") {
		labels := s.GetLabels()
		match := len(selector) > 0
		for k, v := range selector {
			if labels[k] != v {
				match = false
			}
		}
		if match {
			if svc != nil {
				t.Errorf("the ServiceMonitor selects Services %s and %s", svc.GetName(), s.GetName())
			}
			svc = s
		}
	}
	if svc == nil {
		t.Fatalf("the ServiceMonitor's selector %v matches no Service", selector)
	}
	if svc.GetNamespace() != sm.GetNamespace() {
		t.Errorf("Service in %q, ServiceMonitor in %q", svc.GetNamespace(), sm.GetNamespace())
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if len(endpoints) != 1 || len(ports) != 1 {
		t.Fatalf("endpoints %v, ports %v", endpoints, ports)
	}
	ep, port := endpoints[0].(map[string]any), ports[0].(map[string]any)
	if ep["port"] != port["name"] || ep["scheme"] != "https" || ep["path"] != "/metrics" {
		t.Errorf("endpoint %v does not scrape port %v over https", ep, port)
	}
	if fmt.Sprint(port["port"]) != "8443" {
		t.Errorf("metrics port %v", port["port"])
	}
}
