package kubectlplugin

import (
	"context"
	"fmt"
	"strings"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/agent"
)

// tool runs verify, decrypt or manifest. With a Backup name first, the artifact's
// location comes from the Backup's status and its BackupStore; the store
// credentials and the identity stay the user's own (flags and environment,
// as without a cluster). Without one it is the command it always was.
func (r *runner) tool(ctx context.Context, args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return agent.UserMain(ctx, append([]string{r.cmd}, args...), r.io.Stdout, r.io.Stderr)
	}
	name, rest := args[0], args[1:]
	var passed []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		flagName, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			passed = append(passed, a)
			continue
		}
		var dst *string
		switch flagName {
		case "n", "namespace":
			dst = &r.conn.namespace
		case "context":
			dst = &r.conn.context
		case "kubeconfig":
			dst = &r.conn.kubeconfig
		default:
			passed = append(passed, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(rest) {
				return r.exit(usagef("flag needs an argument: %s", a))
			}
			i++
			value = rest[i]
		}
		*dst = value
	}
	if err := r.connect(); err != nil {
		return r.exit(err)
	}
	bk := &backstopv1alpha1.Backup{}
	if err := r.c.Get(ctx, r.key(name), bk); err != nil {
		return r.exit(err)
	}
	if bk.Status.ArtifactPath == "" || bk.Status.Phase != backstopv1alpha1.BackupSucceeded {
		return r.exit(fmt.Errorf("Backup %s is %s: it has no complete artifact", bk.Name, phaseOr(string(bk.Status.Phase))))
	}
	store := &backstopv1alpha1.BackupStore{}
	if err := r.c.Get(ctx, r.key(bk.Spec.StoreRef.Name), store); err != nil {
		return r.exit(err)
	}
	if store.Spec.Volume != nil {
		return r.exit(fmt.Errorf("BackupStore %s is a volume in the cluster, not reachable from here: copy %s out of its claim and use --file", store.Name, bk.Status.ArtifactPath))
	}
	full := append([]string{r.cmd}, controllers.StoreLocationArgs(store)...)
	full = append(full, "--artifact-path", bk.Status.ArtifactPath)
	full = append(full, passed...)
	return agent.UserMain(ctx, full, r.io.Stdout, r.io.Stderr)
}
