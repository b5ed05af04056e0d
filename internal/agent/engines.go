package agent

// The engines the agent knows, registered by their init functions.
import (
	_ "github.com/backstop-io/backstop/internal/engine/files"
	_ "github.com/backstop-io/backstop/internal/engine/mysql"
	_ "github.com/backstop-io/backstop/internal/engine/postgres"
)
