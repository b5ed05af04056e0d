package controllers

import (
	"context"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/store/azure"
	"github.com/backstop-io/backstop/internal/store/gcs"
	"github.com/backstop-io/backstop/internal/store/s3"
)

// Keys of the Secret named by spec.s3.credentialsSecretRef.
const (
	s3AccessKeyIDKey     = "accessKeyID"
	s3SecretAccessKeyKey = "secretAccessKey"
	defaultS3Endpoint    = "https://s3.amazonaws.com"
	defaultS3Region      = "us-east-1"
	// Keys of the Secret named by spec.azure.credentialsSecretRef: one of them.
	azureAccountKeyKey = "accountKey"
	azureSASTokenKey   = "sasToken"
)

// ReasonBackendNotSupported: the store's backend is in the API but this
// version cannot use it yet.
const ReasonBackendNotSupported = "BackendNotSupported"

// openStore gives the operator its own handle on a store, to probe it and to
// delete artifacts. It returns nil, nil for a volume store: only a pod that
// mounts the claim can reach it.
func openStore(ctx context.Context, c client.Reader, bs *backstopv1alpha1.BackupStore) (store.Store, error) {
	switch {
	case bs.Spec.S3 != nil:
		spec := bs.Spec.S3
		ref := backstopv1alpha1.SecretKeySelector{Name: spec.CredentialsSecretRef.Name}
		ref.Key = s3AccessKeyIDKey
		id, err := secretValue(ctx, c, bs.Namespace, ref)
		if err != nil {
			return nil, err
		}
		ref.Key = s3SecretAccessKeyKey
		secret, err := secretValue(ctx, c, bs.Namespace, ref)
		if err != nil {
			return nil, err
		}
		cfg := s3.Config{
			Endpoint:        spec.Endpoint,
			Bucket:          spec.Bucket,
			Region:          spec.Region,
			Prefix:          spec.Prefix,
			ForcePathStyle:  spec.ForcePathStyle,
			AccessKeyID:     strings.TrimSpace(string(id)),
			SecretAccessKey: strings.TrimSpace(string(secret)),
		}
		if cfg.Endpoint == "" {
			cfg.Endpoint = defaultS3Endpoint
		}
		if cfg.Region == "" {
			cfg.Region = defaultS3Region
		}
		if spec.CASecretRef != nil {
			ca, err := secretValue(ctx, c, bs.Namespace, *spec.CASecretRef)
			if err != nil {
				return nil, err
			}
			f, err := os.CreateTemp("", "backstop-ca-*.pem")
			if err != nil {
				return nil, err
			}
			defer os.Remove(f.Name())
			if _, err := f.Write(ca); err != nil {
				f.Close()
				return nil, err
			}
			f.Close()
			cfg.CAFile = f.Name()
		}
		s, err := s3.New(cfg)
		if err != nil {
			return nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "%v", err)
		}
		return s, nil
	case bs.Spec.Volume != nil:
		return nil, nil
	case bs.Spec.GCS != nil:
		spec := bs.Spec.GCS
		cfg := gcs.Config{Bucket: spec.Bucket, Prefix: spec.Prefix}
		if spec.CredentialsSecretRef != nil {
			key, err := secretValue(ctx, c, bs.Namespace, *spec.CredentialsSecretRef)
			if err != nil {
				return nil, err
			}
			cfg.CredentialsJSON = key
		}
		s, err := gcs.New(cfg)
		if err != nil {
			return nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "%v", err)
		}
		return s, nil
	case bs.Spec.Azure != nil:
		spec := bs.Spec.Azure
		cfg := azure.Config{Account: spec.StorageAccount, Container: spec.Container, Prefix: spec.Prefix, Endpoint: spec.Endpoint}
		if spec.CredentialsSecretRef == nil {
			return nil, userErrorf(ReasonBackendNotSupported, "azure: workload identity is not supported yet; set credentialsSecretRef")
		}
		name := spec.CredentialsSecretRef.Name
		key, keyErr := secretValue(ctx, c, bs.Namespace, backstopv1alpha1.SecretKeySelector{Name: name, Key: azureAccountKeyKey})
		sas, sasErr := secretValue(ctx, c, bs.Namespace, backstopv1alpha1.SecretKeySelector{Name: name, Key: azureSASTokenKey})
		switch {
		case keyErr == nil && sasErr == nil:
			// The Jobs' agent refuses both, whichever the operator took.
			return nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "Secret %q has both key %q and key %q: keep one", name, azureAccountKeyKey, azureSASTokenKey)
		case keyErr == nil:
			cfg.AccountKey = strings.TrimSpace(string(key))
		case sasErr == nil:
			cfg.SASToken = strings.TrimSpace(string(sas))
		default:
			return nil, userErrorf(backstopv1alpha1.ReasonSecretNotFound, "Secret %q has neither key %q nor key %q", name, azureAccountKeyKey, azureSASTokenKey)
		}
		s, err := azure.New(cfg)
		if err != nil {
			return nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "%v", err)
		}
		return s, nil
	}
	return nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "no backend set")
}

