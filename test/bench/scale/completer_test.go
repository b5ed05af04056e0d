package scale

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/backstop-io/backstop/internal/agent"
)

// completer plays the kubelet and the agent at once, as fast as it can: each
// agent pod the Job controller creates is marked Succeeded at once, its
// "agent" container terminated with exit code 0 and the agent's JSON result
// as termination message. The real Job controller (kube-controller-manager)
// then completes the Job, and the operator reads the result from the pod,
// exactly as with a real agent.
type completer struct {
	cs    kubernetes.Interface
	queue chan *corev1.Pod

	// delay, when set, says how long the agent of a pod "runs" before the
	// pod completes (the soak makes some outlast their schedule's interval).
	delay func(*corev1.Pod) time.Duration

	done   atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	errs   []string
}

func newCompleter(cs kubernetes.Interface, capacity int) *completer {
	return &completer{cs: cs, queue: make(chan *corev1.Pod, capacity)}
}

// enqueue hands over a new pod; it never blocks the informer (a full queue
// would mean more pods than the benchmark made Jobs, which it reports).
func (c *completer) enqueue(pod *corev1.Pod) {
	select {
	case c.queue <- pod:
	default:
		c.recordErr(fmt.Errorf("queue full: pod %s dropped", pod.Name))
	}
}

// run completes pods with the given number of workers until ctx ends.
func (c *completer) run(ctx context.Context, workers int) {
	for range workers {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case pod := <-c.queue:
					if c.delay != nil {
						if d := c.delay(pod); d > 0 {
							time.AfterFunc(d, func() { c.finish(ctx, pod) })
							continue
						}
					}
					c.finish(ctx, pod)
				}
			}
		}()
	}
}

func (c *completer) finish(ctx context.Context, pod *corev1.Pod) {
	if err := c.complete(ctx, pod); err != nil && ctx.Err() == nil {
		c.failed.Add(1)
		c.recordErr(err)
	} else {
		c.done.Add(1)
	}
}

func (c *completer) recordErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) < 10 {
		c.errs = append(c.errs, err.Error())
	}
}

func (c *completer) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

func (c *completer) complete(ctx context.Context, pod *corev1.Pod) error {
	pods := c.cs.CoreV1().Pods(pod.Namespace)
	first := true
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if !first {
			fresh, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			pod = fresh
		}
		first = false
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return nil
		}
		pod = pod.DeepCopy()
		setSucceeded(pod, time.Now())
		_, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

// setSucceeded writes what a kubelet writes for a pod whose only container
// exited 0 after the agent wrote its result to the termination log.
func setSucceeded(pod *corev1.Pod, now time.Time) {
	t := metav1.NewTime(now)
	image := ""
	var args []string
	if len(pod.Spec.Containers) > 0 {
		image = pod.Spec.Containers[0].Image
		args = pod.Spec.Containers[0].Args
	}
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.StartTime = &t
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: t},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: "PodCompleted", LastTransitionTime: t},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "PodCompleted", LastTransitionTime: t},
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name:    "agent",
		Image:   image,
		ImageID: image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode:   0,
			Reason:     "Completed",
			Message:    string(agentResult(argValue(args, "--artifact-path"), now).Encode()),
			StartedAt:  t,
			FinishedAt: t,
		}},
	}}
}

// agentResult is a successful backup result as the agent reports it.
func agentResult(artifactPath string, now time.Time) agent.Result {
	cipher := sha256.Sum256([]byte("ciphertext of " + artifactPath))
	plain := sha256.Sum256([]byte("plaintext of " + artifactPath))
	ts := now.UTC().Format(time.RFC3339)
	return agent.Result{
		Phase:           agent.PhaseSucceeded,
		Engine:          "postgres",
		ArtifactPath:    artifactPath,
		DataObject:      "data.sql.zst.age",
		StoredBytes:     4096,
		PlaintextBytes:  16384,
		SHA256:          hex.EncodeToString(cipher[:]),
		PlaintextSHA256: hex.EncodeToString(plain[:]),
		StartTime:       ts,
		CompletionTime:  ts,
	}
}

func argValue(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}
