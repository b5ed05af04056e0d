package controllers

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions say what the operator's informers hold, so that its memory
// grows with what it manages, not with the cluster:
//   - no object keeps its managedFields, which nothing here reads;
//   - only Jobs Backstop created are cached, and without their pod
//     template: the controllers read a Job's metadata and status, never its
//     spec (a Job is never updated from the cache).
//
// Secrets are not cached at all (see the manager's client options).
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {
				Label:     labels.SelectorFromSet(labels.Set{LabelManagedBy: managedBy}),
				Transform: slimJob,
			},
		},
	}
}

// slimJob drops what the cache need not hold of a Job.
func slimJob(obj any) (any, error) {
	if job, ok := obj.(*batchv1.Job); ok {
		job.ManagedFields = nil
		job.Spec.Template = corev1.PodTemplateSpec{}
	}
	return obj, nil
}
