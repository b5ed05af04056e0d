package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// AgentOptions are the operator-wide settings of agent Jobs.
type AgentOptions struct {
	// Image is the agent image: the operator's own image.
	Image string
	// ImagePullPolicy of agent containers.
	ImagePullPolicy corev1.PullPolicy
	// Binary is the agent's path inside the image: backstop-agent, the lean
	// entry point that does not link the operator (cmd/backstop-agent).
	Binary string
}

// DefaultAgentOptions are used when the manager is given none.
func DefaultAgentOptions() AgentOptions {
	return AgentOptions{
		Image:           "ghcr.io/backstop-io/backstop:latest",
		ImagePullPolicy: corev1.PullIfNotPresent,
		Binary:          "/usr/local/bin/backstop-agent",
	}
}

// Where the agent finds what Jobs mount.
const (
	mountData       = "/data"
	mountStore      = "/store"
	mountScratch    = "/scratch"
	mountTmp        = "/tmp"
	mountIdentity   = "/var/run/backstop/identity"
	mountRecipients = "/var/run/backstop/recipients"
	mountStoreCA    = "/var/run/backstop/store-ca"
	// mountDBCA holds the CA bundle a database target's TLS trusts.
	mountDBCA = "/var/run/backstop/db-ca"
	// mountGCSCredentials holds the service-account key of a GCS store.
	mountGCSCredentials = "/var/run/backstop/gcs"

	// The agent runs as this user; the image's non-root user.
	agentUID = 65532
)

// agentOp is what an agent Job does.
type agentOp string

const (
	opBackup  agentOp = "backup"
	opRestore agentOp = "restore"
	opVerify  agentOp = "verify"
	opDelete  agentOp = "delete"
	// opDrill restores into a throwaway server in the pod (or a scratch
	// target) and checks what arrived.
	opDrill agentOp = "drill"
)

// agentComponent is the component label of the agent Jobs that run op, by
// which the controllers find them again.
func agentComponent(op agentOp) string { return string(op) + "-agent" }

// agentJobSpec is everything needed to build one agent Job.
type agentJobSpec struct {
	Op           agentOp
	Name         string // the Job's name
	Namespace    string
	Labels       map[string]string
	Target       *backstopv1alpha1.BackupTarget
	Store        *backstopv1alpha1.BackupStore
	ArtifactPath string
	// ExpectSHA256 is the SHA-256 of the data the Job must read (not for
	// backups): the agent refuses an artifact written since at that path.
	ExpectSHA256 string
	Template     *backstopv1alpha1.JobTemplate
	// Engine is given when there is no Target (a drill into a throwaway server).
	Engine string
	// ScratchSize limits the scratch emptyDir, and is passed to the agent.
	ScratchSize *resource.Quantity
	// Env is added to the agent's environment (a drill's checks).
	Env []corev1.EnvVar
	// LockTimeout, for a restore, bounds its wait for another session's locks.
	LockTimeout *metav1.Duration
}

// jobName derives a Job name (at most 63 characters) from an owner's name.
func jobName(owner, suffix string) string {
	name := owner + "-" + suffix
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	keep := 63 - len(suffix) - 1 - 9
	return fmt.Sprintf("%s-%s-%s", owner[:keep], hex.EncodeToString(sum[:])[:8], suffix)
}

