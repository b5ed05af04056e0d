// Package v1alpha1 holds the backstop.io/v1alpha1 API: BackupStore,
// BackupTarget, BackupSchedule, Backup and Restore.
//
// +kubebuilder:object:generate=true
// +groupName=backstop.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every Backstop kind.
	GroupVersion = schema.GroupVersion{Group: "backstop.io", Version: "v1alpha1"}

	// SchemeBuilder registers the Backstop kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Backstop kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
