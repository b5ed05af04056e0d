package main

import (
	"context"
	"io"

	ctrl "sigs.k8s.io/controller-runtime"
)

// setupControllers registers the reconcilers with the manager.
func setupControllers(mgr ctrl.Manager) error {
	return nil
}

// runTool runs the agent and user commands; ok is false for an unknown command.
func runTool(ctx context.Context, command string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	return 0, false
}
