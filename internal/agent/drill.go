package agent

import (
	"context"
	"flag"
	"io"

	"github.com/backstop-io/backstop/internal/drill"
	"github.com/backstop-io/backstop/internal/manifest"
	"github.com/backstop-io/backstop/internal/pipeline"
	"github.com/backstop-io/backstop/internal/store"
)

func (c *config) drillFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.scratchLimit, "scratch-size-limit", 0, "size limit of --scratch-dir in bytes (an emptyDir's sizeLimit), checked before the download (0: the file system's free space only)")
	fs.BoolVar(&c.intoTarget, "into-target", false, "restore into the scratch target the engine flags name instead of a throwaway server")
}

// drill restores the artifact where it can do no harm and checks it. The
// engine flags name a scratch target, and only with --into-target: a drill
// without it has no address or credentials of any database.
func (c *config) drill(ctx context.Context, st store.Store, getenv func(string) string, progress io.Writer) (*drill.Report, *manifest.Manifest, error) {
	if c.intoTarget != (c.host != "" || c.path != "") {
		if c.intoTarget {
			return nil, nil, invalid("--into-target needs the scratch target's --host (or --path for files)")
		}
		return nil, nil, invalid("--host, --path: a drill starts its own server; name a scratch target with --into-target")
	}
	checks, err := drill.ParseChecks(getenv(EnvDrillChecks))
	if err != nil {
		return nil, nil, invalid("%s: %v", EnvDrillChecks, err)
	}
	dec, err := c.decryptOptions()
	if err != nil {
		return nil, nil, invalid("%v", err)
	}
	if c.intoTarget {
		if err := checkTLSMode(c.tlsMode); err != nil {
			return nil, nil, invalid("%v", err)
		}
	}
	return drill.Run(ctx, drill.Options{
		Read: pipeline.ReadOptions{
			Store: st, ArtifactPath: c.artifactPath, Engine: c.engine, Decrypt: dec, ExpectSHA256: c.expectSHA256,
			Progress: progress, ProgressInterval: c.progressInterval,
		},
		ScratchDir: c.scratchDir, ScratchLimit: c.scratchLimit,
		Checks: checks, Target: c.engineOptions(), IntoTarget: c.intoTarget,
	})
}
