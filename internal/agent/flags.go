package agent

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/backstop-io/backstop/internal/compress"
	"github.com/backstop-io/backstop/internal/crypto"
	"github.com/backstop-io/backstop/internal/engine"
	"github.com/backstop-io/backstop/internal/store"
	azurestore "github.com/backstop-io/backstop/internal/store/azure"
	fsstore "github.com/backstop-io/backstop/internal/store/fs"
	gcsstore "github.com/backstop-io/backstop/internal/store/gcs"
	s3store "github.com/backstop-io/backstop/internal/store/s3"
)

// Environment variables the agent reads secrets (and the database user) from.
const (
	EnvDBUser          = "BACKSTOP_DB_USER"
	EnvDBPassword      = "BACKSTOP_DB_PASSWORD"
	EnvAccessKeyID     = "AWS_ACCESS_KEY_ID"
	EnvSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	EnvAgePassphrase   = "BACKSTOP_AGE_PASSPHRASE"
	EnvAgeIdentity     = "BACKSTOP_AGE_IDENTITY"
	// EnvDrillChecks holds a drill's user checks, a JSON array of
	// {"name", "sql", "expect"}. They are not secrets.
	EnvDrillChecks = "BACKSTOP_DRILL_CHECKS"
	// EnvGCSCredentials names a GCS service-account JSON key file.
	EnvGCSCredentials = "GOOGLE_APPLICATION_CREDENTIALS"
	// EnvAzureKey and EnvAzureSASToken hold an Azure storage account key or a SAS token.
	EnvAzureKey      = "AZURE_STORAGE_KEY"
	EnvAzureSASToken = "AZURE_STORAGE_SAS_TOKEN"
)

// Files in --s3-credentials-dir (a mounted Secret).
const (
	CredentialsFileAccessKeyID     = "accessKeyID"
	CredentialsFileSecretAccessKey = "secretAccessKey"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// config holds every flag; secrets are read later from env and files.
type config struct {
	// target
	engine       string
	host         string
	port         int
	databases    stringList
	tlsMode      string
	caFile       string
	expectSHA256 string
	path         string
	user         string
	passwordFile string

	// store
	storeType        string
	s3Endpoint       string
	s3Bucket         string
	s3Region         string
	s3ForcePathStyle bool
	s3Insecure       bool
	s3CAFile         string
	s3CredentialsDir string
	s3PartSizeMiB    int
	fsRoot           string
	prefix           string
	artifactPath     string

	gcsBucket          string
	gcsEndpoint        string
	gcsCredentialsFile string
	gcsAnonymous       bool
	azureAccount       string
	azureContainer     string
	azureEndpoint      string
	azureKeyFile       string
	azureSASFile       string
	azureBlockSizeMiB  int

	// local artifact (user commands)
	file         string
	manifestFile string
	output       string
	jsonOut      bool

	// data path
	compression      string
	compressionLevel int
	encryption       string
	recipients       stringList
	recipientsFile   string
	passphraseFile   string
	identityFile     string

	scratchDir       string
	scratchLimit     int64
	intoTarget       bool
	progressInterval time.Duration
	terminationLog   string
	timeout          time.Duration
	lockTimeout      time.Duration

	// secrets, filled by loadSecrets; redact() removes them from output.
	password     string
	accessKey    string
	secretKey    string
	passphrase   string
	identityData []byte
	azureKey     string
	azureSAS     string
}

func (c *config) storeFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.storeType, "store-type", "", "store type: s3, gcs, azure or filesystem")
	fs.StringVar(&c.s3Endpoint, "s3-endpoint", "", "S3 endpoint: host[:port] or http(s)://host[:port]")
	fs.StringVar(&c.s3Bucket, "s3-bucket", "", "S3 bucket")
	fs.StringVar(&c.s3Region, "s3-region", "", "S3 region")
	fs.BoolVar(&c.s3ForcePathStyle, "s3-force-path-style", false, "address the bucket in the URL path")
	fs.BoolVar(&c.s3Insecure, "s3-insecure", false, "use plain HTTP when the endpoint has no scheme")
	fs.StringVar(&c.s3CAFile, "s3-ca-file", "", "PEM file of CAs to trust for the S3 endpoint")
	fs.StringVar(&c.s3CredentialsDir, "s3-credentials-dir", "", "directory with files "+CredentialsFileAccessKeyID+" and "+CredentialsFileSecretAccessKey+" (else env "+EnvAccessKeyID+", "+EnvSecretAccessKey+")")
	fs.IntVar(&c.s3PartSizeMiB, "s3-part-size-mib", s3store.DefaultPartSize>>20, "multipart part size in MiB, 5 to 512 (objects are limited to 10000 parts)")
	fs.StringVar(&c.fsRoot, "fs-root", "", "root directory of a filesystem store")
	fs.StringVar(&c.gcsBucket, "gcs-bucket", "", "GCS bucket")
	fs.StringVar(&c.gcsEndpoint, "gcs-endpoint", "", "GCS endpoint URL http(s)://host[:port] (default: Google's; an http:// endpoint without credentials is used anonymously)")
	fs.StringVar(&c.gcsCredentialsFile, "gcs-credentials-file", "", "GCS service-account JSON key file (else env "+EnvGCSCredentials+"; neither: default credentials, e.g. workload identity)")
	fs.BoolVar(&c.gcsAnonymous, "gcs-anonymous", false, "send no GCS credentials (emulators)")
	fs.StringVar(&c.azureAccount, "azure-account", "", "Azure storage account")
	fs.StringVar(&c.azureContainer, "azure-container", "", "Azure blob container")
	fs.StringVar(&c.azureEndpoint, "azure-endpoint", "", "Azure blob service URL (default https://<account>.blob.core.windows.net)")
	fs.StringVar(&c.azureKeyFile, "azure-key-file", "", "file holding the Azure storage account key (else env "+EnvAzureKey+")")
	fs.StringVar(&c.azureSASFile, "azure-sas-file", "", "file holding an Azure SAS token (else env "+EnvAzureSASToken+")")
	fs.IntVar(&c.azureBlockSizeMiB, "azure-block-size-mib", azurestore.DefaultBlockSize>>20, "Azure block size in MiB (blobs are limited to 50000 blocks)")
	fs.StringVar(&c.prefix, "prefix", "", "key prefix inside the store")
	fs.StringVar(&c.artifactPath, "artifact-path", "", "artifact path: <namespace>/<target>/<backup-name>")
}

