// Command backstop-agent is what backup and restore Jobs run: the same
// agent as `backstop agent`, in a binary that does not link the operator.
//
// `backstop` carries controller-runtime, client-go and the API types, and
// their package initialisers touch tens of MiB of the binary at every start,
// before a flag is parsed. Those pages count in the Job container's memory,
// so Jobs run this lean entry point, shipped in the same image, and stay
// within a small memory limit. Both binaries run internal/agent; see its
// package documentation for the commands and flags.
//
// The same holds for what the agent links itself: every store's library
// is initialised at every start, whatever the store type (Google's GCS
// client alone cost 20 MiB; internal/store/gcs does without it).
// TestAgentBinary_StartupMemory in internal/agent bounds the total.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/backstop-io/backstop/internal/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := agent.Main(ctx, "backstop-agent", os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
