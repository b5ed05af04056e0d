package v1alpha1

// Condition types shared by every kind. Ready is the summary; Reconciling and
// Stalled are abnormal-true, as kstatus expects.
const (
	// ConditionReady is True when the object is usable (a store or target) or
	// has finished well (a Backup or Restore).
	ConditionReady = "Ready"
	// ConditionReconciling is True while work is in progress.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when only the user can fix what is wrong.
	ConditionStalled = "Stalled"
	// ConditionEncryptionDisabled is True on a BackupStore that stores plaintext.
	ConditionEncryptionDisabled = "EncryptionDisabled"
	// ConditionVerified on a Succeeded Backup: True when its newest finished
	// BackupDrill passed, False (with the drill's reason) when it failed,
	// Unknown (NotDrilled) until a drill has finished.
	ConditionVerified = "Verified"
)

// Reasons. A condition's reason is also the reason of the event that reports it.
const (
	// ReasonSucceeded: the object is ready, or the run finished well.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: work is under way.
	ReasonProgressing = "Progressing"
	// ReasonPending: waiting for something outside the object (a store, a target, another run).
	ReasonPending = "Pending"
	// ReasonInvalidSpec: the spec is valid by the schema but cannot be acted on.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonInvalidSchedule: the cron expression or time zone does not parse.
	ReasonInvalidSchedule = "InvalidSchedule"
	// ReasonSecretNotFound: a referenced Secret, or a key in it, is missing.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonStoreNotFound: the referenced BackupStore does not exist.
	ReasonStoreNotFound = "StoreNotFound"
	// ReasonStoreNotReady: the referenced BackupStore is not Ready.
	ReasonStoreNotReady = "StoreNotReady"
	// ReasonTargetNotFound: the referenced BackupTarget does not exist.
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonTargetNotReady: the referenced BackupTarget is not Ready.
	ReasonTargetNotReady = "TargetNotReady"
	// ReasonBackupNotFound: the referenced Backup does not exist or has no artifact.
	ReasonBackupNotFound = "BackupNotFound"
	// ReasonStoreUnreachable: the store did not answer.
	ReasonStoreUnreachable = "StoreUnreachable"
	// ReasonAuthenticationFailed: the store refused the credentials.
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonBucketNotFound: the bucket or container does not exist.
	ReasonBucketNotFound = "BucketNotFound"
	// ReasonTargetUnreachable: the database did not answer.
	ReasonTargetUnreachable = "TargetUnreachable"
	// ReasonTargetAuthenticationFailed: the database refused the credentials.
	ReasonTargetAuthenticationFailed = "TargetAuthenticationFailed"
	// ReasonDatabaseNotFound: the database server answered, but a database to
	// back up (or, for PostgreSQL, to restore into) does not exist on it.
	ReasonDatabaseNotFound = "DatabaseNotFound"
	// ReasonDumpFailed: the engine's dump did not complete; nothing was committed.
	ReasonDumpFailed = "DumpFailed"
	// ReasonDumpIncomplete: the dump tool reported success but its output was
	// cut short (no completion trailer, no end of archive); nothing was
	// committed. A Restore reports it for an artifact holding such a dump.
	ReasonDumpIncomplete = "DumpIncomplete"
	// ReasonIntegrityMismatch: a checksum or the age authentication failed.
	ReasonIntegrityMismatch = "IntegrityMismatch"
	// ReasonDecryptionFailed: the identity or passphrase does not open the artifact.
	ReasonDecryptionFailed = "DecryptionFailed"
	// ReasonManifestNotFound: the artifact has no manifest, so it is not a backup.
	ReasonManifestNotFound = "ManifestNotFound"
	// ReasonEngineMismatch: the artifact belongs to another engine than the target.
	ReasonEngineMismatch = "EngineMismatch"
	// ReasonRestoreFailed: loading the data failed; the target was left as it was.
	ReasonRestoreFailed = "RestoreFailed"
	// ReasonDeadlineExceeded: the Job ran past activeDeadlineSeconds.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonJobFailed: the Job failed without a result from the agent.
	ReasonJobFailed = "JobFailed"
	// ReasonSuspended: the schedule is suspended.
	ReasonSuspended = "Suspended"
	// ReasonPlaintextStorage: the store is configured with encryption none.
	ReasonPlaintextStorage = "PlaintextStorage"
	// ReasonNotDrilled: no drill of the Backup has finished yet.
	ReasonNotDrilled = "NotDrilled"
	// ReasonDrillPassed: the newest drill of the Backup restored it and every check held.
	ReasonDrillPassed = "DrillPassed"
	// ReasonCheckFailed: a drill restored the backup, but a check of what
	// arrived failed; the drill's checks name it.
	ReasonCheckFailed = "CheckFailed"
	// ReasonScratchTooSmall: the drill's scratch space cannot hold the
	// restored data; the message names the size needed.
	ReasonScratchTooSmall = "ScratchTooSmall"
	// ReasonDrillServerFailed: the drill's throwaway server did not start;
	// the message carries its log tail.
	ReasonDrillServerFailed = "DrillServerFailed"
)