// buildAgentJob makes the Job that runs `backstop-agent <op>`. Credentials
// reach it only as secretKeyRef env or Secret volumes; the pod has no API
// token, runs as non-root with a read-only root filesystem and no capabilities.
func buildAgentJob(opts AgentOptions, s agentJobSpec) *batchv1.Job {
	uid, gid, fsGroup := jobIdentity(s.Target)
	b := &podBuilder{noFSGroup: fsGroup == nil}
	b.args = []string{string(s.Op), "--artifact-path", s.ArtifactPath}
	if s.Op != opDelete {
		b.flag("scratch-dir", mountScratch)
		b.addEmptyDir("scratch", mountScratch)
		if s.ScratchSize != nil {
			q := s.ScratchSize.DeepCopy()
			b.volumes[len(b.volumes)-1].EmptyDir.SizeLimit = &q
			b.flag("scratch-size-limit", strconv.FormatInt(q.Value(), 10))
		}
	}
	b.addEmptyDir("tmp", mountTmp)
	switch {
	case s.Target != nil:
		if s.Op == opDrill {
			// A drill into a scratch target: no server is started.
			b.args = append(b.args, "--into-target")
		}
		b.addTarget(s.Target, s.Op)
	case s.Engine != "":
		b.flag("engine", s.Engine)
	}
	b.env = append(b.env, s.Env...)
	if s.LockTimeout != nil && s.Op == opRestore {
		b.flag("lock-timeout", s.LockTimeout.Duration.String())
	}
	if s.ExpectSHA256 != "" && s.Op != opBackup && s.Op != opDelete {
		b.flag("expect-sha256", s.ExpectSHA256)
	}
	b.addStore(s.Store, s.Op)

	tmpl := s.Template
	if tmpl == nil {
		tmpl = &backstopv1alpha1.JobTemplate{}
	}
	if d := tmpl.ActiveDeadlineSeconds; d != nil {
		// The agent stops itself a little before the Job's deadline, so that
		// it can clean up and report DeadlineExceeded rather than be killed.
		margin := min(*d/10, 30)
		b.flag("timeout", (time.Duration(*d-margin) * time.Second).String())
	}
	image := opts.Image
	if tmpl.Image != "" {
		image = tmpl.Image
	}
	labels := map[string]string{}
	for k, v := range tmpl.PodLabels {
		labels[k] = v
	}
	for k, v := range s.Labels {
		labels[k] = v
	}
	container := corev1.Container{
		Name:                     "agent",
		Image:                    image,
		ImagePullPolicy:          opts.ImagePullPolicy,
		Command:                  []string{opts.Binary},
		Args:                     b.args,
		Env:                      b.env,
		VolumeMounts:             b.mounts,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(uid),
			RunAsGroup:               ptr.To(gid),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Privileged:               ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	if tmpl.Resources != nil {
		container.Resources = *tmpl.Resources
	}
	backoff := int32(0)
	if tmpl.BackoffLimit != nil && s.Op == opBackup {
		// A restore is never retried behind the user's back.
		backoff = *tmpl.BackoffLimit
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(backoff),
			ActiveDeadlineSeconds:   tmpl.ActiveDeadlineSeconds,
			TTLSecondsAfterFinished: tmpl.TTLSecondsAfterFinished,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: tmpl.PodAnnotations},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:       ptr.To(true),
						RunAsUser:          ptr.To(uid),
						RunAsGroup:         ptr.To(gid),
						FSGroup:            fsGroup,
						SupplementalGroups: supplementalGroups(s.Target),
						SeccompProfile:     &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers:   []corev1.Container{container},
					Volumes:      b.volumes,
					NodeSelector: tmpl.NodeSelector,
					Tolerations:  tmpl.Tolerations,
					Affinity:     tmpl.Affinity,
				},
			},
		},
	}
	return job
}

// podBuilder collects the agent's args, env and volumes.
type podBuilder struct {
	args    []string
	env     []corev1.EnvVar
	volumes []corev1.Volume
	mounts  []corev1.VolumeMount
	// noFSGroup: the pod has no fsGroup (files targets), so the kubelet
	// leaves mounted Secret files owned by root, where the Job's user
	// cannot read a 0400 file.
	noFSGroup bool
}

func (b *podBuilder) flag(name string, value string) { b.args = append(b.args, "--"+name, value) }

func (b *podBuilder) envFromSecret(name string, sel backstopv1alpha1.SecretKeySelector) {
	b.env = append(b.env, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: sel.Name}, Key: sel.Key},
	}})
}

func (b *podBuilder) optionalEnvFromSecret(name string, sel backstopv1alpha1.SecretKeySelector) {
	b.envFromSecret(name, sel)
	b.env[len(b.env)-1].ValueFrom.SecretKeyRef.Optional = ptr.To(true)
}

func (b *podBuilder) addEmptyDir(name, at string) {
	b.volumes = append(b.volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	b.mounts = append(b.mounts, corev1.VolumeMount{Name: name, MountPath: at})
}

// addSecretFile mounts one key of a Secret as <dir>/<key> and returns the
// path. The file is 0400, and the kubelet gives it the pod's fsGroup; in a
// pod with no fsGroup it is 0444, the only mode that lets the Job's
// non-root user read a file the kubelet writes as root. The agent is the
// pod's one container, so that reaches no other program; the age identity
// goes by env instead (addIdentity).
func (b *podBuilder) addSecretFile(volName, dir string, sel backstopv1alpha1.SecretKeySelector) string {
	mode := int32(0o400)
	if b.noFSGroup {
		mode = 0o444
	}
	b.volumes = append(b.volumes, corev1.Volume{Name: volName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName:  sel.Name,
		Items:       []corev1.KeyToPath{{Key: sel.Key, Path: sel.Key}},
		DefaultMode: ptr.To(mode),
	}}})
	b.mounts = append(b.mounts, corev1.VolumeMount{Name: volName, MountPath: dir, ReadOnly: true})
	return path.Join(dir, sel.Key)
}

