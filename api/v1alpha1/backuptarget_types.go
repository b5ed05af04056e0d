package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupTargetSpec says what is backed up: exactly one engine.
// +kubebuilder:validation:XValidation:rule="[has(self.postgres), has(self.mysql), has(self.files)].filter(x, x).size() == 1",message="exactly one of spec.postgres, spec.mysql or spec.files must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.files) || !has(self.drillChecks)",message="drillChecks are SQL checks: not allowed on a files target"
type BackupTargetSpec struct {
	// postgres backs up one PostgreSQL database with pg_dump.
	// +optional
	Postgres *PostgresTarget `json:"postgres,omitempty"`

	// mysql backs up MySQL or MariaDB databases with mariadb-dump/mysqldump.
	// +optional
	MySQL *MySQLTarget `json:"mysql,omitempty"`

	// files backs up a directory of a PersistentVolumeClaim as a tar stream.
	// +optional
	Files *FilesTarget `json:"files,omitempty"`

	// drillChecks are SQL checks every drill of this target's Backups runs
	// first, before the drill's own: what any good backup of this database
	// shows (e.g. orders from the last two days). Not allowed on files targets.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	DrillChecks []DrillCheck `json:"drillChecks,omitempty"`
}

// TLSMode is how the agent secures its database connection.
// +kubebuilder:validation:Enum=disable;prefer;require;verify-ca;verify-full
type TLSMode string

const (
	TLSDisable    TLSMode = "disable"
	TLSPrefer     TLSMode = "prefer"
	TLSRequire    TLSMode = "require"
	TLSVerifyCA   TLSMode = "verify-ca"
	TLSVerifyFull TLSMode = "verify-full"
)

// DatabaseConnection is where a database server listens and how to log in.
type DatabaseConnection struct {
	// host name or address of the server, usually a Service name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$`
	Host string `json:"host"`

	// port of the server. Defaults to the engine's standard port.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// tlsMode of the connection. Defaults to prefer. The MariaDB client
	// cannot check a certificate without its host name, so for a mysql
	// target verify-ca checks both, as verify-full does.
	// +optional
	// +kubebuilder:default=prefer
	TLSMode TLSMode `json:"tlsMode,omitempty"`

	// caSecretRef selects a PEM CA bundle for verify-ca and verify-full.
	// A postgres target needs it for those modes.
	// +optional
	CASecretRef *SecretKeySelector `json:"caSecretRef,omitempty"`

	// credentials to log in with.
	// +required
	Credentials DatabaseCredentials `json:"credentials"`
}

// DatabaseCredentials are a user name and a password, the password always from a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.username) != has(self.usernameSecretRef)",message="exactly one of credentials.username or credentials.usernameSecretRef must be set"
type DatabaseCredentials struct {
	// username to log in as.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Username string `json:"username,omitempty"`

	// usernameSecretRef selects the user name from a Secret.
	// +optional
	UsernameSecretRef *SecretKeySelector `json:"usernameSecretRef,omitempty"`

	// passwordSecretRef selects the password.
	// +required
	PasswordSecretRef SecretKeySelector `json:"passwordSecretRef"`
}

// PostgresTarget is one PostgreSQL database.
// +kubebuilder:validation:XValidation:rule="!has(self.tlsMode) || !(self.tlsMode in ['verify-ca', 'verify-full']) || has(self.caSecretRef)",message="tlsMode verify-ca and verify-full need caSecretRef: libpq has no other CA to check the server against"
type PostgresTarget struct {
	DatabaseConnection `json:",inline"`

	// database to back up and restore.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Database string `json:"database"`
}

// MySQLTarget is one or more MySQL or MariaDB databases.
type MySQLTarget struct {
	DatabaseConnection `json:",inline"`

	// databases to back up and restore.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_$]+$`
	Databases []string `json:"databases"`
}

// FilesTarget is a directory on a PersistentVolumeClaim.
type FilesTarget struct {
	// claimName of the PersistentVolumeClaim, in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ClaimName string `json:"claimName"`

	// path inside the volume to back up. Defaults to the volume's root.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..')",message="path must be relative to the volume and must not contain '..'"
	Path string `json:"path,omitempty"`

	// runAsUser is the user ID the backup and restore Jobs of this target
	// run as, so that they read and write the files as their owner does
	// (usually the application's user). 65532 when unset; never root. A
	// restore as a non-root user gives every file this owner.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2147483647
	RunAsUser *int64 `json:"runAsUser,omitempty"`

	// runAsGroup is the group ID the Jobs of this target run as. 65532 when unset.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`

	// supplementalGroups are further groups of the Jobs' user. A restore
	// gives each file the group the backup recorded when the Jobs' user is
	// in that group (runAsGroup or one of these); any other file gets
	// runAsGroup. List the groups of the application's files that are not
	// runAsGroup.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Minimum=0
	// +kubebuilder:validation:items:Maximum=2147483647
	SupplementalGroups []int64 `json:"supplementalGroups,omitempty"`
}

// BackupTargetStatus is the observed state of a BackupTarget.
type BackupTargetStatus struct {
	ObjectStatus `json:",inline"`

	// engine of the target: postgres, mysql or files.
	// +optional
	Engine string `json:"engine,omitempty"`

	// lastSuccessfulBackup names the newest Succeeded Backup of this target.
	// +optional
	LastSuccessfulBackup string `json:"lastSuccessfulBackup,omitempty"`

	// lastSuccessfulBackupTime is when that Backup completed.
	// +optional
	LastSuccessfulBackupTime *metav1.Time `json:"lastSuccessfulBackupTime,omitempty"`

	// lastVerifiedBackup names the newest Backup of this target whose
	// newest drill passed (its Verified condition is True).
	// +optional
	LastVerifiedBackup string `json:"lastVerifiedBackup,omitempty"`

	// lastVerifiedTime is when that drill finished.
	// +optional
	LastVerifiedTime *metav1.Time `json:"lastVerifiedTime,omitempty"`
}

// BackupTarget is a data store to back up and restore.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=btarget,categories=backstop
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.status.engine`
// +kubebuilder:printcolumn:name="Last Backup",type=date,JSONPath=`.status.lastSuccessfulBackupTime`
// +kubebuilder:printcolumn:name="Last Verified",type=date,JSONPath=`.status.lastVerifiedTime`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired target.
	// +required
	Spec BackupTargetSpec `json:"spec"`

	// status is the observed state of the target.
	// +optional
	Status BackupTargetStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// BackupTargetList is a list of BackupTargets.
type BackupTargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupTarget `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &BackupTarget{}, &BackupTargetList{})
}
