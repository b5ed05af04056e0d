package podrunner_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backstop-io/backstop/test/cluster"
	"github.com/backstop-io/backstop/test/podrunner"
)

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
	return s
}

func TestRunner_JobSucceeds(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	g.Expect(k8s.Create(ctx, secret(ns, "creds", map[string]string{"key": "s3cret"}))).To(Succeed())

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "ok", Namespace: ns},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name:         "main",
					Image:        shImage,
					Command:      []string{"/bin/sh", "-c", "echo hi > /dev/termination-log; cat /etc/secret/key"},
					VolumeMounts: []corev1.VolumeMount{{Name: "secret", MountPath: "/etc/secret"}},
				}},
				Volumes: []corev1.Volume{{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}}},
			}},
		},
	}
	g.Expect(k8s.Create(ctx, job)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
		g.Expect(job.Status.Succeeded).To(Equal(int32(1)))
		g.Expect(job.Status.Conditions).To(ContainElement(And(
			HaveField("Type", batchv1.JobComplete), HaveField("Status", corev1.ConditionTrue))))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())

	var pods corev1.PodList
	g.Expect(k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"job-name": "ok"})).To(Succeed())
	g.Expect(pods.Items).To(HaveLen(1))
	pod := &pods.Items[0]
	g.Expect(pod.Spec.NodeName).To(Equal(runner.NodeName()))
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded))
	term := terminated(pod, "main")
	g.Expect(term).NotTo(BeNil())
	g.Expect(term.ExitCode).To(BeZero())
	g.Expect(term.Reason).To(Equal("Completed"))
	g.Expect(term.Message).To(Equal("hi\n"))
	g.Expect(term.StartedAt.Time).NotTo(BeZero())
	g.Expect(term.FinishedAt.Time).NotTo(BeZero())
	g.Expect(runner.PodLogs(ns, pod.Name)).To(ContainSubstring("s3cret"))
	logs, err := os.ReadFile(runner.LogPath(ns, pod.Name, "main"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(logs)).To(Equal("s3cret"))
}

func TestRunner_JobFailsAfterBackoffLimit(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "boom", Namespace: ns},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](1),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name:                     "main",
					Image:                    shImage,
					Command:                  []string{"/bin/sh", "-c", "echo first; echo boom >&2; exit 3"},
					TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				}},
			}},
		},
	}
	g.Expect(k8s.Create(ctx, job)).To(Succeed())

	// backoffLimit 1: two failed pods (the second after the Job controller's
	// 10s back-off), then the Job fails.
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
		g.Expect(job.Status.Conditions).To(ContainElement(And(
			HaveField("Type", batchv1.JobFailed), HaveField("Status", corev1.ConditionTrue),
			HaveField("Reason", batchv1.JobReasonBackoffLimitExceeded))))
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(job.Status.Failed).To(Equal(int32(2)))
	g.Expect(job.Status.Succeeded).To(BeZero())

	var pods corev1.PodList
	g.Expect(k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"job-name": "boom"})).To(Succeed())
	g.Expect(pods.Items).To(HaveLen(2))
	for i := range pods.Items {
		pod := &pods.Items[i]
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodFailed))
		term := terminated(pod, "main")
		g.Expect(term).NotTo(BeNil())
		g.Expect(term.ExitCode).To(Equal(int32(3)))
		g.Expect(term.Reason).To(Equal("Error"))
		// FallbackToLogsOnError: the log tail, stdout and stderr together.
		g.Expect(term.Message).To(Equal("first\nboom"))
	}
}

