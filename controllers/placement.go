package controllers

import (
	"context"
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// placeBesideClaimUsers pins a files target's Job to the node of a running
// pod that mounts the target's claim, when the claim is ReadWriteOnce: such
// a volume is attached to one node at a time, and a Job scheduled on
// another node would wait for it forever. It returns the node and the pod,
// or "" when the Job may go anywhere. A ReadWriteOncePod claim in use cannot
// be mounted by a second pod at all: that is a user error.
func placeBesideClaimUsers(ctx context.Context, reader client.Reader, job *batchv1.Job, target *backstopv1alpha1.BackupTarget) (node, pod string, err error) {
	if target.Spec.Files == nil {
		return "", "", nil
	}
	claimName := target.Spec.Files.ClaimName
	claim := &corev1.PersistentVolumeClaim{}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: target.Namespace, Name: claimName}, claim); err != nil {
		if apierrors.IsNotFound(err) {
			// The Job's pod reports the missing claim; nothing to place.
			return "", "", nil
		}
		return "", "", err
	}
	modes := claim.Spec.AccessModes
	rwo := slices.Contains(modes, corev1.ReadWriteOnce)
	rwop := slices.Contains(modes, corev1.ReadWriteOncePod)
	if !rwo && !rwop {
		return "", "", nil
	}
	if slices.Contains(modes, corev1.ReadWriteMany) || slices.Contains(modes, corev1.ReadOnlyMany) {
		return "", "", nil
	}
	pods := &corev1.PodList{}
	if err := reader.List(ctx, pods, client.InNamespace(target.Namespace)); err != nil {
		return "", "", err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if p.Labels[LabelManagedBy] == managedBy || !mountsClaim(p, claimName) {
			continue
		}
		if rwop {
			return "", "", userErrorf(backstopv1alpha1.ReasonInvalidSpec,
				"claim %s is ReadWriteOncePod and pod %s uses it: no other pod can mount it; use ReadWriteOnce or stop the pod", claimName, p.Name)
		}
		pinToNode(job, p.Spec.NodeName)
		ctrl.LoggerFrom(ctx).Info("Placed the Job beside the pod that uses its ReadWriteOnce claim", "job", job.Name, "node", p.Spec.NodeName, "pod", p.Name, "claim", claimName)
		return p.Spec.NodeName, p.Name, nil
	}
	return "", "", nil
}

func mountsClaim(p *corev1.Pod, claim string) bool {
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
			return true
		}
	}
	return false
}

// pinToNode adds a required node affinity to the node's name, to every term
// the Job's template already has (terms are ORed, their fields ANDed), as
// the DaemonSet controller places its pods.
func pinToNode(job *batchv1.Job, node string) {
	spec := &job.Spec.Template.Spec
	// A copy: the template's affinity is the Backup's or Restore's own.
	spec.Affinity = spec.Affinity.DeepCopy()
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := spec.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	req := corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}
	terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		terms = []corev1.NodeSelectorTerm{{}}
	}
	for i := range terms {
		terms[i].MatchFields = append(terms[i].MatchFields, req)
	}
	na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = terms
}

// placementMessage says where a Job was placed, for a condition message.
func placementMessage(node, pod string) string {
	if node == "" {
		return ""
	}
	return fmt.Sprintf(" on node %s beside pod %s (ReadWriteOnce claim)", node, pod)
}
