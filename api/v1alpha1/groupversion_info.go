// Package v1alpha1 holds the backstop.io/v1alpha1 API: BackupStore,
// BackupTarget, BackupSchedule, Backup and Restore.
//
// +kubebuilder:object:generate=true
// +groupName=backstop.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every Backstop kind.
	GroupVersion = schema.GroupVersion{Group: "backstop.io", Version: "v1alpha1"}

	// SchemeBuilder collects the functions that register the Backstop kinds.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the Backstop kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme

	// knownTypes are filled by each kind's init.
	knownTypes []runtime.Object
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, knownTypes...)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
