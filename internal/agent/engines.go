package agent

// The engines the agent can run; each registers itself with engine.Register.
import (
	_ "github.com/backstop-io/backstop/internal/engine/files"
	_ "github.com/backstop-io/backstop/internal/engine/mysql"
	_ "github.com/backstop-io/backstop/internal/engine/postgres"
)
