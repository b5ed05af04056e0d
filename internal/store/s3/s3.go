// Package s3 is a store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW,
// Cloudflare R2, ...), through minio-go. Uploads stream in multipart parts of
// a bounded size, so memory does not grow with the object; a failed upload
// is aborted so no partial object or dangling parts remain.
package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/backstop-io/backstop/internal/store"
)

// DefaultPartSize is the multipart part size, as the AWS CLI's. With S3's
// limit of 10,000 parts it bounds an object to about 78 GiB; raise it for
// larger data. A backup holds one part in memory.
const DefaultPartSize = 8 << 20

// MaxParts is the number of parts S3 takes in one multipart upload.
const MaxParts = 10000

// Config configures an S3 store. AccessKeyID and SecretAccessKey are secrets.
type Config struct {
	// Endpoint is host[:port] or a URL (http:// or https://).
	Endpoint string
	Bucket   string
	Region   string
	// Prefix is prepended to every key.
	Prefix string
	// ForcePathStyle addresses the bucket in the path, not in the host name.
	ForcePathStyle bool
	// Insecure uses plain HTTP when Endpoint has no scheme.
	Insecure bool
	// CAFile is a PEM bundle of extra CAs to trust.
	CAFile string
	// AccessKeyID and SecretAccessKey are the credentials.
	AccessKeyID     string
	SecretAccessKey string
	// PartSize is the multipart part size; DefaultPartSize when 0.
	PartSize uint64
	// MaxParts is the most parts of an upload; MaxParts when 0. A test
	// lowers it to reach the limit with little data.
	MaxParts int
	// MaxRetries is how often a request is tried; 3 when 0.
	MaxRetries int
}

// Store is an S3 store.
type Store struct {
	c        *minio.Client
	bucket   string
	prefix   string
	endpoint string
	partSize uint64
	maxParts int
}

var _ store.Store = (*Store)(nil)