func TestRunner_SecretVolumeAndEnv(t *testing.T) {
	// Paths that already exist on the host (left by some other program)
	// say nothing about this runner.
	hostPaths := []string{"/etc/secret", "/etc/items", "/etc/app", "/dev/termination-log"}
	preexisting := map[string]bool{}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			preexisting[p] = true
		}
	}
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	g.Expect(k8s.Create(ctx, secret(ns, "creds", map[string]string{"key": "s3cret", "password": "hunter2", "other": "x"}))).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "conf", Namespace: ns},
		Data:       map[string]string{"mode": "fast"},
	})).To(Succeed())

	script := strings.Join([]string{
		`echo "file=$(cat /etc/secret/key)"`,
		`echo "item=$(cat /etc/items/sub/pw)"`,
		`echo "mode=$(stat -c %a /etc/secret/key)"`,
		`echo "itemmode=$(stat -c %a /etc/items/sub/pw)"`,
		`echo "nokey=$(ls /etc/items)"`,
		`echo "env=$PASSWORD"`,
		`echo "cm=$MODE"`,
		`echo "pod=$POD_NAME/$POD_NAMESPACE"`,
		`echo "expanded=$GREETING"`,
		`echo "prefixed=$CREDS_key"`,
		`echo "optional=${MISSING-unset}"`,
		`echo "hostname=$(hostname)"`,
		`touch /etc/secret/new 2>/dev/null && echo writable=yes || echo writable=no`,
		`echo "subpathfile=$(cat /etc/app/key.txt)"`,
	}, "\n")
	pod := shPod(ns, "env", script)
	c := &pod.Spec.Containers[0]
	c.Env = []corev1.EnvVar{
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
		{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}, Key: "mode"}}},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "GREETING", Value: "hello $(POD_NAME) $$(POD_NAME)"},
		{Name: "MISSING", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: ptr.To(true)}}},
	}
	c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CREDS_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}}
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "secret", MountPath: "/etc/secret"},
		{Name: "items", MountPath: "/etc/items"},
		{Name: "secret", MountPath: "/etc/app/key.txt", SubPath: "key"},
	}
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds", DefaultMode: ptr.To[int32](0o400)}}},
		{Name: "items", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "creds",
			Items:      []corev1.KeyToPath{{Key: "password", Path: "sub/pw", Mode: ptr.To[int32](0o440)}},
		}}},
	}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())

	pod = finished(g, ns, "env")
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded))
	logs := runner.PodLogs(ns, "env")
	for _, want := range []string{
		"file=s3cret", "item=hunter2", "mode=400", "itemmode=440", "nokey=sub\n",
		"env=hunter2", "cm=fast", "pod=env/" + ns, "expanded=hello env $(POD_NAME)",
		"prefixed=s3cret", "optional=unset", "hostname=env", "writable=no", "subpathfile=s3cret",
	} {
		g.Expect(logs).To(ContainSubstring(want))
	}
	// The mount paths exist only in the container's view.
	for _, p := range hostPaths {
		if preexisting[p] {
			continue
		}
		_, err := os.Lstat(p)
		g.Expect(os.IsNotExist(err)).To(BeTrue(), "%s must not exist on the host", p)
	}
}

func TestRunner_MissingSecretWaitsThenRuns(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	pod := shPod(ns, "late", `echo "pw=$PASSWORD"`)
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "late"}, Key: "password"}}}}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())

	g.Eventually(func(g Gomega) string {
		p := getPod(g, ns, "late")
		g.Expect(p.Status.ContainerStatuses).To(HaveLen(1))
		w := p.Status.ContainerStatuses[0].State.Waiting
		g.Expect(w).NotTo(BeNil())
		return w.Reason
	}, 20*time.Second, 100*time.Millisecond).Should(Equal("CreateContainerConfigError"))

	g.Expect(k8s.Create(ctx, secret(ns, "late", map[string]string{"password": "finally"}))).To(Succeed())
	pod = finished(g, ns, "late")
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded))
	g.Expect(runner.PodLogs(ns, "late")).To(ContainSubstring("pw=finally"))
}

