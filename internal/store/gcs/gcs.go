// Package gcs is a store in a Google Cloud Storage bucket, through the
// official client library. Uploads are resumable uploads sent in chunks of a
// bounded size, so memory does not grow with the object. GCS makes an object
// visible only when the last chunk is finalized; a failed upload cancels the
// writer before that, so nothing is left at the key.
package gcs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/backstop-io/backstop/internal/store"
)

// DefaultChunkSize is the size of one chunk of a resumable upload; the
// writer buffers one chunk in memory.
const DefaultChunkSize = 8 << 20

// Config configures a GCS store. CredentialsJSON is a secret.
type Config struct {
	// Bucket is the bucket name.
	Bucket string
	// Prefix is prepended to every key.
	Prefix string
	// Endpoint overrides the JSON API endpoint, e.g. http://127.0.0.1:4443
	// for an emulator or a Private Service Connect endpoint. It is a URL
	// without a path (the client appends /storage/v1/). Empty: Google's.
	Endpoint string
	// CredentialsFile is a service-account JSON key file.
	CredentialsFile string
	// CredentialsJSON is a service-account JSON key (instead of a file).
	CredentialsJSON []byte
	// Anonymous sends no credentials (emulators). It is implied when
	// Endpoint is a plain http:// URL and no credentials are given. Without
	// credentials and without Anonymous the client uses Application Default
	// Credentials: GOOGLE_APPLICATION_CREDENTIALS, workload identity, the
	// metadata server.
	Anonymous bool
	// ChunkSize is the upload chunk size; DefaultChunkSize when 0.
	ChunkSize int
	// MaxAttempts is how often a request is tried; 4 when 0.
	MaxAttempts int
}

// Store is a GCS store.
type Store struct {
	c        *storage.Client
	bkt      *storage.BucketHandle
	bucket   string
	prefix   string
	endpoint string
	chunk    int
}

var _ store.Store = (*Store)(nil)

// New returns a GCS store. It does not contact the server, but it reads
// the credentials file.
func New(c Config) (*Store, error) {
	if c.Bucket == "" {
		return nil, errors.New("gcs store: no bucket given")
	}
	if c.CredentialsFile != "" && len(c.CredentialsJSON) > 0 {
		return nil, errors.New("gcs store: give a credentials file or credentials JSON, not both")
	}
	var opts []option.ClientOption
	shown := "https://storage.googleapis.com"
	plain := false
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || u.Host == "" {
			return nil, errors.New("gcs store: the endpoint is not a valid URL (want http(s)://host[:port])")
		}
		if u.User != nil {
			return nil, errors.New("gcs store: the endpoint URL must not hold credentials")
		}
		switch u.Scheme {
		case "http":
			plain = true
		case "https":
		default:
			return nil, fmt.Errorf("gcs store: unsupported endpoint scheme %q", u.Scheme)
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
			return nil, errors.New("gcs store: the endpoint URL must not have a path or query")
		}
		shown = u.Scheme + "://" + u.Host
		opts = append(opts, option.WithEndpoint(shown+"/storage/v1/"))
	}
	hasCreds := c.CredentialsFile != "" || len(c.CredentialsJSON) > 0
	switch {
	case c.CredentialsFile != "":
		if _, err := os.Stat(c.CredentialsFile); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("gcs store: reading the credentials file %s: %v", c.CredentialsFile, err)
		}
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, c.CredentialsFile))
	case len(c.CredentialsJSON) > 0:
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, c.CredentialsJSON))
	case c.Anonymous || plain:
		opts = append(opts, option.WithoutAuthentication())
	}
	if c.Anonymous && hasCreds {
		return nil, errors.New("gcs store: anonymous access and credentials exclude each other")
	}
	// JSON API reads everywhere: the same path in production and against an
	// emulator, and errors that say whether the bucket or the object is missing.
	opts = append(opts, storage.WithJSONReads())
	// The client is created with a background context: the context of New
	// would otherwise bound the life of the token source.
	cl, err := storage.NewClient(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs store: %v", err)
	}
	attempts := c.MaxAttempts
	if attempts == 0 {
		attempts = 4
	}
	cl.SetRetry(
		storage.WithMaxAttempts(attempts),
		storage.WithBackoff(gax.Backoff{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2}),
		storage.WithPolicy(storage.RetryIdempotent),
	)
	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	return &Store{
		c:        cl,
		bkt:      cl.Bucket(c.Bucket),
		bucket:   c.Bucket,
		prefix:   strings.Trim(c.Prefix, "/"),
		endpoint: shown,
		chunk:    chunk,
	}, nil
}