func (c *config) engineFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.engine, "engine", "", "engine: postgres, mysql or files")
	fs.StringVar(&c.host, "host", "", "database host")
	fs.IntVar(&c.port, "port", 0, "database port (0: the engine's default)")
	fs.Var(&c.databases, "database", "database to back up (repeatable; none: all)")
	fs.StringVar(&c.tlsMode, "tls-mode", "", "TLS to the database: disable, prefer (TLS when the server offers it), require, verify-ca or verify-full")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM CA bundle that verify-ca and verify-full trust (default: the system's)")
	fs.StringVar(&c.path, "path", "", "directory to back up or restore (files engine)")
	fs.StringVar(&c.user, "user", "", "database user (else env "+EnvDBUser+")")
	fs.StringVar(&c.passwordFile, "password-file", "", "file holding the database password (else env "+EnvDBPassword+")")
}

func (c *config) encryptFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.compression, "compression", string(compress.Zstd), "compression: zstd, gzip or none")
	fs.IntVar(&c.compressionLevel, "compression-level", 0, "compression level (0: the algorithm's default)")
	fs.StringVar(&c.encryption, "encryption", "", "encryption: x25519, scrypt or none (required)")
	fs.Var(&c.recipients, "recipient", "age X25519 recipient age1... (repeatable)")
	fs.StringVar(&c.recipientsFile, "recipients-file", "", "file of age recipients, one per line")
	fs.StringVar(&c.passphraseFile, "passphrase-file", "", "file holding the scrypt passphrase (else env "+EnvAgePassphrase+")")
}

func (c *config) decryptFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.identityFile, "identity-file", "", "age identity file (else env "+EnvAgeIdentity+")")
	fs.StringVar(&c.passphraseFile, "passphrase-file", "", "file holding the scrypt passphrase (else env "+EnvAgePassphrase+")")
	fs.StringVar(&c.expectSHA256, "expect-sha256", "", "refuse an artifact whose data's SHA-256 is not this one (hex)")
}