func TestRunner_PVCPersistsBetweenPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	withClaim := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
			{Name: "data", MountPath: "/var/lib/app"},
			{Name: "data", MountPath: "/srv/sub", SubPath: "nested/dir"},
		}
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
		return p
	}
	g.Expect(k8s.Create(ctx, withClaim(shPod(ns, "writer", "echo persisted > /var/lib/app/file; echo sub > /srv/sub/x")))).To(Succeed())
	g.Expect(finished(g, ns, "writer").Status.Phase).To(Equal(corev1.PodSucceeded))

	host := runner.PVCPath(ns, "data")
	data, err := os.ReadFile(filepath.Join(host, "file"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(Equal("persisted\n"))
	data, err = os.ReadFile(filepath.Join(host, "nested", "dir", "x"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(Equal("sub\n"))

	g.Expect(k8s.Create(ctx, withClaim(shPod(ns, "reader", "cat /var/lib/app/file /srv/sub/x")))).To(Succeed())
	g.Expect(finished(g, ns, "reader").Status.Phase).To(Equal(corev1.PodSucceeded))
	g.Expect(runner.PodLogs(ns, "reader")).To(ContainSubstring("persisted\nsub\n"))
}

func TestRunner_InitContainersAndEmptyDir(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	pod := shPod(ns, "init", "cat /work/order; echo main >> /work/order")
	pod.Spec.InitContainers = []corev1.Container{
		{Name: "first", Image: shImage, Command: []string{"sh", "-c", "echo first > /work/order"}},
		{Name: "second", Image: shImage, Command: []string{"sh", "-c", "echo second >> /work/order"}},
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			list[i].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/work"}}
		}
	}
	pod.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())

	pod = finished(g, ns, "init")
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded))
	g.Expect(pod.Status.InitContainerStatuses).To(HaveLen(2))
	g.Expect(terminated(pod, "first").Reason).To(Equal("Completed"))
	g.Expect(terminated(pod, "second").FinishedAt.Time).NotTo(BeTemporally("<", terminated(pod, "first").FinishedAt.Time))
	g.Expect(runner.PodLogs(ns, "init")).To(ContainSubstring("first\nsecond\n"))
}

func TestRunner_RestartPolicyOnFailure(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	// Fails the first time, succeeds the second (the emptyDir survives
	// container restarts).
	pod := shPod(ns, "retry", "if [ -e /state/tried ]; then echo second; exit 0; fi; touch /state/tried; echo first; exit 1")
	pod.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "state", MountPath: "/state"}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())

	pod = finished(g, ns, "retry")
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded))
	st := pod.Status.ContainerStatuses[0]
	g.Expect(st.RestartCount).To(Equal(int32(1)))
	g.Expect(st.LastTerminationState.Terminated).NotTo(BeNil())
	g.Expect(st.LastTerminationState.Terminated.ExitCode).To(Equal(int32(1)))
	g.Expect(runner.PodLogs(ns, "retry")).To(ContainSubstring("first\nsecond\n"))
}

func TestRunner_DeletionKillsProcess(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	dir := t.TempDir()
	// $$ is the kubelet's escape for $: the shell sees "echo $$".
	pod := shPod(ns, "sleeper", `echo $$$$ > /out/pid; trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.1; done`)
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "out", MountPath: "/out"}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}}}}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())

	g.Eventually(func(g Gomega) {
		p := getPod(g, ns, "sleeper")
		g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		g.Expect(p.Status.ContainerStatuses[0].State.Running).NotTo(BeNil())
		g.Expect(p.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.PodReady), HaveField("Status", corev1.ConditionTrue))))
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	var pid int
	g.Eventually(func() error {
		data, err := os.ReadFile(filepath.Join(dir, "pid"))
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		return err
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(processExists(pid)).To(BeTrue())

	g.Expect(k8s.Delete(ctx, pod, client.GracePeriodSeconds(5))).To(Succeed())
	g.Eventually(func() bool {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		return apierrors.IsNotFound(err)
	}, 20*time.Second, 100*time.Millisecond).Should(BeTrue())
	g.Expect(processExists(pid)).To(BeFalse())
	g.Expect(runner.PodLogs(ns, "sleeper")).To(ContainSubstring("got TERM"))

	// A process that ignores SIGTERM is killed after the grace period.
	pod = shPod(ns, "stubborn", `trap '' TERM; echo $$$$ > /out/pid2; while :; do sleep 0.1; done`)
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "out", MountPath: "/out"}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}}}}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())
	g.Eventually(func() error {
		data, err := os.ReadFile(filepath.Join(dir, "pid2"))
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		return err
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	start := time.Now()
	g.Expect(k8s.Delete(ctx, pod, client.GracePeriodSeconds(1))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{}))
	}, 20*time.Second, 100*time.Millisecond).Should(BeTrue())
	g.Expect(time.Since(start)).To(BeNumerically(">=", time.Second))
	g.Expect(processExists(pid)).To(BeFalse())
}