// Close releases the client's resources.
func (s *Store) Close() error { return s.c.Close() }

func (s *Store) String() string { return fmt.Sprintf("gcs bucket %q at %s", s.bucket, s.endpoint) }

func (s *Store) key(op, key string) (string, error) {
	k, err := store.FullKey(s.prefix, key)
	if err != nil {
		return "", &store.Error{Reason: store.ReasonStoreError, Op: op, Err: err}
	}
	return k, nil
}

func (s *Store) bucketMissing(op string) error {
	return &store.Error{Reason: store.ReasonBucketNotFound, Op: op, Err: fmt.Errorf("bucket %q does not exist", s.bucket)}
}

// classify maps a client library or network error to a store error.
// objectOp tells whether a 404 is about an object (else: the bucket).
func (s *Store) classify(op, key string, err error, objectOp bool) error {
	if err == nil {
		return nil
	}
	var se *store.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, storage.ErrBucketNotExist) {
		return s.bucketMissing(op)
	}
	if errors.Is(err, storage.ErrObjectNotExist) {
		return &store.Error{Reason: store.ReasonNotFound, Op: op, Key: key, Err: errors.New("object does not exist")}
	}
	var ae *auth.Error
	if errors.As(err, &ae) {
		msg := "fetching an access token failed"
		if ae.Response != nil {
			// The token endpoint's answer (an OAuth error code and
			// description) says why; it never repeats the key.
			msg = fmt.Sprintf("fetching an access token failed: HTTP %d", ae.Response.StatusCode)
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(ae.Body, &body) == nil && body.Error != "" {
				msg += ": " + firstLine(strings.TrimSpace(body.Error+" "+body.Description), 200)
			}
		}
		reason := store.ReasonAuthenticationFailed
		if ae.Response == nil || ae.Temporary() {
			reason = store.ReasonStoreUnreachable
		}
		if ae.Response == nil && ae.Err != nil {
			msg += ": " + scrub(ae.Err).Error()
		}
		return &store.Error{Reason: reason, Op: op, Key: key, Err: errors.New(msg)}
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		msg := fmt.Sprintf("HTTP %d", ge.Code)
		if ge.Message != "" {
			msg += ": " + ge.Message
		}
		e := &store.Error{Reason: store.ReasonStoreError, Op: op, Key: key, Err: errors.New(msg)}
		switch {
		case ge.Code == http.StatusUnauthorized || ge.Code == http.StatusForbidden:
			e.Reason = store.ReasonAuthenticationFailed
		case ge.Code == http.StatusNotFound && objectOp:
			e.Reason = store.ReasonNotFound
		case ge.Code == http.StatusNotFound:
			return s.bucketMissing(op)
		}
		return e
	}
	var (
		ne  net.Error
		dns *net.DNSError
		op1 *net.OpError
		ce  *tls.CertificateVerificationError
		ue  x509.UnknownAuthorityError
		he  x509.HostnameError
	)
	if errors.As(err, &dns) || errors.As(err, &op1) || errors.As(err, &ne) || errors.As(err, &ce) ||
		errors.As(err, &ue) || errors.As(err, &he) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &store.Error{Reason: store.ReasonStoreUnreachable, Op: op, Key: key, Err: scrub(err)}
	}
	return &store.Error{Reason: store.ReasonStoreError, Op: op, Key: key, Err: scrub(err)}
}

