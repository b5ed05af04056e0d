package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DrillPhase is where a BackupDrill is in its life.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type DrillPhase string

const (
	DrillPending   DrillPhase = "Pending"
	DrillRunning   DrillPhase = "Running"
	DrillSucceeded DrillPhase = "Succeeded"
	DrillFailed    DrillPhase = "Failed"
)

// DrillCheck is one SQL query a drill runs against the restored data, with
// the result it must print.
// +kubebuilder:validation:XValidation:rule="!(self.name in ['integrity', 'tables', 'files'])",message="integrity, tables and files are the names of the drill's own checks"
type DrillCheck struct {
	// name of the check, as the drill reports it: lower case letters,
	// digits and '-', unique among the checks of a drill (the target's
	// drillChecks included).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// sql is the query. It must print a single value: one row of one column.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	SQL string `json:"sql"`

	// expect is the exact text the query prints as its single value, as the
	// engine's client prints it: `t` for a PostgreSQL boolean true, `1` for
	// a MariaDB one.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Expect string `json:"expect"`
}

// DrillSettings say how drills run: the same on a BackupDrill and on a
// schedule's drill policy.
type DrillSettings struct {
	// checks are SQL queries run against the restored data, after the
	// BackupTarget's drillChecks. A query that fails or prints anything else
	// than expect fails the drill with reason CheckFailed. Not allowed for
	// files backups.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(c, self.exists_one(x, x.name == c.name))",message="check names must be unique"
	Checks []DrillCheck `json:"checks,omitempty"`

	// scratchTargetRef names a BackupTarget of the backup's engine to restore
	// into instead of a throwaway server inside the drill's pod: for data
	// too big for the pod's scratch space, or a server version the image
	// lacks. Its data is replaced by every drill. It must not be a target
	// that any BackupSchedule of the namespace backs up, nor the backup's
	// own target.
	// +optional
	ScratchTargetRef *LocalObjectReference `json:"scratchTargetRef,omitempty"`

	// timeout is the drill's deadline, from the start of its Job: the Job's
	// activeDeadlineSeconds (over jobTemplate.activeDeadlineSeconds), and the
	// agent stops a little before it with reason DeadlineExceeded. Defaults
	// to 1h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="timeout must be between 1m and 168h"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// scratchSize is the size limit of the drill pod's scratch emptyDir,
	// which holds the download and the throwaway server's data. A backup
	// that cannot fit fails the drill with reason ScratchTooSmall, naming
	// the size needed. Defaults to 10Gi.
	// +optional
	// +kubebuilder:default="10Gi"
	ScratchSize *resource.Quantity `json:"scratchSize,omitempty"`

	// jobTemplate overrides parts of the drill Job. The throwaway server runs
	// in the agent's container: give it the memory it needs in resources.
	// +optional
	JobTemplate *JobTemplate `json:"jobTemplate,omitempty"`
}

// BackupDrillSpec is one restore drill of a Backup. It cannot change once created.
type BackupDrillSpec struct {
	// backupRef names the Backup to drill; it must have Succeeded.
	// +required
	BackupRef LocalObjectReference `json:"backupRef"`

	DrillSettings `json:",inline"`
}

// DrillCheckResult is the outcome of one check of a drill.
type DrillCheckResult struct {
	// name of the check: integrity, tables or files (the drill's own), or
	// the name of a user check.
	// +required
	Name string `json:"name"`

	// passed is true when the check held.
	// +required
	Passed bool `json:"passed"`

	// message says what the check found when it did not hold.
	// +optional
	Message string `json:"message,omitempty"`
}

// DrillOutcome is what a drill found, as a BackupDrill and the Backup it
// verified both show it.
type DrillOutcome struct {
	// checks, in the order they ran: integrity, then tables (or files), then
	// the user checks. A check that did not run is left out.
	// +optional
	// +listType=atomic
	Checks []DrillCheckResult `json:"checks,omitempty"`

	// checksPassed counts the checks that held, over all checks that ran:
	// "3/3".
	// +optional
	ChecksPassed string `json:"checksPassed,omitempty"`

	// restoreDuration is the time to restore: from the start of the download
	// to the restored data being ready, server start included.
	// +optional
	RestoreDuration *metav1.Duration `json:"restoreDuration,omitempty"`

	// tables and rows restored (postgres, mysql).
	// +optional
	Tables int64 `json:"tables,omitempty"`
	// +optional
	Rows int64 `json:"rows,omitempty"`

	// files and bytes restored (files).
	// +optional
	Files int64 `json:"files,omitempty"`
	// +optional
	Bytes int64 `json:"bytes,omitempty"`

	// server the backup was restored into: the throwaway server's version,
	// or the scratch target.
	// +optional
	Server string `json:"server,omitempty"`
}

// BackupDrillStatus is the record of a drill.
type BackupDrillStatus struct {
	ObjectStatus `json:",inline"`

	// phase: Pending, Running, Succeeded or Failed.
	// +optional
	Phase DrillPhase `json:"phase,omitempty"`

	// jobName names the Job that runs the drill.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// startTime is when the drill Job was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the drill ended, well or not.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	DrillOutcome `json:",inline"`

	// reason of a failure (CheckFailed, ScratchTooSmall, DrillServerFailed,
	// ...); docs/reasons.md lists every reason, what it means and what to do.
	// +optional
	Reason string `json:"reason,omitempty"`

	// message of a failure, for a human.
	// +optional
	Message string `json:"message,omitempty"`
}

// BackupDrill restores a Backup into a throwaway server (or a scratch
// target), checks what arrived, and records how long it took. The Backup's
// Verified condition follows its newest finished drill.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bdrill,categories=backstop
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.spec.backupRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Checks",type=string,JSONPath=`.status.checksPassed`
// +kubebuilder:printcolumn:name="Time To Restore",type=string,JSONPath=`.status.restoreDuration`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupDrill struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the drill to run; immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new BackupDrill instead"
	Spec BackupDrillSpec `json:"spec"`

	// status is the record of the drill.
	// +optional
	Status BackupDrillStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// BackupDrillList is a list of BackupDrills.
type BackupDrillList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupDrill `json:"items"`
}

// DrillPolicy makes a schedule drill its backups.
type DrillPolicy struct {
	// schedule of the drills in cron syntax, in the schedule's timeZone:
	// at each due time the newest successful Backup is drilled, unless it
	// has been already. Empty: every Backup of the schedule is drilled once
	// it succeeds (when drills are turned on, the newest successful one
	// first; older ones are not drilled).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.contains('TZ=') && !self.contains('CRON_TZ=')",message="drill.schedule must not carry a time zone; use spec.timeZone"
	Schedule string `json:"schedule,omitempty"`

	DrillSettings `json:",inline"`
}

// BackupVerification is what the newest finished drill of a Backup found.
type BackupVerification struct {
	// drillName names the BackupDrill.
	// +required
	DrillName string `json:"drillName"`

	// time is when the drill finished.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// passed and failed count the drill's checks.
	// +optional
	Passed int32 `json:"passed,omitempty"`
	// +optional
	Failed int32 `json:"failed,omitempty"`

	DrillOutcome `json:",inline"`
}

func init() {
	knownTypes = append(knownTypes, &BackupDrill{}, &BackupDrillList{})
}
