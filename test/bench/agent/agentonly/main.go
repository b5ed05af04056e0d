// Command agentonly is `backstop agent` without the operator linked in: the
// same agent.Main, in a binary that does not import controller-runtime,
// client-go or the API types. The throughput benchmark runs it next to the
// real binary to measure how much of the agent's peak RSS is the program
// itself (file-backed pages the package initialisers of the operator's
// dependencies touch) rather than the data path.
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
	code := agent.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