func (c *config) runFlags(fs *flag.FlagSet, agentMode bool) {
	fs.StringVar(&c.scratchDir, "scratch-dir", "", "directory for the downloaded artifact (default: the system temp dir)")
	interval := 10 * time.Second
	fs.DurationVar(&c.progressInterval, "progress-interval", interval, "interval of progress lines on stderr (0: none)")
	fs.DurationVar(&c.timeout, "timeout", 0, "fail with DeadlineExceeded after this long (0: no limit)")
	if agentMode {
		fs.StringVar(&c.terminationLog, "termination-log", "/dev/termination-log", "file the result is written to, if its directory exists")
	}
}

// readSecretFile reads a mounted secret file, trimming one trailing newline.
// The error never holds the content.
func readSecretFile(what, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("reading the %s file %s: %v", what, path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("the %s file %s is empty", what, path)
	}
	return s, nil
}

// loadSecrets reads secrets from files named by flags, else from env.
func (c *config) loadSecrets(getenv func(string) string) error {
	var err error
	if c.user == "" {
		c.user = getenv(EnvDBUser)
	}
	if c.passwordFile != "" {
		if c.password, err = readSecretFile("password", c.passwordFile); err != nil {
			return err
		}
	} else {
		c.password = getenv(EnvDBPassword)
	}
	if c.s3CredentialsDir != "" {
		if c.accessKey, err = readSecretFile("access key", filepath.Join(c.s3CredentialsDir, CredentialsFileAccessKeyID)); err != nil {
			return err
		}
		if c.secretKey, err = readSecretFile("secret key", filepath.Join(c.s3CredentialsDir, CredentialsFileSecretAccessKey)); err != nil {
			return err
		}
	} else {
		c.accessKey, c.secretKey = getenv(EnvAccessKeyID), getenv(EnvSecretAccessKey)
	}
	if c.storeType == "gcs" && c.gcsCredentialsFile == "" && !c.gcsAnonymous {
		c.gcsCredentialsFile = getenv(EnvGCSCredentials)
	}
	if c.storeType == "azure" {
		if c.azureKeyFile != "" {
			if c.azureKey, err = readSecretFile("Azure account key", c.azureKeyFile); err != nil {
				return err
			}
		} else if c.azureSASFile == "" {
			c.azureKey = getenv(EnvAzureKey)
		}
		if c.azureSASFile != "" {
			if c.azureSAS, err = readSecretFile("Azure SAS token", c.azureSASFile); err != nil {
				return err
			}
		} else if c.azureKeyFile == "" {
			c.azureSAS = getenv(EnvAzureSASToken)
		}
	}
	if c.passphraseFile != "" {
		if c.passphrase, err = readSecretFile("passphrase", c.passphraseFile); err != nil {
			return err
		}
	} else {
		c.passphrase = getenv(EnvAgePassphrase)
	}
	if c.identityFile != "" {
		b, err := os.ReadFile(c.identityFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("reading the identity file %s: %v", c.identityFile, err)
		}
		c.identityData = b
	} else if v := getenv(EnvAgeIdentity); v != "" {
		c.identityData = []byte(v)
	}
	return nil
}

func (c *config) secrets() []string {
	out := []string{c.password, c.secretKey, c.passphrase, c.azureKey, c.azureSAS}
	if q, err := url.ParseQuery(strings.TrimPrefix(c.azureSAS, "?")); err == nil && q.Get("sig") != "" {
		out = append(out, q.Get("sig"), url.QueryEscape(q.Get("sig")))
	}
	// An access key ID is not secret by AWS's rules, but keep it out too.
	out = append(out, c.accessKey)
	for _, line := range strings.Split(string(c.identityData), "\n") {
		out = append(out, strings.TrimSpace(line))
	}
	return out
}

var ageSecretKey = regexp.MustCompile(`AGE-SECRET-KEY-[0-9A-Za-z-]+`)