func firstLine(s string, max int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// scrub drops the request URL (with its query) that *url.Error repeats.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %v", ue.Op, hostOf(ue.URL), ue.Err)
	}
	return err
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "endpoint"
	}
	return u.Scheme + "://" + u.Host
}

// disambiguate turns a NotFound for an object into BucketNotFound when the
// bucket is missing.
func (s *Store) disambiguate(ctx context.Context, op string, err error) error {
	if !store.IsNotFound(err) {
		return err
	}
	if _, berr := s.bkt.Attrs(ctx); errors.Is(berr, storage.ErrBucketNotExist) {
		return s.bucketMissing(op)
	}
	return err
}

// Put streams r to key as a resumable upload in chunks of the configured
// size (smaller for a reader that knows its small length). On any failure
// the writer's context is cancelled before the upload is finalized, so no
// object appears.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.key("put", key)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.bkt.Object(k).NewWriter(wctx)
	w.ChunkSize = s.chunk
	if n, ok := store.KnownLength(r); ok && n < int64(s.chunk) {
		// A small object (a manifest) needs no full chunk buffer; the
		// library rounds this up to its minimum of 256 KiB.
		w.ChunkSize = int(n) + 1
	}
	w.ContentType = "application/octet-stream"
	// Resumable chunks are retried only this long, then the upload fails.
	w.ChunkRetryDeadline = 2 * time.Minute
	src := &errReader{r: r}
	if _, err := io.Copy(w, src); err != nil {
		// Cancel and walk away: the writer's upload goroutine sees the
		// cancellation and abandons the upload; Close would finalize it.
		cancel()
		if src.err != nil {
			err = src.err
		}
		return s.classify("put", key, err, false)
	}
	if err := w.Close(); err != nil {
		return s.classify("put", key, err, false)
	}
	return nil
}

// errReader remembers the error its reader returned, to tell a failed
// source from a failed upload.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// Get opens key. The object's metadata is fetched before it returns, so a
// missing object or bucket is reported here.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key("get", key)
	if err != nil {
		return nil, err
	}
	rd, err := s.bkt.Object(k).NewReader(ctx)
	if err != nil {
		return nil, s.disambiguate(ctx, "get", s.classify("get", key, err, true))
	}
	return &reader{rd: rd, s: s, key: key}, nil
}

type reader struct {
	rd  *storage.Reader
	s   *Store
	key string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.rd.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.classify("get", r.key, err, true)
	}
	return n, err
}

func (r *reader) Close() error { return r.rd.Close() }

// Stat describes key.
func (s *Store) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	k, err := s.key("stat", key)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	a, err := s.bkt.Object(k).Attrs(ctx)
	if err != nil {
		return store.ObjectInfo{}, s.disambiguate(ctx, "stat", s.classify("stat", key, err, true))
	}
	return store.ObjectInfo{Key: key, Size: a.Size, LastModified: a.Updated}, nil
}

// Delete removes key; a missing object is not an error, a missing bucket is.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.key("delete", key)
	if err != nil {
		return err
	}
	err = s.bkt.Object(k).Delete(ctx)
	if err == nil {
		return nil
	}
	err = s.disambiguate(ctx, "delete", s.classify("delete", key, err, true))
	if store.IsNotFound(err) {
		return nil
	}
	return err
}

// List returns the objects under prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	full := s.prefix
	if full != "" {
		full += "/"
	}
	full += prefix
	q := &storage.Query{Prefix: full}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Updated"}); err != nil {
		return nil, &store.Error{Reason: store.ReasonStoreError, Op: "list", Key: prefix, Err: err}
	}
	it := s.bkt.Objects(ctx, q)
	var out []store.ObjectInfo
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, s.classify("list", prefix, err, false)
		}
		key := a.Name
		if s.prefix != "" {
			key = strings.TrimPrefix(key, s.prefix+"/")
		}
		out = append(out, store.ObjectInfo{Key: key, Size: a.Size, LastModified: a.Updated})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Probe writes, reads back and deletes a small object.
func (s *Store) Probe(ctx context.Context) error { return store.RunProbe(ctx, s) }