// encryptionSummary checks the encryption settings and their Secrets and
// returns the mode and the recipients' fingerprints.
func encryptionSummary(ctx context.Context, c client.Reader, bs *backstopv1alpha1.BackupStore) (mode string, fingerprints []string, err error) {
	enc := bs.Spec.Encryption
	switch {
	case enc.None != nil:
		return string(crypto.ModeNone), nil, nil
	case enc.PassphraseSecretRef != nil:
		if _, err := secretValue(ctx, c, bs.Namespace, *enc.PassphraseSecretRef); err != nil {
			return "", nil, err
		}
		return string(crypto.ModeScrypt), nil, nil
	case enc.Recipients != nil:
		r := enc.Recipients
		var files [][]byte
		if r.PublicKeysSecretRef != nil {
			data, err := secretValue(ctx, c, bs.Namespace, *r.PublicKeysSecretRef)
			if err != nil {
				return "", nil, err
			}
			files = append(files, data)
		}
		recipients, strs, err := crypto.ParseRecipients(r.PublicKeys, files...)
		if err != nil {
			return "", nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "encryption.recipients: %v", err)
		}
		if len(recipients) == 0 {
			return "", nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "encryption.recipients: no public keys")
		}
		if r.IdentitySecretRef != nil {
			data, err := secretValue(ctx, c, bs.Namespace, *r.IdentitySecretRef)
			if err != nil {
				return "", nil, err
			}
			ids, err := crypto.ParseIdentities(data)
			if err != nil {
				// The parser's message could quote the key; say only where it is.
				return "", nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "encryption.recipients.identitySecretRef: Secret %q key %q does not hold an age identity", r.IdentitySecretRef.Name, r.IdentitySecretRef.Key)
			}
			if !identityMatches(ids, strs) {
				return "", nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "encryption.recipients.identitySecretRef: the identity in Secret %q opens none of the recipients", r.IdentitySecretRef.Name)
			}
		}
		for _, s := range strs {
			fingerprints = append(fingerprints, crypto.Fingerprint(s))
		}
		return string(crypto.ModeX25519), fingerprints, nil
	}
	return "", nil, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "no encryption mode set")
}

// identityMatches tells whether one of the identities opens one of the recipients.
func identityMatches(ids []age.Identity, recipients []string) bool {
	for _, id := range ids {
		x, ok := id.(*age.X25519Identity)
		if !ok {
			continue
		}
		pub := x.Recipient().String()
		for _, r := range recipients {
			if r == pub {
				return true
			}
		}
	}
	return false
}

func describeStore(bs *backstopv1alpha1.BackupStore) string {
	switch {
	case bs.Spec.S3 != nil:
		return fmt.Sprintf("s3 bucket %q", bs.Spec.S3.Bucket)
	case bs.Spec.Volume != nil:
		return fmt.Sprintf("volume claim %q", bs.Spec.Volume.ClaimName)
	case bs.Spec.GCS != nil:
		return fmt.Sprintf("gcs bucket %q", bs.Spec.GCS.Bucket)
	case bs.Spec.Azure != nil:
		return fmt.Sprintf("azure container %q", bs.Spec.Azure.Container)
	}
	return "store"
}
