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
)

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