func processExists(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// A zombie is gone for our purposes.
	fields := strings.Fields(string(data))
	return len(fields) > 2 && fields[2] != "Z"
}

func TestRunner_ManyPodsConcurrently(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	const n = 8
	for i := 0; i < n; i++ {
		g.Expect(k8s.Create(ctx, shPod(ns, "p"+strconv.Itoa(i), "sleep 1; echo done-"+strconv.Itoa(i)))).To(Succeed())
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		name := "p" + strconv.Itoa(i)
		g.Expect(finished(g, ns, name).Status.Phase).To(Equal(corev1.PodSucceeded))
		g.Expect(runner.PodLogs(ns, name)).To(ContainSubstring("done-" + strconv.Itoa(i)))
	}
	// They ran side by side, not one after the other.
	g.Expect(time.Since(start)).To(BeNumerically("<", n*time.Second))
}

func TestRunner_ImageMapping(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	// A "binary" under a directory that an emptyDir hides in the
	// container: it still runs (it is opened before the mounts).
	binDir := t.TempDir()
	tool := filepath.Join(binDir, "tool-built")
	g.Expect(os.WriteFile(tool, []byte("#!/bin/sh\necho \"tool args: $*\"\n"), 0o755)).To(Succeed())

	root := t.TempDir()
	r2 := podrunner.Start(t, podrunner.Options{
		Config:   testCluster.Config,
		NodeName: "mapping",
		Root:     root,
		Images:   map[string]string{"registry.example/org/tool:v1": tool},
	})
	g.Expect(r2.NodeName()).To(Equal("mapping"))
	mk := func(name string, command, args []string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{
				NodeName:      "mapping", // bound already: the shared runner leaves it alone
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "main", Image: "registry.example/org/tool:v1", Command: command, Args: args,
					VolumeMounts: []corev1.VolumeMount{{Name: "hide", MountPath: binDir}},
				}},
				Volumes: []corev1.Volume{{Name: "hide", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			},
		}
	}
	// The entrypoint by the image's name, by the binary's name, and none.
	g.Expect(k8s.Create(ctx, mk("by-image", []string{"/usr/local/bin/tool", "a"}, []string{"$(HOSTNAME)"}))).To(Succeed())
	// Pending with a nodeSelector: only the runner of that node binds it.
	byBinary := mk("by-binary", []string{"tool-built"}, []string{"b"})
	byBinary.Spec.NodeName = ""
	byBinary.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "mapping"}
	g.Expect(k8s.Create(ctx, byBinary)).To(Succeed())
	g.Expect(k8s.Create(ctx, mk("no-command", nil, []string{"c"}))).To(Succeed())
	// Another command runs from the host's filesystem.
	g.Expect(k8s.Create(ctx, mk("host-command", []string{"echo", "from host"}, nil))).To(Succeed())
	// An image that is not mapped does not start.
	unmapped := mk("unmapped", []string{"true"}, nil)
	unmapped.Spec.Containers[0].Image = "registry.example/other:v1"
	g.Expect(k8s.Create(ctx, unmapped)).To(Succeed())

	for name, want := range map[string]string{
		"by-image": "tool args: a by-image", "by-binary": "tool args: b", "no-command": "tool args: c", "host-command": "from host",
	} {
		pod := finished(g, ns, name)
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded), name)
		g.Expect(pod.Spec.NodeName).To(Equal("mapping"))
		g.Expect(r2.PodLogs(ns, name)).To(ContainSubstring(want), name)
	}
	pod := finished(g, ns, "unmapped")
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodFailed))
	g.Expect(terminated(pod, "main").Reason).To(Equal("StartError"))
	g.Expect(terminated(pod, "main").Message).To(ContainSubstring("not in the pod runner's image table"))
}