// addIdentity hands the age identity to the agent: a mounted Secret file,
// or, in a pod with no fsGroup, an env var from the Secret, which only the
// agent's own user can read.
func (b *podBuilder) addIdentity(sel backstopv1alpha1.SecretKeySelector) {
	if b.noFSGroup {
		b.envFromSecret("BACKSTOP_AGE_IDENTITY", sel)
		return
	}
	b.flag("identity-file", b.addSecretFile("identity", mountIdentity, sel))
}

// jobIdentity is the user and group an agent pod runs as, and its fsGroup.
// A files target's Jobs run as the user the target names, so they see the
// files as their owner does, and get no fsGroup: the kubelet would give
// every file of the target's volume that group (and group write) on mount,
// changing the data being backed up. Other pods get fsGroup so that a
// volume store is writable.
func jobIdentity(t *backstopv1alpha1.BackupTarget) (uid, gid int64, fsGroup *int64) {
	if t == nil || t.Spec.Files == nil {
		return agentUID, agentUID, ptr.To[int64](agentUID)
	}
	f := t.Spec.Files
	return ptr.Deref(f.RunAsUser, agentUID), ptr.Deref(f.RunAsGroup, agentUID), nil
}

// supplementalGroups are a files target's further groups, so that a restore
// can give files the groups they had.
func supplementalGroups(t *backstopv1alpha1.BackupTarget) []int64 {
	if t == nil || t.Spec.Files == nil {
		return nil
	}
	return t.Spec.Files.SupplementalGroups
}

func (b *podBuilder) addClaim(volName, claim, subPath, at string, readOnly bool) {
	b.volumes = append(b.volumes, corev1.Volume{Name: volName, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
	}})
	b.mounts = append(b.mounts, corev1.VolumeMount{Name: volName, MountPath: at, SubPath: subPath, ReadOnly: readOnly})
}

func (b *podBuilder) addTarget(t *backstopv1alpha1.BackupTarget, op agentOp) {
	b.flag("engine", targetEngine(t))
	conn := targetConnection(t)
	switch {
	case t.Spec.Postgres != nil:
		b.flag("database", t.Spec.Postgres.Database)
	case t.Spec.MySQL != nil:
		for _, db := range t.Spec.MySQL.Databases {
			b.flag("database", db)
		}
	case t.Spec.Files != nil:
		// A restore swaps directories inside the claim, so the claim's root
		// is mounted and the path is given to the agent. Only a restore
		// (or a drill into a scratch target) may write to it.
		b.addClaim("data", t.Spec.Files.ClaimName, "", mountData, op != opRestore && op != opDrill)
		b.flag("path", path.Join(mountData, t.Spec.Files.Path))
	}
	if conn == nil {
		return
	}
	b.flag("host", conn.Host)
	if conn.Port != nil {
		b.flag("port", strconv.Itoa(int(*conn.Port)))
	}
	if conn.TLSMode != "" {
		b.flag("tls-mode", string(conn.TLSMode))
	}
	if conn.CASecretRef != nil {
		b.flag("ca-file", b.addSecretFile("db-ca", mountDBCA, *conn.CASecretRef))
	}
	if conn.Credentials.UsernameSecretRef != nil {
		b.envFromSecret("BACKSTOP_DB_USER", *conn.Credentials.UsernameSecretRef)
	} else {
		b.flag("user", conn.Credentials.Username)
	}
	b.envFromSecret("BACKSTOP_DB_PASSWORD", conn.Credentials.PasswordSecretRef)
}

