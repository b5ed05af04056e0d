package engine

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options is what the agent knows about a target, for every engine. Each
// engine reads the fields it needs and ignores the rest.
type Options struct {
	// Host and Port of the database server (postgres, mysql).
	Host string
	Port int
	// Databases to dump; empty means every user database.
	Databases []string
	// User and Password for the database server. Password is a secret.
	User     string
	Password string
	// TLSMode is disable, prefer, require, verify-ca or verify-full.
	TLSMode string
	// CAFile is a PEM bundle of the CAs that verify-ca and verify-full
	// trust; empty means the system's.
	CAFile string
	// Path is the directory to back up or restore (files).
	Path string
	// ScratchDir is where the engine may write temporary data.
	ScratchDir string
	// LockTimeout bounds how long a restore waits for a lock on one of the
	// target's tables before it gives up (TargetBusy). Zero means
	// DefaultLockTimeout.
	LockTimeout time.Duration
}

// DefaultLockTimeout is how long a restore waits for a lock that another
// session holds. While it waits, the server queues every new query on that
// table behind it: waiting for ever would stop the application too.
const DefaultLockTimeout = time.Minute

// LockTimeoutOf is o.LockTimeout, or DefaultLockTimeout.
func LockTimeoutOf(o Options) time.Duration {
	if o.LockTimeout > 0 {
		return o.LockTimeout
	}
	return DefaultLockTimeout
}

// Factory builds an engine from options.
type Factory func(Options) (Engine, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes an engine available by name. Engines call it from init().
// Registering the same name twice panics.
func Register(name string, f func(Options) (Engine, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := registry[name]; ok {
		panic(fmt.Sprintf("engine %q registered twice", name))
	}
	registry[name] = f
}

// New builds the engine registered under name.
func New(name string, o Options) (Engine, error) {
	registryMu.RLock()
	f, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		names := Names()
		if len(names) == 0 {
			return nil, fmt.Errorf("unknown engine %q: no engines are built in", name)
		}
		return nil, fmt.Errorf("unknown engine %q (known: %s)", name, strings.Join(names, ", "))
	}
	return f(o)
}

// Names lists the registered engines, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Exter is implemented by engines that name their dump's file-name
// extension (".sql", ".tar", ".dump"). It is optional.
type Exter interface {
	// Ext returns the extension of the dump format, with its dot.
	Ext() string
}

// Ext returns the dump extension of e: its own when it implements Exter,
// else ".tar" for files, ".sql" for postgres and mysql, ".dump" otherwise.
func Ext(e Engine) string {
	if x, ok := e.(Exter); ok {
		return x.Ext()
	}
	switch e.Name() {
	case "files":
		return ".tar"
	case "postgres", "mysql":
		return ".sql"
	}
	return ".dump"
}