// New returns an S3 store. It does not contact the server.
func New(c Config) (*Store, error) {
	if c.Endpoint == "" {
		return nil, errors.New("s3 store: no endpoint given")
	}
	if c.Bucket == "" {
		return nil, errors.New("s3 store: no bucket given")
	}
	host := c.Endpoint
	secure := !c.Insecure
	if strings.Contains(c.Endpoint, "://") {
		u, err := url.Parse(c.Endpoint)
		if err != nil {
			return nil, errors.New("s3 store: endpoint is not a valid URL")
		}
		if u.User != nil {
			return nil, errors.New("s3 store: the endpoint URL must not hold credentials")
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
			secure = true
		default:
			return nil, fmt.Errorf("s3 store: unsupported endpoint scheme %q", u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, errors.New("s3 store: the endpoint URL must not have a path")
		}
		host = u.Host
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3 store: %v", err)
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3 store: reading CA file: %v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("s3 store: the CA file holds no PEM certificate")
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	lookup := minio.BucketLookupAuto
	if c.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	retries := c.MaxRetries
	if retries == 0 {
		retries = 3
	}
	cl, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(c.AccessKeyID, c.SecretAccessKey, ""),
		Secure:       secure,
		Transport:    tr,
		Region:       c.Region,
		BucketLookup: lookup,
		MaxRetries:   retries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 store: %v", err)
	}
	ps := c.PartSize
	if ps == 0 {
		ps = DefaultPartSize
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	maxParts := c.MaxParts
	if maxParts <= 0 {
		maxParts = MaxParts
	}
	return &Store{c: cl, bucket: c.Bucket, prefix: strings.Trim(c.Prefix, "/"), endpoint: scheme + "://" + host, partSize: ps, maxParts: maxParts}, nil
}

func (s *Store) String() string { return fmt.Sprintf("s3 bucket %q at %s", s.bucket, s.endpoint) }

func (s *Store) key(op, key string) (string, error) {
	k, err := store.FullKey(s.prefix, key)
	if err != nil {
		return "", &store.Error{Reason: store.ReasonStoreError, Op: op, Err: err}
	}
	return k, nil
}

// classify maps a minio-go or network error to a store error.
func (s *Store) classify(op, key string, err error) error {
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
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.Code != "" {
		msg := er.Code
		if er.Message != "" {
			msg += ": " + er.Message
		}
		e := &store.Error{Op: op, Key: key, Err: errors.New(msg), Reason: store.ReasonStoreError}
		switch er.Code {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
			"ExpiredToken", "InvalidSecurity", "AuthorizationHeaderMalformed", "AllAccessDisabled":
			e.Reason = store.ReasonAuthenticationFailed
		case "NoSuchBucket":
			e.Reason = store.ReasonBucketNotFound
			e.Err = fmt.Errorf("bucket %q does not exist", s.bucket)
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			e.Reason = store.ReasonNotFound
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
// bucket is missing (a HEAD response has no body to say which).
func (s *Store) disambiguate(ctx context.Context, err error) error {
	if !store.IsNotFound(err) {
		return err
	}
	ok, berr := s.c.BucketExists(ctx, s.bucket)
	if berr == nil && !ok {
		return &store.Error{Reason: store.ReasonBucketNotFound, Op: "stat", Err: fmt.Errorf("bucket %q does not exist", s.bucket)}
	}
	return err
}

// Put streams r to key as a multipart upload with parts of the configured
// size. On failure the upload is aborted. A reader that knows its length
// (a manifest in a bytes.Reader) is sent as one plain PUT, without a part
// buffer.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.key("put", key)
	if err != nil {
		return err
	}
	size, known := store.KnownLength(r)
	if !known {
		// A run killed during its upload of this key (kill -9, a lost node)
		// left an incomplete multipart upload, whose parts are billed until
		// aborted; this run of the same key aborts it. Best effort: a user
		// without the right to list uploads still gets a backup.
		s.abortIncomplete(ctx, k)
		size = -1
		r = &partLimitReader{r: r, left: int64(s.maxParts) * int64(s.partSize), err: store.TooLarge(key, s.maxParts, "part", int64(s.partSize), "spec.s3.partSizeMiB")}
	}
	_, err = s.c.PutObject(ctx, s.bucket, k, r, size, minio.PutObjectOptions{
		PartSize:    s.partSize,
		ContentType: "application/octet-stream",
	})
	if err == nil {
		return nil
	}
	// minio-go aborts the upload it started; make sure, with a context that
	// outlives a cancelled run.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = s.c.RemoveIncompleteUpload(actx, s.bucket, k)
	return s.classify("put", key, err)
}

// partLimitReader reads at most left bytes from r and fails with err when
// r holds more: the upload stops with a precise error at the part limit
// instead of the client library's generic one, and no object is completed.
type partLimitReader struct {
	r    io.Reader
	left int64
	err  error
}

func (l *partLimitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var b [1]byte
		n, err := io.ReadFull(l.r, b[:])
		if n > 0 {
			return 0, l.err
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// Get opens key. The first byte is fetched before it returns, so a missing
// object or bucket is reported here.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key("get", key)
	if err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, k, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.classify("get", key, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s.disambiguate(ctx, s.classify("get", key, err))
	}
	return &reader{obj: obj, s: s, key: key}, nil
}

type reader struct {
	obj *minio.Object
	s   *Store
	key string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.obj.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.classify("get", r.key, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.obj.Close() }

// Stat describes key.
func (s *Store) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	k, err := s.key("stat", key)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	oi, err := s.c.StatObject(ctx, s.bucket, k, minio.StatObjectOptions{})
	if err != nil {
		return store.ObjectInfo{}, s.disambiguate(ctx, s.classify("stat", key, err))
	}
	return store.ObjectInfo{Key: key, Size: oi.Size, LastModified: oi.LastModified}, nil
}

// Delete removes key.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.key("delete", key)
	if err != nil {
		return err
	}
	err = s.c.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{})
	if err != nil {
		err = s.classify("delete", key, err)
		if store.IsNotFound(err) {
			err = nil
		}
	}
	if err == nil {
		s.abortIncomplete(ctx, k)
	}
	return err
}

// abortIncomplete aborts the incomplete multipart uploads of the object k,
// ignoring errors; a cancelled run does not wait for it.
func (s *Store) abortIncomplete(ctx context.Context, k string) {
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = s.c.RemoveIncompleteUpload(actx, s.bucket, k)
}

// List returns the objects under prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	full := s.prefix
	if full != "" {
		full += "/"
	}
	full += prefix
	var out []store.ObjectInfo
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true}) {
		if oi.Err != nil {
			return nil, s.classify("list", prefix, oi.Err)
		}
		key := oi.Key
		if s.prefix != "" {
			key = strings.TrimPrefix(key, s.prefix+"/")
		}
		out = append(out, store.ObjectInfo{Key: key, Size: oi.Size, LastModified: oi.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Probe writes, reads back and deletes a small object.
func (s *Store) Probe(ctx context.Context) error { return store.RunProbe(ctx, s) }

// maxSizedUploads bounds the uploads Debris lists the parts of, one request
// each: a probe stays quick in a bucket full of debris.
const maxSizedUploads = 100

var _ store.DebrisCounter = (*Store)(nil)

// Debris counts the incomplete multipart uploads under the store's prefix
// and the bytes of their parts: the first maxSizedUploads of them only, with
// Partial set, when there are more.
func (s *Store) Debris(ctx context.Context) (store.Debris, error) {
	prefix := s.prefix
	if prefix != "" {
		prefix += "/"
	}
	d, err := s.countUploads(ctx, prefix, prefix)
	if err == nil && d.Objects == 0 && prefix != "" {
		// MinIO takes a non-empty prefix as one exact key, and lists every
		// upload of the bucket only without one: filter them here.
		d, err = s.countUploads(ctx, "", prefix)
	}
	return d, err
}

// countUploads counts the incomplete uploads listed under list whose keys
// start with keep.
func (s *Store) countUploads(ctx context.Context, list, keep string) (store.Debris, error) {
	core := minio.Core{Client: s.c}
	var d store.Debris
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, list, true) {
		if u.Err != nil {
			return store.Debris{}, s.classify("list uploads", "", u.Err)
		}
		if !strings.HasPrefix(u.Key, keep) {
			continue
		}
		d.Objects++
		if d.Objects > maxSizedUploads {
			d.Partial = true
			continue
		}
		n, err := s.uploadedBytes(ctx, core, u.Key, u.UploadID)
		if err != nil {
			if store.IsNotFound(err) {
				// Completed or aborted since it was listed.
				d.Objects--
				continue
			}
			return store.Debris{}, err
		}
		d.Bytes += n
	}
	return d, nil
}

// uploadedBytes sums the sizes of the parts of one multipart upload.
func (s *Store) uploadedBytes(ctx context.Context, core minio.Core, key, uploadID string) (int64, error) {
	var n int64
	marker := 0
	for {
		res, err := core.ListObjectParts(ctx, s.bucket, key, uploadID, marker, 1000)
		if err != nil {
			return 0, s.classify("list parts", "", err)
		}
		for _, p := range res.ObjectParts {
			n += p.Size
		}
		if !res.IsTruncated {
			return n, nil
		}
		marker = res.NextPartNumberMarker
	}
}

var _ store.DebrisClearer = (*Store)(nil)

// ClearDebris aborts the incomplete multipart uploads of the keys under
// prefix: a run killed before it completed any object there left them, and
// Delete reaches only the keys List shows. Where one cannot be aborted it
// goes on with the others and returns the first error.
func (s *Store) ClearDebris(ctx context.Context, prefix string) error {
	full := store.JoinKey(s.prefix, prefix)
	if strings.HasSuffix(prefix, "/") {
		full += "/"
	}
	n, err := s.abortUploads(ctx, full, full)
	if err == nil && n == 0 && full != "" {
		// MinIO takes a non-empty prefix as one exact key (see Debris).
		_, err = s.abortUploads(ctx, "", full)
	}
	return err
}

// abortUploads aborts the incomplete uploads listed under list whose keys
// start with keep, and returns how many it found.
func (s *Store) abortUploads(ctx context.Context, list, keep string) (int, error) {
	core := minio.Core{Client: s.c}
	var (
		n     int
		first error
	)
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, list, true) {
		if u.Err != nil {
			return n, s.classify("list uploads", "", u.Err)
		}
		if !strings.HasPrefix(u.Key, keep) {
			continue
		}
		n++
		if err := core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil && first == nil {
			if err = s.classify("abort upload", "", err); !store.IsNotFound(err) {
				first = err
			}
		}
	}
	return n, first
}

// IncompleteUploads counts the unfinished multipart uploads under prefix.
// Tests use it to prove a failed upload left nothing behind.
func (s *Store) IncompleteUploads(ctx context.Context, prefix string) (int, error) {
	full := store.JoinKey(s.prefix, prefix)
	n := 0
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, full, true) {
		if u.Err != nil {
			return n, s.classify("list uploads", prefix, u.Err)
		}
		n++
	}
	return n, nil
}
