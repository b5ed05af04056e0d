package pipeline

import (
	"context"
	"path"

	"github.com/backstop-io/backstop/internal/store"
)

// DeleteArtifact removes an artifact: the manifest first, so that a
// half-deleted artifact is never taken for a backup, then every other object
// under the artifact path, then what runs killed mid-upload left there that
// the store does not list (store.DebrisClearer). Deleting what is already
// gone is not an error.
func DeleteArtifact(ctx context.Context, st store.Store, artifactPath string) error {
	if err := checkArtifactPath(artifactPath); err != nil {
		return err
	}
	if err := st.Delete(ctx, ManifestKey(artifactPath)); err != nil {
		return err
	}
	objs, err := st.List(ctx, path.Clean(artifactPath)+"/")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := st.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	if dc, ok := st.(store.DebrisClearer); ok {
		// What runs killed mid-upload left under the path. Best effort:
		// the store's probe reports what remains; a lifecycle rule (S3)
		// or Azure's expiry of uncommitted blocks clears it later.
		_ = dc.ClearDebris(ctx, path.Clean(artifactPath)+"/")
	}
	return nil
}
