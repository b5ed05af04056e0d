package controllers

import (
	"context"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

func TestPlaceBesideClaimUsers(t *testing.T) {
	target := &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: "shop"},
		Spec:       backstopv1alpha1.BackupTargetSpec{Files: &backstopv1alpha1.FilesTarget{ClaimName: "uploads"}},
	}
	claim := func(modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: "shop"}, Spec: corev1.PersistentVolumeClaimSpec{AccessModes: modes}}
	}
	pod := func(name, node string, phase corev1.PodPhase, claim string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels},
			Spec: corev1.PodSpec{NodeName: node, Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
			}}}},
			Status: corev1.PodStatus{Phase: phase},
		}
	}
	userAffinity := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}},
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}},
		},
	}}}

	cases := []struct {
		name     string
		objs     []client.Object
		affinity *corev1.Affinity
		wantNode string
		wantErr  bool
	}{
		{name: "RWO claim used by a running pod", objs: objs(claim(corev1.ReadWriteOnce), pod("app", "node-b", corev1.PodRunning, "uploads", nil)), wantNode: "node-b"},
		{name: "RWX claim goes anywhere", objs: objs(claim(corev1.ReadWriteMany), pod("app", "node-b", corev1.PodRunning, "uploads", nil))},
		{name: "RWO claim unused", objs: objs(claim(corev1.ReadWriteOnce), pod("app", "node-b", corev1.PodRunning, "other", nil))},
		{name: "finished pods do not count", objs: objs(claim(corev1.ReadWriteOnce), pod("app", "node-b", corev1.PodSucceeded, "uploads", nil))},
		{name: "Backstop's own Jobs do not count", objs: objs(claim(corev1.ReadWriteOnce), pod("agent", "node-c", corev1.PodRunning, "uploads", map[string]string{LabelManagedBy: managedBy}))},
		{name: "the user's affinity is kept, ANDed", objs: objs(claim(corev1.ReadWriteOnce), pod("app", "node-b", corev1.PodRunning, "uploads", nil)), affinity: userAffinity, wantNode: "node-b"},
		{name: "RWOP claim in use is refused", objs: objs(claim(corev1.ReadWriteOncePod), pod("app", "node-b", corev1.PodRunning, "uploads", nil)), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(tc.objs...).Build()
			job := &batchv1.Job{}
			job.Spec.Template.Spec.Affinity = tc.affinity
			before := tc.affinity.DeepCopy()
			node, _, err := placeBesideClaimUsers(context.Background(), c, job, target)
			if tc.wantErr {
				if ue, ok := asUserError(err); !ok || ue.Reason != backstopv1alpha1.ReasonInvalidSpec {
					t.Fatalf("want an InvalidSpec user error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if node != tc.wantNode {
				t.Fatalf("node %q, want %q", node, tc.wantNode)
			}
			if tc.affinity != nil && tc.affinity.String() != before.String() {
				t.Fatal("the template's own affinity was changed")
			}
			aff := job.Spec.Template.Spec.Affinity
			if tc.wantNode == "" {
				if aff != tc.affinity {
					t.Fatalf("affinity set with no node to pin to: %v", aff)
				}
				return
			}
			terms := aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			wantTerms := 1
			if tc.affinity != nil {
				wantTerms = 2
			}
			if len(terms) != wantTerms {
				t.Fatalf("%d terms, want %d", len(terms), wantTerms)
			}
			for _, term := range terms {
				if len(term.MatchFields) != 1 || term.MatchFields[0].Key != "metadata.name" || term.MatchFields[0].Values[0] != tc.wantNode {
					t.Fatalf("term %v does not pin to %s", term, tc.wantNode)
				}
			}
		})
	}
}

func objs(o ...client.Object) []client.Object { return o }
