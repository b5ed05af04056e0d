package cluster_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backstop-io/backstop/test/cluster"
	"github.com/backstop-io/backstop/test/podrunner"
)

// TestCluster_JobRunsOnPodRunner is the whole harness at work: the Job
// controller creates the pod, the pod runner binds and runs it, the Job
// completes.
func TestCluster_JobRunsOnPodRunner(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := cluster.Start(t, cluster.Options{ControllerManager: true})
	r := podrunner.Start(t, podrunner.Options{
		Config: c.Config,
		Images: map[string]string{"example.test/sh:1": "/bin/sh"},
	})

	g.Expect(c.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default"},
		StringData: map[string]string{"key": "s3cret"},
	})).To(Succeed())
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e", Namespace: "default"},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			TTLSecondsAfterFinished: ptr.To[int32](600),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name:         "main",
					Image:        "example.test/sh:1",
					Command:      []string{"/bin/sh", "-c", "echo hi > /dev/termination-log; cat /etc/secret/key"},
					VolumeMounts: []corev1.VolumeMount{{Name: "secret", MountPath: "/etc/secret", ReadOnly: true}},
				}},
				Volumes: []corev1.Volume{{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}}},
			}},
		},
	}
	g.Expect(c.Client.Create(ctx, job)).To(Succeed())
	g.Eventually(func(g Gomega) int32 {
		g.Expect(c.Client.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
		return job.Status.Succeeded
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(int32(1)))

	var pods corev1.PodList
	g.Expect(c.Client.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels{"job-name": "e2e"})).To(Succeed())
	g.Expect(pods.Items).To(HaveLen(1))
	st := pods.Items[0].Status.ContainerStatuses[0].State.Terminated
	g.Expect(st).NotTo(BeNil())
	g.Expect(st.Message).To(Equal("hi\n"))
	g.Expect(r.PodLogs("default", pods.Items[0].Name)).To(ContainSubstring("s3cret"))
}

func TestCluster_JobControllerCreatesPod(t *testing.T) {
	g := NewWithT(t)
	c := cluster.Start(t, cluster.Options{ControllerManager: true})
	ctx := context.Background()

	// The kubeconfig works on its own.
	cfg, err := clientcmd.BuildConfigFromFlags("", c.KubeconfigPath)
	g.Expect(err).NotTo(HaveOccurred())
	kc, err := client.New(cfg, client.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kc.List(ctx, &corev1.NamespaceList{})).To(Succeed())

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "example.invalid/smoke:1", Command: []string{"true"}}},
				},
			},
		},
	}
	g.Expect(c.Client.Create(ctx, job)).To(Succeed())

	var pods corev1.PodList
	g.Eventually(func() []corev1.Pod {
		g.Expect(c.Client.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels{"job-name": "smoke"})).To(Succeed())
		return pods.Items
	}, 30*time.Second, 200*time.Millisecond).Should(HaveLen(1))
	pod := pods.Items[0]
	g.Expect(metav1.IsControlledBy(&pod, job)).To(BeTrue())
	g.Expect(pod.Spec.NodeName).To(BeEmpty(), "no scheduler runs here")

	// The garbage collector removes the pod once its Job is gone.
	g.Expect(c.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	g.Eventually(func() []corev1.Pod {
		g.Expect(c.Client.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels{"job-name": "smoke"})).To(Succeed())
		return pods.Items
	}, 30*time.Second, 200*time.Millisecond).Should(BeEmpty())
}

func TestCluster_CRDPaths(t *testing.T) {
	g := NewWithT(t)

	_, err := cluster.New(cluster.Options{CRDDirectoryPaths: []string{"does/not/exist"}})
	g.Expect(err).To(MatchError(ContainSubstring("CRD path")))

	root, err := cluster.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	_, err = os.Stat(root + "/go.mod")
	g.Expect(err).NotTo(HaveOccurred())

	c := cluster.Start(t, cluster.Options{
		CRDDirectoryPaths:     []string{"config/crd/bases", "does/not/exist"},
		IgnoreMissingCRDPaths: true,
	})
	// The CRDs of the repository, if any, are served.
	if _, err := os.Stat(root + "/config/crd/bases"); err == nil {
		g.Expect(len(c.Env.CRDs)).To(BeNumerically(">", 0))
	}
	g.Expect(c.Client.List(context.Background(), &corev1.NamespaceList{})).To(Succeed())
}
