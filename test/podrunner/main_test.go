package podrunner_test

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/backstop-io/backstop/test/cluster"
	"github.com/backstop-io/backstop/test/podrunner"
)

// shImage runs the host's /bin/sh.
const shImage = "example.test/sh:1"

var (
	testCluster *cluster.Cluster
	runner      *podrunner.Runner
	k8s         client.Client
)

// TestMain shares one control plane and one runner among the tests of this
// package (tests that restart a runner bring their own).
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	c, err := cluster.New(cluster.Options{ControllerManager: true})
	if err != nil {
		log.Printf("start cluster: %v", err)
		return 1
	}
	defer c.Stop()
	root, err := os.MkdirTemp("", "podrunner-test-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(root)
	opts := podrunner.Options{
		Config: c.Config,
		Root:   root,
		Images: map[string]string{shImage: "/bin/sh"},
	}
	if testing.Verbose() {
		opts.Logf = log.Printf
	}
	r, err := podrunner.New(opts)
	if err != nil {
		log.Print(err)
		return 1
	}
	if err := r.Start(context.Background()); err != nil {
		log.Print(err)
		return 1
	}
	defer r.Stop()
	testCluster, runner, k8s = c, r, c.Client
	return m.Run()
}

// namespace makes a namespace for one test; when the test fails, it logs
// the pods of the namespace and their container logs.
func namespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("t-%06x", rand.IntN(1<<24))
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var pods corev1.PodList
		if err := k8s.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
			t.Logf("list pods: %v", err)
			return
		}
		for _, p := range pods.Items {
			out, _ := yaml.Marshal(p.Status)
			t.Logf("pod %s status:\n%s\nlogs:\n%s", p.Name, out, runner.PodLogs(ns, p.Name))
		}
	})
	return ns
}

func shPod(ns, name, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:    "main",
				Image:   shImage,
				Command: []string{"/bin/sh", "-c", script},
			}},
		},
	}
}

func getPod(g Gomega, ns, name string) *corev1.Pod {
	var p corev1.Pod
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p)).To(Succeed())
	return &p
}

// finished waits for the pod to reach a final phase and returns it.
func finished(g Gomega, ns, name string) *corev1.Pod {
	var pod *corev1.Pod
	g.Eventually(func(g Gomega) corev1.PodPhase {
		pod = getPod(g, ns, name)
		return pod.Status.Phase
	}, 30*time.Second, 100*time.Millisecond).Should(BeElementOf(corev1.PodSucceeded, corev1.PodFailed))
	return pod
}

func terminated(pod *corev1.Pod, container string) *corev1.ContainerStateTerminated {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, s := range list {
			if s.Name == container {
				return s.State.Terminated
			}
		}
	}
	return nil
}
