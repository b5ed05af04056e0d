// Package gcs is a store in a Google Cloud Storage bucket, through GCS's
// JSON API over net/http, with tokens from cloud.google.com/go/auth.
// Uploads are resumable uploads sent in chunks of a bounded size, so memory
// does not grow with the object. GCS makes an object visible only when the
// last chunk is finalized; a failed upload is cancelled before that, so
// nothing is left at the key.
//
// Not the official client library (cloud.google.com/go/storage): it links
// gRPC, xDS, the Envoy API and OpenTelemetry, whose package initialisers
// touch about 20 MiB of the binary at every start of backstop-agent, for
// every store type, before a flag is parsed: a third of the agent's 64 MiB
// memory target (docs/benchmarks.md, "Where the memory goes"). The few calls
// a store makes are plain HTTP requests.
package gcs

import (
	"bytes"
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
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"

	"github.com/backstop-io/backstop/internal/store"
)

// DefaultChunkSize is the size of one chunk of a resumable upload; the
// store buffers one chunk in memory.
const DefaultChunkSize = 8 << 20

// chunkGranularity: every chunk of a resumable upload but the last is a
// multiple of 256 KiB.
const chunkGranularity = 256 << 10

// scope is the OAuth scope of the tokens, as the official client's default.
const scope = "https://www.googleapis.com/auth/devstorage.full_control"

// chunkRetryDeadline bounds the retries of one chunk of an upload.
const chunkRetryDeadline = 2 * time.Minute

// Config configures a GCS store. CredentialsJSON is a secret.
type Config struct {
	// Bucket is the bucket name.
	Bucket string
	// Prefix is prepended to every key.
	Prefix string
	// Endpoint overrides the JSON API endpoint, e.g. http://127.0.0.1:4443
	// for an emulator or a Private Service Connect endpoint. It is a URL
	// without a path (the store appends /storage/v1/). Empty: Google's.
	Endpoint string
	// CredentialsFile is a service-account JSON key file.
	CredentialsFile string
	// CredentialsJSON is a service-account JSON key (instead of a file).
	CredentialsJSON []byte
	// Anonymous sends no credentials (emulators). It is implied when
	// Endpoint is a plain http:// URL and no credentials are given. Without
	// credentials and without Anonymous the store uses Application Default
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
	hc       *http.Client
	creds    *auth.Credentials // nil: anonymous
	bucket   string
	prefix   string
	endpoint string
	chunk    int
	attempts int
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
	}
	hasCreds := c.CredentialsFile != "" || len(c.CredentialsJSON) > 0
	if c.Anonymous && hasCreds {
		return nil, errors.New("gcs store: anonymous access and credentials exclude each other")
	}
	opts := &credentials.DetectOptions{Scopes: []string{scope}}
	var creds *auth.Credentials
	var err error
	switch {
	case c.CredentialsFile != "":
		if _, err := os.Stat(c.CredentialsFile); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("gcs store: reading the credentials file %s: %v", c.CredentialsFile, err)
		}
		creds, err = credentials.NewCredentialsFromFile(credentials.ServiceAccount, c.CredentialsFile, opts)
	case len(c.CredentialsJSON) > 0:
		creds, err = credentials.NewCredentialsFromJSON(credentials.ServiceAccount, c.CredentialsJSON, opts)
	case c.Anonymous || plain:
	default:
		creds, err = credentials.DetectDefault(opts)
	}
	if err != nil {
		return nil, fmt.Errorf("gcs store: %v", err)
	}
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 4
	}
	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	chunk = (chunk + chunkGranularity - 1) / chunkGranularity * chunkGranularity
	return &Store{
		hc: &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A 308 answers a chunk of an upload; it is no redirect.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		creds:    creds,
		bucket:   c.Bucket,
		prefix:   strings.Trim(c.Prefix, "/"),
		endpoint: shown,
		chunk:    chunk,
		attempts: attempts,
	}, nil
}

// Close releases the client's idle connections.
func (s *Store) Close() error {
	s.hc.CloseIdleConnections()
	return nil
}

func (s *Store) String() string { return fmt.Sprintf("gcs bucket %q at %s", s.bucket, s.endpoint) }

