package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupStoreSpec says where artifacts go and how they are sealed.
// +kubebuilder:validation:XValidation:rule="[has(self.s3), has(self.gcs), has(self.azure), has(self.volume)].filter(x, x).size() == 1",message="exactly one of spec.s3, spec.gcs, spec.azure or spec.volume must be set"
type BackupStoreSpec struct {
	// s3 stores artifacts in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...).
	// +optional
	S3 *S3Store `json:"s3,omitempty"`

	// gcs stores artifacts in a Google Cloud Storage bucket.
	// +optional
	GCS *GCSStore `json:"gcs,omitempty"`

	// azure stores artifacts in an Azure Blob Storage container.
	// +optional
	Azure *AzureStore `json:"azure,omitempty"`

	// volume stores artifacts on a PersistentVolumeClaim.
	// +optional
	Volume *VolumeStore `json:"volume,omitempty"`

	// encryption seals every artifact before it leaves the agent. There is no
	// default: choose age recipients, a passphrase, or name plaintext with `none: {}`.
	// +required
	Encryption Encryption `json:"encryption"`

	// compression applied before encryption. Defaults to zstd level 3.
	// +optional
	Compression *Compression `json:"compression,omitempty"`

	// probeInterval is how often the operator checks that the store is
	// reachable and writable. Defaults to 10m. A volume store is reached only
	// by Jobs: it is not probed, and each Job checks its claim.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	ProbeInterval *metav1.Duration `json:"probeInterval,omitempty"`
}

// S3Store is an S3-compatible bucket.
type S3Store struct {
	// bucket name.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`
	Bucket string `json:"bucket"`

	// prefix under which all artifacts of this store are written.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[^/].*[^/]$|^[^/]$`
	Prefix string `json:"prefix,omitempty"`

	// region of the bucket. Defaults to us-east-1.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Region string `json:"region,omitempty"`

	// endpoint of the S3 API, as a URL (https://s3.example.com or
	// http://minio.backup.svc:9000). Defaults to AWS S3.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https?://[^\s/?#]+(:[0-9]+)?/?$`
	Endpoint string `json:"endpoint,omitempty"`

	// forcePathStyle addresses the bucket as a path (endpoint/bucket) rather
	// than a host name; most S3-compatible servers need it.
	// +optional
	ForcePathStyle bool `json:"forcePathStyle,omitempty"`

	// credentialsSecretRef names a Secret with the keys accessKeyID and secretAccessKey.
	// +required
	CredentialsSecretRef LocalObjectReference `json:"credentialsSecretRef"`

	// caSecretRef selects a PEM CA bundle to trust for the endpoint's TLS certificate.
	// +optional
	CASecretRef *SecretKeySelector `json:"caSecretRef,omitempty"`

	// partSizeMiB is the size of each part of a backup's multipart upload,
	// in MiB; 8 when unset. S3 takes at most 10,000 parts, so it bounds a
	// backup's stored size (8 MiB: 78 GiB; 64 MiB: 625 GiB; 512 MiB: 5 TiB,
	// S3's largest object). Each backup Job holds one part in memory.
	// +optional
	// +kubebuilder:validation:Minimum=5
	// +kubebuilder:validation:Maximum=512
	PartSizeMiB int32 `json:"partSizeMiB,omitempty"`
}

// GCSStore is a Google Cloud Storage bucket.
type GCSStore struct {
	// bucket name.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=222
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9._-]*[a-z0-9]$`
	Bucket string `json:"bucket"`

	// prefix under which all artifacts of this store are written.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Prefix string `json:"prefix,omitempty"`

	// credentialsSecretRef selects a service account JSON key. When unset, the
	// pod's workload identity is used.
	// +optional
	CredentialsSecretRef *SecretKeySelector `json:"credentialsSecretRef,omitempty"`
}

// AzureStore is an Azure Blob Storage container.
type AzureStore struct {
	// storageAccount name.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=24
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+$`
	StorageAccount string `json:"storageAccount"`

	// container name.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`
	Container string `json:"container"`

	// prefix under which all artifacts of this store are written.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Prefix string `json:"prefix,omitempty"`

	// endpoint overrides the blob service URL (for sovereign clouds or Azurite).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https?://.+$`
	Endpoint string `json:"endpoint,omitempty"`

	// credentialsSecretRef names a Secret with the key accountKey or the key
	// sasToken, not both. Required for now: workload identity is not
	// supported yet (the store reports BackendNotSupported).
	// +optional
	CredentialsSecretRef *LocalObjectReference `json:"credentialsSecretRef,omitempty"`

	// blockSizeMiB is the size of each block of a backup's upload, in MiB;
	// 4 when unset. A blob takes at most 50,000 blocks, so it bounds a
	// backup's stored size (4 MiB: 195 GiB; 64 MiB: 3 TiB; 512 MiB: 24 TiB).
	// Each backup Job holds two blocks in memory.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=512
	BlockSizeMiB int32 `json:"blockSizeMiB,omitempty"`
}

// VolumeStore writes artifacts to a directory on a PersistentVolumeClaim.
type VolumeStore struct {
	// claimName of the PersistentVolumeClaim, in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ClaimName string `json:"claimName"`

	// subPath inside the volume. Defaults to the volume's root.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..')",message="subPath must be relative and must not contain '..'"
	SubPath string `json:"subPath,omitempty"`
}

