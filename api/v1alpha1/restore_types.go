package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RestorePhase is where a Restore is in its life.
// +kubebuilder:validation:Enum=Pending;Verifying;Restoring;Succeeded;Failed
type RestorePhase string

const (
	RestorePending   RestorePhase = "Pending"
	RestoreVerifying RestorePhase = "Verifying"
	RestoreRestoring RestorePhase = "Restoring"
	RestoreSucceeded RestorePhase = "Succeeded"
	RestoreFailed    RestorePhase = "Failed"
)

// RestoreSpec is one wipe-and-restore of a target. It cannot change once created.
type RestoreSpec struct {
	// targetRef names the BackupTarget whose data is replaced. Restores of
	// one target run one at a time, in creation order (then by name): a
	// later one stays Pending, its Ready message naming the Restore it waits
	// for, until that one has finished, safety backup included.
	// +required
	TargetRef LocalObjectReference `json:"targetRef"`

	// source of the data to restore.
	// +required
	Source RestoreSource `json:"source"`

	// safetyBackup, when enabled, backs up the target's current data before it is replaced.
	// +optional
	SafetyBackup *SafetyBackup `json:"safetyBackup,omitempty"`

	// jobTemplate overrides parts of the restore Job.
	// +optional
	JobTemplate *JobTemplate `json:"jobTemplate,omitempty"`

	// lockTimeout bounds how long the restore waits for a lock that another
	// session holds on the target's tables (an application's open
	// transaction) before it fails with TargetBusy, changing nothing. While
	// it waits, the server queues new queries on those tables behind it.
	// Defaults to 1m. A files restore takes no locks and ignores it.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="lockTimeout must be between 1s and 1h"
	LockTimeout *metav1.Duration `json:"lockTimeout,omitempty"`
}

// RestoreSource is exactly one of a Backup, a path in a store, or the latest
// backup of a target name in a store (the last two serve restores in another cluster).
// +kubebuilder:validation:XValidation:rule="[has(self.backupRef), has(self.path), has(self.latestOf)].filter(x, x).size() == 1",message="exactly one of source.backupRef, source.path or source.latestOf must be set"
// +kubebuilder:validation:XValidation:rule="has(self.backupRef) != has(self.storeRef)",message="source.storeRef is required with source.path or source.latestOf, and not allowed with source.backupRef"
type RestoreSource struct {
	// backupRef names a Backup in this namespace.
	// +optional
	BackupRef *LocalObjectReference `json:"backupRef,omitempty"`

	// storeRef names the BackupStore that holds path or latestOf.
	// +optional
	StoreRef *LocalObjectReference `json:"storeRef,omitempty"`

	// path of an artifact directory in the store, relative to its prefix
	// (<namespace>/<target>/<backup>).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..' || p == '')",message="source.path must be relative, without empty or '..' segments"
	Path string `json:"path,omitempty"`

	// latestOf restores the newest complete backup of the target of this name
	// (in this namespace's part of the store). The operator lists the store
	// to find it, so a volume store, which only Jobs reach, cannot be used.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	LatestOf string `json:"latestOf,omitempty"`
}

// SafetyBackup backs up the current data before a restore replaces it.
type SafetyBackup struct {
	// enabled turns the safety backup on.
	// +required
	Enabled bool `json:"enabled"`

	// storeRef names the store for the safety backup. Defaults to the store of the source.
	// +optional
	StoreRef *LocalObjectReference `json:"storeRef,omitempty"`
}

// RestoredArtifact says which artifact a Restore used.
type RestoredArtifact struct {
	// backupName of the Backup, when the source was one.
	// +optional
	BackupName string `json:"backupName,omitempty"`

	// storeName of the BackupStore the artifact was read from.
	// +optional
	StoreName string `json:"storeName,omitempty"`

	// path of the artifact directory in the store.
	// +optional
	Path string `json:"path,omitempty"`

	// sha256 of the stored artifact that was verified and restored. Set when
	// the source is resolved (from the Backup or the manifest) or by the
	// verify Job; the verify and restore Jobs refuse an artifact of another
	// digest.
	// +optional
	SHA256 string `json:"sha256,omitempty"`
}

// RestoreStatus is the record of the restore.
type RestoreStatus struct {
	ObjectStatus `json:",inline"`

	// phase: Pending, Verifying, Restoring, Succeeded or Failed.
	// +optional
	Phase RestorePhase `json:"phase,omitempty"`

	// startTime is when the restore started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the restore ended, well or not.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// jobName names the Job that runs the agent.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// safetyBackupName names the Backup taken of the current data first.
	// +optional
	SafetyBackupName string `json:"safetyBackupName,omitempty"`

	// artifact that was (or is being) restored.
	// +optional
	Artifact *RestoredArtifact `json:"artifact,omitempty"`

	// reason of a failure (IntegrityMismatch, DecryptionFailed, ...); docs/reasons.md lists
	// every reason, what it means and what to do.
	// +optional
	Reason string `json:"reason,omitempty"`

	// message of a failure, for a human.
	// +optional
	Message string `json:"message,omitempty"`
}

// Restore replaces a target's data with a verified backup, once.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=brestore,categories=backstop
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Restore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the restore to run; immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new Restore instead"
	Spec RestoreSpec `json:"spec"`

	// status is the record of the restore.
	// +optional
	Status RestoreStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// RestoreList is a list of Restores.
type RestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Restore `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &Restore{}, &RestoreList{})
}
