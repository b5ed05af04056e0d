package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConcurrencyPolicy says what happens when a run is due while the previous one still runs.
// +kubebuilder:validation:Enum=Forbid;Allow;Replace
type ConcurrencyPolicy string

const (
	// ConcurrencyForbid skips the new run while one is active.
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
	// ConcurrencyAllow starts the new run alongside the active one.
	ConcurrencyAllow ConcurrencyPolicy = "Allow"
	// ConcurrencyReplace deletes the running Backups of earlier due times
	// (a Replaced event names each one and its replacement) and starts the
	// new one.
	ConcurrencyReplace ConcurrencyPolicy = "Replace"
)

// BackupScheduleSpec is a cron schedule of backups of one target into one store.
type BackupScheduleSpec struct {
	// targetRef names the BackupTarget to back up.
	// +required
	TargetRef LocalObjectReference `json:"targetRef"`

	// storeRef names the BackupStore to write to.
	// +required
	StoreRef LocalObjectReference `json:"storeRef"`

	// schedule in cron syntax: five fields (minute hour day-of-month month
	// day-of-week), or a descriptor such as @daily or @every 6h.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.contains('TZ=') && !self.contains('CRON_TZ=')",message="schedule must not carry a time zone; use spec.timeZone"
	Schedule string `json:"schedule"`

	// timeZone of the schedule, an IANA name such as Europe/Paris. Defaults to UTC.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^(UTC|Local|[A-Za-z]+(/[A-Za-z0-9_+-]+){1,2})$`
	TimeZone *string `json:"timeZone,omitempty"`

	// suspend stops new runs; runs in progress finish. A due time that
	// passes while the schedule is suspended is skipped, never run on
	// resume: it is recorded with a SkippedSuspended event and in the Ready
	// message, and lastScheduleTime moves past it. Due times that pass while
	// the operator is down count as suspended if the schedule was suspended
	// when the operator last saw it.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// concurrencyPolicy when a run is due while one of an earlier due time is
	// active: Forbid skips the new run (a SkippedConcurrent event names the
	// running Backup), Allow starts it beside, Replace deletes the running
	// Backups of earlier due times (a Replaced event names both) and starts
	// it. A Backup is active until its Job is over. Defaults to Forbid.
	// +optional
	// +kubebuilder:default=Forbid
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`

	// startingDeadlineSeconds: a run that could not start within this many
	// seconds of its time is skipped. After downtime at most one missed run is
	// started, and only inside this deadline. Every due time that does not run
	// is recorded: a MissedSchedule event names it, or says how many were
	// missed and between which due times.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=31536000
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`

	// retention prunes older Backups of this schedule. The newest successful
	// Backup is never pruned, nor the newest verified one (its newest drill
	// passed).
	// +optional
	Retention *RetentionPolicy `json:"retention,omitempty"`

	// deletionPolicy given to the Backups this schedule creates. Defaults to Delete.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// jobTemplate overrides parts of the backup Jobs.
	// +optional
	JobTemplate *JobTemplate `json:"jobTemplate,omitempty"`

	// drill turns on restore drills of this schedule's Backups: each drill
	// is a BackupDrill owned by its Backup. Retention never prunes the
	// newest verified Backup.
	// +optional
	Drill *DrillPolicy `json:"drill,omitempty"`
}

// RetentionPolicy keeps Backups by count and by calendar bucket, like restic's
// forget policy: a Backup is kept when any rule keeps it.
// +kubebuilder:validation:XValidation:rule="[has(self.keepLast), has(self.keepHourly), has(self.keepDaily), has(self.keepWeekly), has(self.keepMonthly), has(self.keepYearly)].exists(x, x) || has(self.failedHistoryLimit)",message="retention needs at least one keep rule or failedHistoryLimit"
type RetentionPolicy struct {
	// keepLast keeps the newest N successful Backups.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	KeepLast *int32 `json:"keepLast,omitempty"`

	// keepHourly keeps the newest successful Backup of each of the last N hours that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepHourly *int32 `json:"keepHourly,omitempty"`

	// keepDaily keeps the newest successful Backup of each of the last N days that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepDaily *int32 `json:"keepDaily,omitempty"`

	// keepWeekly keeps the newest successful Backup of each of the last N ISO weeks that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepWeekly *int32 `json:"keepWeekly,omitempty"`

	// keepMonthly keeps the newest successful Backup of each of the last N months that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepMonthly *int32 `json:"keepMonthly,omitempty"`

	// keepYearly keeps the newest successful Backup of each of the last N years that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepYearly *int32 `json:"keepYearly,omitempty"`

	// failedHistoryLimit keeps the newest N failed Backups. Defaults to 3,
	// and applies with retention unset too.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	FailedHistoryLimit *int32 `json:"failedHistoryLimit,omitempty"`
}

// BackupScheduleStatus is the observed state of a BackupSchedule.
type BackupScheduleStatus struct {
	ObjectStatus `json:",inline"`

	// lastScheduleTime is the newest due time handled: a Backup was created
	// for it, or it was skipped (suspended, concurrencyPolicy Forbid, or past
	// startingDeadlineSeconds) and an event says so.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// nextScheduleTime is when the next Backup is due.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`

	// lastSuccessfulTime is when the newest Succeeded Backup completed.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`

	// lastBackupName names the newest Backup created by this schedule.
	// +optional
	LastBackupName string `json:"lastBackupName,omitempty"`

	// lastVerifiedBackup names the newest Backup of this schedule whose
	// newest drill passed.
	// +optional
	LastVerifiedBackup string `json:"lastVerifiedBackup,omitempty"`

	// lastVerifiedTime is when that drill finished.
	// +optional
	LastVerifiedTime *metav1.Time `json:"lastVerifiedTime,omitempty"`

	// lastDrillScheduleTime is the newest due time of spec.drill.schedule
	// handled.
	// +optional
	LastDrillScheduleTime *metav1.Time `json:"lastDrillScheduleTime,omitempty"`

	// nextDrillTime is when the next drill of spec.drill.schedule is due.
	// +optional
	NextDrillTime *metav1.Time `json:"nextDrillTime,omitempty"`

	// active names the Backups of this schedule that are still running.
	// +optional
	// +listType=set
	Active []string `json:"active,omitempty"`
}

// BackupSchedule creates Backups of a target on a cron schedule and prunes old ones.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bsched,categories=backstop
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Last Backup",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Last Verified",type=date,JSONPath=`.status.lastVerifiedTime`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupSchedule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired schedule.
	// +required
	Spec BackupScheduleSpec `json:"spec"`

	// status is the observed state of the schedule.
	// +optional
	Status BackupScheduleStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// BackupScheduleList is a list of BackupSchedules.
type BackupScheduleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupSchedule `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &BackupSchedule{}, &BackupScheduleList{})
}