// redact removes every secret from s.
func (c *config) redact(s string) string {
	for _, sec := range c.secrets() {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return ageSecretKey.ReplaceAllString(s, "[redacted]")
}

func (c *config) openStore() (store.Store, error) {
	switch c.storeType {
	case "s3":
		if c.accessKey == "" || c.secretKey == "" {
			return nil, fmt.Errorf("no S3 credentials: set %s and %s, or --s3-credentials-dir", EnvAccessKeyID, EnvSecretAccessKey)
		}
		if c.s3PartSizeMiB < 5 || c.s3PartSizeMiB > 512 {
			return nil, errors.New("--s3-part-size-mib must be 5 to 512")
		}
		return s3store.New(s3store.Config{
			Endpoint:        c.s3Endpoint,
			Bucket:          c.s3Bucket,
			Region:          c.s3Region,
			Prefix:          c.prefix,
			ForcePathStyle:  c.s3ForcePathStyle,
			Insecure:        c.s3Insecure,
			CAFile:          c.s3CAFile,
			AccessKeyID:     c.accessKey,
			SecretAccessKey: c.secretKey,
			PartSize:        uint64(c.s3PartSizeMiB) << 20,
		})
	case "gcs":
		return gcsstore.New(gcsstore.Config{
			Bucket:          c.gcsBucket,
			Prefix:          c.prefix,
			Endpoint:        c.gcsEndpoint,
			CredentialsFile: c.gcsCredentialsFile,
			Anonymous:       c.gcsAnonymous,
		})
	case "azure":
		if c.azureKey != "" && c.azureSAS != "" {
			return nil, fmt.Errorf("both an Azure account key and a SAS token are set (%s, %s, --azure-key-file, --azure-sas-file): give one", EnvAzureKey, EnvAzureSASToken)
		}
		if c.azureKey == "" && c.azureSAS == "" {
			return nil, fmt.Errorf("no Azure credentials: set %s or %s, or --azure-key-file or --azure-sas-file", EnvAzureKey, EnvAzureSASToken)
		}
		if c.azureBlockSizeMiB < 1 || c.azureBlockSizeMiB > azurestore.MaxBlockSize>>20 {
			return nil, fmt.Errorf("--azure-block-size-mib must be between 1 and %d", azurestore.MaxBlockSize>>20)
		}
		return azurestore.New(azurestore.Config{
			Account:    c.azureAccount,
			Container:  c.azureContainer,
			Prefix:     c.prefix,
			Endpoint:   c.azureEndpoint,
			AccountKey: c.azureKey,
			SASToken:   c.azureSAS,
			BlockSize:  int64(c.azureBlockSizeMiB) << 20,
		})
	case "filesystem":
		return fsstore.New(fsstore.Config{Root: c.fsRoot, Prefix: c.prefix})
	case "":
		return nil, errors.New("--store-type is required (s3, gcs, azure or filesystem)")
	}
	return nil, fmt.Errorf("unknown --store-type %q (want s3, gcs, azure or filesystem)", c.storeType)
}

func (c *config) encryptOptions() (crypto.EncryptOptions, error) {
	mode, err := crypto.ParseMode(c.encryption)
	if err != nil {
		return crypto.EncryptOptions{}, fmt.Errorf("--encryption: %v", err)
	}
	o := crypto.EncryptOptions{Mode: mode, Recipients: c.recipients}
	if c.recipientsFile != "" {
		b, err := os.ReadFile(c.recipientsFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return o, fmt.Errorf("reading the recipients file %s: %v", c.recipientsFile, err)
		}
		o.RecipientFiles = [][]byte{b}
	}
	if mode == crypto.ModeScrypt {
		o.Passphrase = c.passphrase
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

func (c *config) decryptOptions() (crypto.DecryptOptions, error) {
	o := crypto.DecryptOptions{Passphrase: c.passphrase}
	if len(c.identityData) > 0 {
		ids, err := crypto.ParseIdentities(c.identityData)
		if err != nil {
			return o, err
		}
		o.Identities = ids
	}
	return o, nil
}

func (c *config) engineOptions() engine.Options {
	return engine.Options{
		Host:        c.host,
		Port:        c.port,
		Databases:   c.databases,
		User:        c.user,
		Password:    c.password,
		TLSMode:     c.tlsMode,
		CAFile:      c.caFile,
		Path:        c.path,
		ScratchDir:  c.scratchDir,
		LockTimeout: c.lockTimeout,
	}
}

func checkTLSMode(m string) error {
	switch m {
	case "", "disable", "prefer", "require", "verify-ca", "verify-full":
		return nil
	}
	return fmt.Errorf("unknown --tls-mode %q (want disable, prefer, require, verify-ca or verify-full)", m)
}