// Encryption is exactly one of recipients, passphraseSecretRef or none.
// +kubebuilder:validation:XValidation:rule="[has(self.recipients), has(self.passphraseSecretRef), has(self.none)].filter(x, x).size() == 1",message="exactly one of encryption.recipients, encryption.passphraseSecretRef or encryption.none must be set"
type Encryption struct {
	// recipients encrypts to age X25519 public keys: the cluster can write
	// backups it cannot read.
	// +optional
	Recipients *AgeRecipients `json:"recipients,omitempty"`

	// passphraseSecretRef encrypts with an age scrypt passphrase held in a Secret.
	// +optional
	PassphraseSecretRef *SecretKeySelector `json:"passphraseSecretRef,omitempty"`

	// none stores plaintext. It must be asked for by name and keeps a
	// EncryptionDisabled condition on the store.
	// +optional
	None *NoEncryption `json:"none,omitempty"`
}

// AgeRecipients are the public keys artifacts are encrypted to.
// +kubebuilder:validation:XValidation:rule="has(self.publicKeys) || has(self.publicKeysSecretRef)",message="recipients needs publicKeys or publicKeysSecretRef"
type AgeRecipients struct {
	// publicKeys are age X25519 recipients (age1...). Public keys are not secret.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^age1[02-9ac-hj-np-z]{58}$`
	PublicKeys []string `json:"publicKeys,omitempty"`

	// publicKeysSecretRef selects a Secret key holding recipients, one per line
	// (lines starting with # are comments).
	// +optional
	PublicKeysSecretRef *SecretKeySelector `json:"publicKeysSecretRef,omitempty"`

	// identitySecretRef selects the age identity (AGE-SECRET-KEY-1...). It
	// reaches only the Jobs that read artifacts: restore, verify and drill
	// Jobs; backups never need it. Leave it unset to keep the private key out
	// of the cluster and restore elsewhere (drills then cannot run).
	// +optional
	IdentitySecretRef *SecretKeySelector `json:"identitySecretRef,omitempty"`
}

// NoEncryption selects plaintext storage.
type NoEncryption struct{}

// CompressionAlgorithm names a compression format.
// +kubebuilder:validation:Enum=zstd;gzip;none
type CompressionAlgorithm string

const (
	CompressionZstd CompressionAlgorithm = "zstd"
	CompressionGzip CompressionAlgorithm = "gzip"
	CompressionNone CompressionAlgorithm = "none"
)

// Compression is the algorithm and level applied before encryption.
// +kubebuilder:validation:XValidation:rule="!has(self.level) || (self.algorithm == 'zstd' && self.level <= 22) || (self.algorithm == 'gzip' && self.level <= 9)",message="compression.level must be 1-22 for zstd, 1-9 for gzip, and unset for none"
type Compression struct {
	// algorithm is zstd (the default), gzip or none.
	// +optional
	// +kubebuilder:default=zstd
	Algorithm CompressionAlgorithm `json:"algorithm,omitempty"`

	// level of compression. Defaults to 3 for zstd and 6 for gzip.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=22
	Level *int32 `json:"level,omitempty"`
}

// BackupStoreStatus is the observed state of a BackupStore.
type BackupStoreStatus struct {
	ObjectStatus `json:",inline"`

	// lastProbeTime is when the store was last checked (for a volume store,
	// when its spec was last read: it is not probed).
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`

	// encryptionMode in force: x25519, scrypt or none.
	// +optional
	EncryptionMode string `json:"encryptionMode,omitempty"`

	// recipientFingerprints identify the public keys artifacts are encrypted
	// to (SHA-256 of each recipient, shortened), never the keys themselves.
	// +optional
	// +listType=atomic
	RecipientFingerprints []string `json:"recipientFingerprints,omitempty"`

	// debris is what interrupted uploads left in the store under its prefix,
	// as the operator's probe finds it. On s3: incomplete multipart uploads,
	// whose parts are billed until aborted. On azure: blobs that were never
	// committed and hold uncommitted blocks, which Azure discards a week
	// after they were staged (blocks staged on a committed blob are not
	// listed, so not counted). The upload of a backup running at that moment
	// counts too. Unset for volume stores (the operator does not mount the
	// claim, so it cannot see a Job's leftover `.backstop-tmp-*` files), for
	// gcs stores (the API does not list interrupted uploads), and when the
	// listing failed (e.g. the credentials may not list multipart uploads).
	// +optional
	Debris *StoreDebris `json:"debris,omitempty"`
}

// StoreDebris counts leftovers of interrupted uploads in a store.
type StoreDebris struct {
	// objects is how many leftovers were found: incomplete multipart uploads
	// on s3, blobs of uncommitted blocks on azure.
	// +required
	// +kubebuilder:validation:Minimum=0
	Objects int64 `json:"objects"`

	// bytes is the size of what they hold (the parts or blocks uploaded so
	// far). With more than 100 leftovers, only the first 100 are sized: a
	// lower bound.
	// +required
	// +kubebuilder:validation:Minimum=0
	Bytes int64 `json:"bytes"`

	// checkedAt is when the store was listed.
	// +required
	CheckedAt metav1.Time `json:"checkedAt"`
}

// BackupStore is where artifacts are written, and how they are sealed.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bstore,categories=backstop
// +kubebuilder:printcolumn:name="Encryption",type=string,JSONPath=`.status.encryptionMode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired store.
	// +required
	Spec BackupStoreSpec `json:"spec"`

	// status is the observed state of the store.
	// +optional
	Status BackupStoreStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// BackupStoreList is a list of BackupStores.
type BackupStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupStore `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &BackupStore{}, &BackupStoreList{})
}
