package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeletionPolicy says what happens to the artifact when its Backup is deleted.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	// DeletionDelete removes the artifact from the store with the Backup.
	DeletionDelete DeletionPolicy = "Delete"
	// DeletionRetain keeps the artifact in the store.
	DeletionRetain DeletionPolicy = "Retain"
)

// BackupPhase is where a Backup is in its life.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type BackupPhase string

const (
	BackupPending   BackupPhase = "Pending"
	BackupRunning   BackupPhase = "Running"
	BackupSucceeded BackupPhase = "Succeeded"
	BackupFailed    BackupPhase = "Failed"
)

// BackupSpec is one backup of a target into a store. It cannot change once created.
type BackupSpec struct {
	// scheduleRef names the BackupSchedule that created this Backup; unset for
	// an on-demand Backup.
	// +optional
	ScheduleRef *LocalObjectReference `json:"scheduleRef,omitempty"`

	// targetRef names the BackupTarget to back up.
	// +required
	TargetRef LocalObjectReference `json:"targetRef"`

	// storeRef names the BackupStore to write to.
	// +required
	StoreRef LocalObjectReference `json:"storeRef"`

	// deletionPolicy: Delete (the default) removes the artifact from the store
	// when this Backup is deleted; Retain keeps it. In a namespace being
	// deleted, an artifact whose store or store Secret is already gone is
	// left in the store (docs/install.md, "Deleting a namespace").
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// jobTemplate overrides parts of the backup Job.
	// +optional
	JobTemplate *JobTemplate `json:"jobTemplate,omitempty"`
}

// BackupStatus is the record of one backup run.
type BackupStatus struct {
	ObjectStatus `json:",inline"`

	// phase: Pending, Running, Succeeded or Failed. Succeeded means the
	// operator read the manifest back from the store, found it agrees with
	// the size and SHA-256 the agent computed as it uploaded, and found the
	// data object at that size; a volume store, reached only by Jobs, has
	// the agent's own check. Running while the store cannot be read.
	// +optional
	Phase BackupPhase `json:"phase,omitempty"`

	// startTime is when the agent started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the run ended, well or not.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// jobName names the Job that runs the agent.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// engine of the target at the time of the backup.
	// +optional
	Engine string `json:"engine,omitempty"`

	// artifactPath is the artifact's directory in the store, relative to the
	// store's prefix: <namespace>/<target>/<backup>.
	// +optional
	ArtifactPath string `json:"artifactPath,omitempty"`

	// dataObject is the artifact's data object name inside artifactPath.
	// +optional
	DataObject string `json:"dataObject,omitempty"`

	// storedBytes is the size of the artifact as stored (compressed and encrypted).
	// +optional
	StoredBytes int64 `json:"storedBytes,omitempty"`

	// storedSize is storedBytes for people, in the notation of Kubernetes
	// quantities (3.6Ki, 1.2Gi): what the Size column shows.
	// +optional
	StoredSize string `json:"storedSize,omitempty"`

	// plaintextBytes is the size of the engine's dump.
	// +optional
	PlaintextBytes int64 `json:"plaintextBytes,omitempty"`

	// sha256 of the stored artifact: two Backups with the same value hold the same bytes.
	// +optional
	SHA256 string `json:"sha256,omitempty"`

	// plaintextSHA256 of the engine's dump.
	// +optional
	PlaintextSHA256 string `json:"plaintextSHA256,omitempty"`

	// contentSHA256 is the digest of the data: the SHA-256 of the dump
	// without the lines its tool makes different in every run (pg_dump's
	// \restrict and \unrestrict key lines, mariadb-dump's completion line);
	// of the whole archive for files. Two Backups of a target with the same
	// value hold the same data.
	// +optional
	ContentSHA256 string `json:"contentSHA256,omitempty"`

	// sameContentAs names the previous successful Backup of the same target
	// when its contentSHA256 equals this one's: the data did not change
	// between the two.
	// +optional
	SameContentAs string `json:"sameContentAs,omitempty"`

	// reason of a failure (DumpFailed, StoreUnreachable, ...); docs/reasons.md lists
	// every reason, what it means and what to do.
	// +optional
	Reason string `json:"reason,omitempty"`

	// message of a failure, for a human.
	// +optional
	Message string `json:"message,omitempty"`

	// verification is what the newest finished BackupDrill of this Backup
	// found; the Verified condition says whether it passed.
	// +optional
	Verification *BackupVerification `json:"verification,omitempty"`
}

// Backup is one backup run and its record. Deleting it deletes its artifact,
// unless deletionPolicy is Retain.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bk,categories=backstop
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.status.storedSize`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Verified",type=string,JSONPath=`.status.conditions[?(@.type=="Verified")].status`
// +kubebuilder:printcolumn:name="Same As",type=string,JSONPath=`.status.sameContentAs`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Backup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the backup to run; immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new Backup instead"
	Spec BackupSpec `json:"spec"`

	// status is the record of the run.
	// +optional
	Status BackupStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// BackupList is a list of Backups.
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backup `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &Backup{}, &BackupList{})
}