func TestRunner_ActiveDeadlineSeconds(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "slow", Namespace: ns},
		Spec: batchv1.JobSpec{
			BackoffLimit:          ptr.To[int32](0),
			ActiveDeadlineSeconds: ptr.To[int64](2),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:                 corev1.RestartPolicyNever,
				TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers:                    []corev1.Container{{Name: "main", Image: shImage, Command: []string{"sleep", "600"}}},
			}},
		},
	}
	g.Expect(k8s.Create(ctx, job)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
		g.Expect(job.Status.Conditions).To(ContainElement(And(
			HaveField("Type", batchv1.JobFailed), HaveField("Reason", batchv1.JobReasonDeadlineExceeded))))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	// The Job controller deletes the pod; the runner kills it and confirms.
	g.Eventually(func(g Gomega) []corev1.Pod {
		var pods corev1.PodList
		g.Expect(k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"job-name": "slow"})).To(Succeed())
		return pods.Items
	}, 30*time.Second, 200*time.Millisecond).Should(BeEmpty())
}

func TestRunner_RestartLeavesFinishedPodsAlone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// A control plane of its own: two runners for the same node must not
	// run next to the shared one.
	c := cluster.Start(t, cluster.Options{})
	ns := "default"
	root := t.TempDir()
	opts := podrunner.Options{Config: c.Config, Root: root, NodeName: "restart", Images: map[string]string{shImage: "/bin/sh"}}

	r1 := podrunner.Start(t, opts)
	pvcPod := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "pvc", MountPath: "/pvc"}}
		p.Spec.Volumes = []corev1.Volume{{Name: "pvc", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}}
		return p
	}
	g.Expect(c.Client.Create(ctx, pvcPod(shPod(ns, "done", "echo once >> /pvc/count")))).To(Succeed())
	g.Expect(c.Client.Create(ctx, pvcPod(shPod(ns, "running", "echo started >> /pvc/running; sleep 600")))).To(Succeed())
	get := func(g Gomega, name string) *corev1.Pod {
		var p corev1.Pod
		g.Expect(c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p)).To(Succeed())
		return &p
	}
	g.Eventually(func(g Gomega) corev1.PodPhase { return get(g, "done").Status.Phase }, 20*time.Second, 100*time.Millisecond).Should(Equal(corev1.PodSucceeded))
	g.Eventually(func(g Gomega) corev1.PodPhase { return get(g, "running").Status.Phase }, 20*time.Second, 100*time.Millisecond).Should(Equal(corev1.PodRunning))
	before := get(g, "done")
	r1.Stop()

	r2 := podrunner.Start(t, opts)
	// The pod that was running when the first runner stopped is lost.
	g.Eventually(func(g Gomega) corev1.PodPhase { return get(g, "running").Status.Phase }, 20*time.Second, 100*time.Millisecond).Should(Equal(corev1.PodFailed))
	g.Expect(terminated(get(g, "running"), "main").Reason).To(Equal("ContainerStatusUnknown"))
	// The finished pod is untouched and did not run again.
	g.Consistently(func(g Gomega) string { return get(g, "done").ResourceVersion }, 2*time.Second, 200*time.Millisecond).Should(Equal(before.ResourceVersion))
	data, err := os.ReadFile(filepath.Join(r2.PVCPath(ns, "c"), "count"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(Equal("once\n"))
	// The new runner runs new pods.
	g.Expect(c.Client.Create(ctx, shPod(ns, "after", "echo after"))).To(Succeed())
	g.Eventually(func(g Gomega) corev1.PodPhase { return get(g, "after").Status.Phase }, 20*time.Second, 100*time.Millisecond).Should(Equal(corev1.PodSucceeded))
}
