package main

import (
	"context"
	"io"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/agent"
)

// setupControllers registers the reconcilers with the manager.
func setupControllers(ctx context.Context, mgr ctrl.Manager, opts controllers.Options) error {
	return controllers.SetupAll(ctx, mgr, opts)
}

// runTool runs the agent; ok is false for an unknown command.
func runTool(ctx context.Context, command string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	switch command {
	case "agent":
		return agent.Main(ctx, "backstop agent", args, stdout, stderr), true
	}
	return 0, false
}
