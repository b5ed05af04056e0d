package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/agent"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/store"
)

// createJob creates an agent Job for owner. A Job of that name that exists
// already is the owner's from an earlier try, or someone else's; the cache
// holds only Backstop's Jobs, so which one is read from the API server.
func createJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, kind string, job *batchv1.Job) error {
	err := c.Create(ctx, job)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := &batchv1.Job{}
	if err := reader.Get(ctx, client.ObjectKeyFromObject(job), cur); err != nil {
		return err
	}
	if !metav1.IsControlledBy(cur, owner) {
		return userErrorf(backstopv1alpha1.ReasonInvalidSpec, "a Job named %s exists and does not belong to this %s", job.Name, kind)
	}
	return nil
}

// jobFinished says whether a Job is over; failedReason is set when it failed.
func jobFinished(job *batchv1.Job) (done bool, failedReason, failedMsg string) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return true, "", ""
		case batchv1.JobFailed:
			if c.Reason == batchv1.JobReasonDeadlineExceeded {
				return true, backstopv1alpha1.ReasonDeadlineExceeded, fmt.Sprintf("Job %s ran past its activeDeadlineSeconds: %s", job.Name, c.Message)
			}
			return true, backstopv1alpha1.ReasonJobFailed, fmt.Sprintf("Job %s failed (%s): %s", job.Name, c.Reason, c.Message)
		}
	}
	return false, "", ""
}

// jobStopped says whether a Job is over and none of its pods runs or is
// still terminating: its agent writes nothing more. (Kubernetes sets a Job's
// terminal condition only once its pods have ended; older versions did not
// for a failed Job, hence the counts.)
func jobStopped(job *batchv1.Job) bool {
	done, _, _ := jobFinished(job)
	return done && job.Status.Active == 0 && ptr.Deref(job.Status.Terminating, 0) == 0
}

// ownBackupJob reads a Backup's backup Job from the cache, or nil when it
// has none (or the Job of that name is someone else's). A cached Job can
// only be behind the API server, never ahead: one it shows stopped is.
func ownBackupJob(ctx context.Context, c client.Reader, bk *backstopv1alpha1.Backup) (*batchv1.Job, error) {
	job := &batchv1.Job{}
	err := c.Get(ctx, client.ObjectKey{Namespace: bk.Namespace, Name: jobName(bk.Name, "backup")}, job)
	if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(job, bk)) {
		return nil, nil
	}
	return job, err
}

// readAgentResult reads the agent's JSON result from the termination message
// of the finished Job's newest ended pod; nil when no pod left one.
//
// The pods are first read from the API server's watch cache, which answers
// at once, where a consistent read waits for that cache to catch up with
// etcd (at scale, most of the time a Backup's completion took). The cached
// answer is used only when it holds as many ended pods as the Job counts:
// an ended pod never runs again, so it then holds every one, the newest
// included. Else (the cache behind, or a counted pod deleted) the pods are
// read again, consistently.
func readAgentResult(ctx context.Context, c client.Reader, job *batchv1.Job) (*agent.Result, error) {
	items, err := listJobPods(ctx, c, job, "0")
	if err != nil {
		return nil, err
	}
	if endedPods(items) < job.Status.Succeeded+job.Status.Failed {
		if items, err = listJobPods(ctx, c, job, ""); err != nil {
			return nil, err
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[j].CreationTimestamp.Before(&items[i].CreationTimestamp) })
	for _, pod := range items {
		for _, cs := range pod.Status.ContainerStatuses {
			t := cs.State.Terminated
			if cs.Name != "agent" || t == nil || t.Message == "" {
				continue
			}
			var res agent.Result
			if err := json.Unmarshal([]byte(lastLine(t.Message)), &res); err != nil || res.Phase == "" {
				// FallbackToLogsOnError put log lines there instead.
				return &agent.Result{Phase: "Failed", Reason: backstopv1alpha1.ReasonJobFailed, Message: fmt.Sprintf("the agent exited with code %d: %s", t.ExitCode, oneLine(t.Message))}, nil
			}
			return &res, nil
		}
	}
	return nil, nil
}

// listJobPods lists the Job's pods at resourceVersion rv: "0" for the API
// server's cache, "" for a consistent read.
func listJobPods(ctx context.Context, c client.Reader, job *batchv1.Job, rv string) ([]corev1.Pod, error) {
	pods := &corev1.PodList{}
	err := c.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{batchv1.JobNameLabel: job.Name},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
	return pods.Items, err
}

func endedPods(pods []corev1.Pod) int32 {
	var n int32
	for i := range pods {
		if p := pods[i].Status.Phase; p == corev1.PodSucceeded || p == corev1.PodFailed {
			n++
		}
	}
	return n
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// oneLine is the last line of s, cut to a length fit for a status message.
func oneLine(s string) string {
	s = lastLine(s)
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// errManifestParse: the manifest was read but is not a manifest.
var errManifestParse = errors.New("manifest.json does not parse")

// readManifest reads <artifactPath>/manifest.json.
func readManifest(ctx context.Context, st store.Store, artifactPath string) (*manifest.Manifest, error) {
	rc, err := st.Get(ctx, path.Join(artifactPath, manifest.FileName))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, err
	}
	m := &manifest.Manifest{}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%w: %v", errManifestParse, err)
	}
	return m, nil
}
