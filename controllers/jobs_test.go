package controllers

import (
	"context"
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podsByVersion answers a pod list as an API server would: from its watch
// cache (resourceVersion "0"), which may be behind, or consistently ("").
type podsByVersion struct {
	client.Reader
	cached, current []corev1.Pod
	reads           []string
}

func (r *podsByVersion) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	rv := o.AsListOptions().ResourceVersion
	r.reads = append(r.reads, rv)
	items := r.current
	if rv == "0" {
		items = r.cached
	}
	list.(*corev1.PodList).Items = items
	return nil
}

func agentPod(name string, created time.Time, phase corev1.PodPhase, exitCode int32, message string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", CreationTimestamp: metav1.NewTime(created)},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
			Name:  "agent",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode, Message: message}},
		}}},
	}
}

func TestReadAgentResult_CachedPodsOnlyWhenTheyAreAllThere(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	failed := agentPod("b-1", t0, corev1.PodFailed, 1, `{"phase":"Failed","reason":"TargetUnreachable","message":"first try"}`)
	succeeded := agentPod("b-2", t0.Add(time.Minute), corev1.PodSucceeded, 0, `{"phase":"Succeeded","artifactPath":"shop/orders/b"}`)
	// The Job failed once, then succeeded.
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "b-backup", Namespace: "shop"},
		Status:     batchv1.JobStatus{Succeeded: 1, Failed: 1},
	}

	for _, tc := range []struct {
		name      string
		cached    []corev1.Pod
		wantReads []string
	}{
		{"the cache holds both ended pods", []corev1.Pod{failed, succeeded}, []string{"0"}},
		// Read from the cache alone, the first try's failure would be taken
		// for the Job's result.
		{"the cache is behind", []corev1.Pod{failed}, []string{"0", ""}},
		{"the cache shows the last pod still running", []corev1.Pod{failed, agentPod("b-2", t0.Add(time.Minute), corev1.PodRunning, 0, "")}, []string{"0", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &podsByVersion{cached: tc.cached, current: []corev1.Pod{failed, succeeded}}
			res, err := readAgentResult(context.Background(), r, job)
			if err != nil {
				t.Fatal(err)
			}
			if res == nil || res.Phase != "Succeeded" || res.ArtifactPath != "shop/orders/b" {
				t.Fatalf("result = %+v, want the second pod's success", res)
			}
			if !slices.Equal(r.reads, tc.wantReads) {
				t.Errorf("pods read at resourceVersions %q, want %q", r.reads, tc.wantReads)
			}
		})
	}
}