// StoreLocationArgs are the agent's flags that say where a store is (type,
// endpoint, bucket or container, prefix, part sizes): no credential and no
// key. A volume store gives only its type: where its claim is mounted is the
// Job's business. `kubectl backstop verify <backup>` passes them to the
// local verify with the Backup's artifact path.
func StoreLocationArgs(bs *backstopv1alpha1.BackupStore) []string {
	var args []string
	flag := func(name, value string) { args = append(args, "--"+name, value) }
	switch {
	case bs.Spec.S3 != nil:
		s3 := bs.Spec.S3
		endpoint := s3.Endpoint
		if endpoint == "" {
			endpoint = defaultS3Endpoint
		}
		region := s3.Region
		if region == "" {
			region = defaultS3Region
		}
		flag("store-type", "s3")
		flag("s3-endpoint", endpoint)
		flag("s3-bucket", s3.Bucket)
		flag("s3-region", region)
		if s3.ForcePathStyle {
			args = append(args, "--s3-force-path-style")
		}
		if s3.PartSizeMiB != 0 {
			flag("s3-part-size-mib", strconv.Itoa(int(s3.PartSizeMiB)))
		}
		if s3.Prefix != "" {
			flag("prefix", s3.Prefix)
		}
	case bs.Spec.GCS != nil:
		g := bs.Spec.GCS
		flag("store-type", "gcs")
		flag("gcs-bucket", g.Bucket)
		if g.Prefix != "" {
			flag("prefix", g.Prefix)
		}
	case bs.Spec.Azure != nil:
		a := bs.Spec.Azure
		flag("store-type", "azure")
		flag("azure-account", a.StorageAccount)
		flag("azure-container", a.Container)
		if a.Endpoint != "" {
			flag("azure-endpoint", a.Endpoint)
		}
		if a.Prefix != "" {
			flag("prefix", a.Prefix)
		}
		if a.BlockSizeMiB != 0 {
			flag("azure-block-size-mib", strconv.Itoa(int(a.BlockSizeMiB)))
		}
	case bs.Spec.Volume != nil:
		flag("store-type", "filesystem")
	}
	return args
}

func (b *podBuilder) addStore(bs *backstopv1alpha1.BackupStore, op agentOp) {
	b.args = append(b.args, StoreLocationArgs(bs)...)
	switch {
	case bs.Spec.S3 != nil:
		s3 := bs.Spec.S3
		creds := backstopv1alpha1.SecretKeySelector{Name: s3.CredentialsSecretRef.Name}
		creds.Key = s3AccessKeyIDKey
		b.envFromSecret("AWS_ACCESS_KEY_ID", creds)
		creds.Key = s3SecretAccessKeyKey
		b.envFromSecret("AWS_SECRET_ACCESS_KEY", creds)
		if s3.CASecretRef != nil {
			b.flag("s3-ca-file", b.addSecretFile("store-ca", mountStoreCA, *s3.CASecretRef))
		}
	case bs.Spec.GCS != nil:
		if ref := bs.Spec.GCS.CredentialsSecretRef; ref != nil {
			b.flag("gcs-credentials-file", b.addSecretFile("gcs-credentials", mountGCSCredentials, *ref))
		}
	case bs.Spec.Azure != nil:
		if ref := bs.Spec.Azure.CredentialsSecretRef; ref != nil {
			// The Secret holds one of the two keys; the agent refuses both.
			b.optionalEnvFromSecret("AZURE_STORAGE_KEY", backstopv1alpha1.SecretKeySelector{Name: ref.Name, Key: azureAccountKeyKey})
			b.optionalEnvFromSecret("AZURE_STORAGE_SAS_TOKEN", backstopv1alpha1.SecretKeySelector{Name: ref.Name, Key: azureSASTokenKey})
		}
	case bs.Spec.Volume != nil:
		// Backups write artifacts and delete Jobs remove them; the others only read.
		b.addClaim("store", bs.Spec.Volume.ClaimName, bs.Spec.Volume.SubPath, mountStore, op != opBackup && op != opDelete)
		b.flag("fs-root", mountStore)
	}
	if op == opDelete {
		return
	}

	if op != opBackup {
		// Restores read compression and encryption from the manifest; they
		// need only what opens the artifact.
		switch enc := bs.Spec.Encryption; {
		case enc.PassphraseSecretRef != nil:
			b.envFromSecret("BACKSTOP_AGE_PASSPHRASE", *enc.PassphraseSecretRef)
		case enc.Recipients != nil && enc.Recipients.IdentitySecretRef != nil:
			// The private key reaches restore and verify Jobs only.
			b.addIdentity(*enc.Recipients.IdentitySecretRef)
		}
		return
	}
	if c := bs.Spec.Compression; c != nil {
		if c.Algorithm != "" {
			b.flag("compression", string(c.Algorithm))
		}
		if c.Level != nil {
			b.flag("compression-level", strconv.Itoa(int(*c.Level)))
		}
	}

	enc := bs.Spec.Encryption
	switch {
	case enc.None != nil:
		b.flag("encryption", "none")
	case enc.PassphraseSecretRef != nil:
		b.flag("encryption", "scrypt")
		b.envFromSecret("BACKSTOP_AGE_PASSPHRASE", *enc.PassphraseSecretRef)
	case enc.Recipients != nil:
		b.flag("encryption", "x25519")
		for _, k := range enc.Recipients.PublicKeys {
			b.flag("recipient", k)
		}
		if enc.Recipients.PublicKeysSecretRef != nil {
			b.flag("recipients-file", b.addSecretFile("recipients", mountRecipients, *enc.Recipients.PublicKeysSecretRef))
		}
	}
}