func (s *Store) key(op, key string) (string, error) {
	k, err := store.FullKey(s.prefix, key)
	if err != nil {
		return "", &store.Error{Reason: store.ReasonStoreError, Op: op, Err: err}
	}
	return k, nil
}

// bucketURL is the JSON API URL of the bucket; objectURL of an object in it.
func (s *Store) bucketURL() string {
	return s.endpoint + "/storage/v1/b/" + url.PathEscape(s.bucket)
}

func (s *Store) objectURL(k string) string {
	return s.bucketURL() + "/o/" + url.PathEscape(k)
}

// apiError is an answer of the JSON API other than a success.
type apiError struct {
	Code    int
	Message string
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d", e.Code)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Code, e.Message)
}

// responseError reads the JSON error body of a failed response.
func responseError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil {
		msg = e.Error.Message
	} else if t := strings.TrimSpace(string(body)); t != "" && !strings.HasPrefix(t, "<") {
		msg = firstLine(t, 200)
	}
	return &apiError{Code: resp.StatusCode, Message: msg}
}

// transient tells whether a request that failed so is worth trying again.
func transient(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}

// backoff sleeps before attempt n (1 for the first retry); false when ctx
// ends first.
func backoff(ctx context.Context, n int) bool {
	d := 500 * time.Millisecond << (n - 1)
	d = min(d, 10*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// send sends one request with a token, once.
func (s *Store) send(ctx context.Context, method, u string, body []byte, hdr http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "backstop")
	if s.creds != nil {
		tok, err := s.creds.Token(ctx)
		if err != nil {
			return nil, err
		}
		typ := tok.Type
		if typ == "" {
			typ = "Bearer"
		}
		req.Header.Set("Authorization", typ+" "+tok.Value)
	}
	return s.hc.Do(req)
}

// do sends a request, retrying network errors and transient answers, and
// returns the response of a success (2xx, or a 308 when ok308) with its body
// open; any other answer as an *apiError.
func (s *Store) do(ctx context.Context, method, u string, body []byte, hdr http.Header, ok308 bool) (*http.Response, error) {
	var last error
	for attempt := 0; attempt < s.attempts; attempt++ {
		if attempt > 0 && !backoff(ctx, attempt) {
			return nil, errors.Join(ctx.Err(), last)
		}
		resp, err := s.send(ctx, method, u, body, hdr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			var ae *auth.Error
			if errors.As(err, &ae) && ae.Response != nil && !ae.Temporary() {
				return nil, err
			}
			last = err
			continue
		}
		if resp.StatusCode/100 == 2 || ok308 && resp.StatusCode == http.StatusPermanentRedirect {
			return resp, nil
		}
		last = responseError(resp)
		resp.Body.Close()
		if !transient(resp.StatusCode) {
			break
		}
	}
	return nil, last
}

// classify maps a client or network error to a store error. objectOp
// tells whether a 404 is about an object (else: the bucket).
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
	var ge *apiError
	if errors.As(err, &ge) {
		e := &store.Error{Reason: store.ReasonStoreError, Op: op, Key: key, Err: ge}
		switch {
		case ge.Code == http.StatusUnauthorized || ge.Code == http.StatusForbidden:
			e.Reason = store.ReasonAuthenticationFailed
		case ge.Code == http.StatusNotFound && objectOp:
			e.Reason, e.Err = store.ReasonNotFound, errors.New("object does not exist")
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

func (s *Store) bucketMissing(op string) error {
	return &store.Error{Reason: store.ReasonBucketNotFound, Op: op, Err: fmt.Errorf("bucket %q does not exist", s.bucket)}
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
	resp, berr := s.do(ctx, http.MethodGet, s.bucketURL()+"?fields=name", nil, nil, false)
	if berr == nil {
		resp.Body.Close()
		return err
	}
	var ge *apiError
	if errors.As(berr, &ge) && ge.Code == http.StatusNotFound {
		return s.bucketMissing(op)
	}
	return err
}

// Put streams r to key as a resumable upload in chunks of the configured
// size (smaller for a reader that knows its small length). The upload
// starts after the first chunk is read; on any failure it is cancelled
// before it is finalized, so no object appears.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.key("put", key)
	if err != nil {
		return err
	}
	size := s.chunk
	if n, ok := store.KnownLength(r); ok && n < int64(size) {
		// A small object (a manifest) needs no full chunk buffer.
		size = int(n) + 1
	}
	buf := make([]byte, size)
	src := &errReader{r: r}
	session := ""
	fail := func(err error) error {
		if session != "" {
			// Cancel the upload, with a context that outlives a
			// cancelled run; best effort: GCS drops an unfinished
			// session after a week anyway, and it is never an object.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if resp, err := s.send(cctx, http.MethodDelete, session, nil, nil); err == nil {
				resp.Body.Close()
			}
		}
		if src.err != nil {
			return src.err
		}
		return s.classify("put", key, err, false)
	}
	var off int64
	for {
		n, rerr := io.ReadFull(src, buf)
		last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !last {
			return fail(rerr)
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if session == "" {
			if session, err = s.startUpload(ctx, k); err != nil {
				return fail(err)
			}
		}
		if err := s.sendChunk(ctx, session, buf[:n], off, last); err != nil {
			return fail(err)
		}
		off += int64(n)
		if last {
			return nil
		}
	}
}

// startUpload opens a resumable upload session for k and returns its URL.
func (s *Store) startUpload(ctx context.Context, k string) (string, error) {
	meta, _ := json.Marshal(map[string]string{"name": k, "contentType": "application/octet-stream"})
	u := s.endpoint + "/upload/storage/v1/b/" + url.PathEscape(s.bucket) + "/o?uploadType=resumable&name=" + url.QueryEscape(k)
	hdr := http.Header{"Content-Type": {"application/json; charset=UTF-8"}, "X-Upload-Content-Type": {"application/octet-stream"}}
	resp, err := s.do(ctx, http.MethodPost, u, meta, hdr, false)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("the server did not return an upload session")
	}
	return loc, nil
}

// sendChunk sends data at offset off of the upload; last finalizes it. It
// sends again what the server did not keep (a 308 whose Range ends short),
// and retries transient failures for chunkRetryDeadline.
func (s *Store) sendChunk(ctx context.Context, session string, data []byte, off int64, last bool) error {
	deadline := time.Now().Add(chunkRetryDeadline)
	for retry := 0; ; {
		total := "*"
		if last {
			total = strconv.FormatInt(off+int64(len(data)), 10)
		}
		rng := "bytes */" + total
		if len(data) > 0 {
			rng = fmt.Sprintf("bytes %d-%d/%s", off, off+int64(len(data))-1, total)
		}
		resp, err := s.send(ctx, http.MethodPut, session, data, http.Header{"Content-Range": {rng}})
		var code int
		if err == nil {
			code = resp.StatusCode
			switch {
			case code/100 == 2 && last:
				resp.Body.Close()
				return nil
			case code == http.StatusPermanentRedirect && !last:
				resp.Body.Close()
				// Range: bytes=0-N says what the server keeps.
				kept := off + int64(len(data))
				if r := resp.Header.Get("Range"); r != "" {
					if i := strings.LastIndexByte(r, '-'); i >= 0 {
						if end, perr := strconv.ParseInt(r[i+1:], 10, 64); perr == nil {
							kept = end + 1
						}
					}
				} else {
					kept = 0
				}
				if kept >= off+int64(len(data)) {
					return nil
				}
				if kept > off {
					data, off = data[kept-off:], kept
					continue
				}
				// Nothing of the chunk kept: send it again, as a
				// transient failure.
				code, err = http.StatusServiceUnavailable, errors.New("the server kept none of a chunk of a resumable upload")
			case code == http.StatusPermanentRedirect || code/100 == 2:
				resp.Body.Close()
				return fmt.Errorf("unexpected HTTP %d to a chunk of a resumable upload", code)
			}
			if err == nil {
				err = responseError(resp)
				resp.Body.Close()
			}
		}
		if ctx.Err() != nil {
			return err
		}
		var ae *auth.Error
		if code != 0 && !transient(code) || errors.As(err, &ae) && ae.Response != nil && !ae.Temporary() {
			return err
		}
		retry++
		if retry >= s.attempts || time.Now().After(deadline) || !backoff(ctx, retry) {
			return err
		}
	}
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

// Get opens key. The object's answer is awaited before it returns, so a
// missing object or bucket is reported here. A download cut short is
// resumed where it stopped, from the same generation of the object, up to
// the store's attempts.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key("get", key)
	if err != nil {
		return nil, err
	}
	u := s.objectURL(k) + "?alt=media"
	resp, err := s.do(ctx, http.MethodGet, u, nil, nil, false)
	if err != nil {
		return nil, s.disambiguate(ctx, "get", s.classify("get", key, err, true))
	}
	if g := resp.Header.Get("X-Goog-Generation"); g != "" {
		u += "&ifGenerationMatch=" + url.QueryEscape(g)
	}
	return &reader{ctx: ctx, body: resp.Body, s: s, key: key, url: u}, nil
}

type reader struct {
	ctx     context.Context
	body    io.ReadCloser
	s       *Store
	key     string
	url     string // the object's media URL, bound to its generation
	off     int64
	resumed int
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	r.off += int64(n)
	if err == nil || err == io.EOF {
		return n, err
	}
	if r.ctx.Err() == nil && r.resumed < r.s.attempts {
		r.resumed++
		resp, rerr := r.s.do(r.ctx, http.MethodGet, r.url, nil, http.Header{"Range": {fmt.Sprintf("bytes=%d-", r.off)}}, false)
		if rerr == nil && resp.StatusCode == http.StatusPartialContent {
			r.body.Close()
			r.body = resp.Body
			if n > 0 {
				return n, nil
			}
			return r.Read(p)
		}
		if rerr == nil {
			resp.Body.Close()
		}
	}
	return n, r.s.classify("get", r.key, err, true)
}

func (r *reader) Close() error { return r.body.Close() }

// objectAttrs is the part of an object's resource a store reads.
type objectAttrs struct {
	Name    string    `json:"name"`
	Size    string    `json:"size"` // a decimal string, as the API sends it
	Updated time.Time `json:"updated"`
}

func (a objectAttrs) info(key string) store.ObjectInfo {
	n, _ := strconv.ParseInt(a.Size, 10, 64)
	return store.ObjectInfo{Key: key, Size: n, LastModified: a.Updated}
}

// Stat describes key.
func (s *Store) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	k, err := s.key("stat", key)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	resp, err := s.do(ctx, http.MethodGet, s.objectURL(k)+"?fields=name,size,updated", nil, nil, false)
	if err != nil {
		return store.ObjectInfo{}, s.disambiguate(ctx, "stat", s.classify("stat", key, err, true))
	}
	defer resp.Body.Close()
	var a objectAttrs
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return store.ObjectInfo{}, s.classify("stat", key, err, true)
	}
	return a.info(key), nil
}

// Delete removes key; a missing object is not an error, a missing bucket is.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.key("delete", key)
	if err != nil {
		return err
	}
	resp, err := s.do(ctx, http.MethodDelete, s.objectURL(k), nil, nil, false)
	if err == nil {
		resp.Body.Close()
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
	var out []store.ObjectInfo
	token := ""
	for {
		q := url.Values{"prefix": {full}, "fields": {"items(name,size,updated),nextPageToken"}}
		if token != "" {
			q.Set("pageToken", token)
		}
		resp, err := s.do(ctx, http.MethodGet, s.bucketURL()+"/o?"+q.Encode(), nil, nil, false)
		if err != nil {
			return nil, s.classify("list", prefix, err, false)
		}
		var page struct {
			Items         []objectAttrs `json:"items"`
			NextPageToken string        `json:"nextPageToken"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, s.classify("list", prefix, err, false)
		}
		for _, a := range page.Items {
			key := a.Name
			if s.prefix != "" {
				key = strings.TrimPrefix(key, s.prefix+"/")
			}
			out = append(out, a.info(key))
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Probe writes, reads back and deletes a small object.
func (s *Store) Probe(ctx context.Context) error { return store.RunProbe(ctx, s) }
