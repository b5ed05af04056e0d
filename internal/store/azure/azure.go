// Package azure is a store in an Azure Blob Storage container, through the
// official SDK. Uploads stream as block blobs: blocks of a bounded size are
// staged (a bounded number at a time) and the blob exists only once its
// block list is committed, after the last block. A failed upload commits
// nothing, so no blob appears at the key, and it discards the blocks it
// staged. A run killed outright cannot: its blocks stay, uncommitted, until
// the next upload to the same key or the deletion of the artifact clears
// them, or Azure discards them a week after they were staged.
package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/backstop-io/backstop/internal/store"
)

const (
	// DefaultBlockSize is the size of one staged block. With Azure's limit
	// of 50,000 blocks per blob it bounds an object to about 195 GiB.
	DefaultBlockSize = 4 << 20
	// DefaultConcurrency is how many blocks are in flight at once; memory is
	// about BlockSize x Concurrency.
	DefaultConcurrency = 2
	// MaxBlockSize is Azure's limit for one block.
	MaxBlockSize = 4000 << 20
	// MaxBlocks is the number of blocks Azure takes in one blob.
	MaxBlocks = 50000
)

// Config configures an Azure Blob store. AccountKey and SASToken are
// secrets; exactly one of them is needed.
type Config struct {
	// Account is the storage account name.
	Account string
	// Container is the container name.
	Container string
	// Prefix is prepended to every key.
	Prefix string
	// Endpoint is the blob service URL; https://<account>.blob.core.windows.net
	// when empty. For Azurite: http://127.0.0.1:<port>/<account>.
	Endpoint string
	// AccountKey is the account's shared key (base64).
	AccountKey string
	// SASToken is a shared access signature (the query string, with or
	// without a leading "?"), for the container or the account.
	SASToken string
	// BlockSize is the block size; DefaultBlockSize when 0.
	BlockSize int64
	// Concurrency is the number of blocks uploaded at once; DefaultConcurrency when 0.
	Concurrency int
	// MaxBlocks is the most blocks of a blob; MaxBlocks when 0. A test
	// lowers it to reach the limit with little data.
	MaxBlocks int
	// MaxRetries is how often a failed request is retried; 3 when 0.
	MaxRetries int
}

// Store is an Azure Blob store.
type Store struct {
	c           *container.Client
	account     string
	container   string
	prefix      string
	endpoint    string
	blockSize   int64
	concurrency int
	maxBlocks   int
}

var _ store.Store = (*Store)(nil)

// New returns an Azure Blob store. It does not contact the server.
func New(c Config) (*Store, error) {
	if c.Account == "" {
		return nil, errors.New("azure store: no storage account given")
	}
	if c.Container == "" {
		return nil, errors.New("azure store: no container given")
	}
	if c.AccountKey != "" && c.SASToken != "" {
		return nil, errors.New("azure store: give an account key or a SAS token, not both")
	}
	if c.AccountKey == "" && c.SASToken == "" {
		return nil, errors.New("azure store: no credentials: an account key or a SAS token is needed")
	}
	ep := c.Endpoint
	if ep == "" {
		ep = "https://" + c.Account + ".blob.core.windows.net"
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return nil, errors.New("azure store: the endpoint is not a valid URL (want http(s)://host[:port][/account])")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("azure store: unsupported endpoint scheme %q", u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("azure store: the endpoint URL must not hold credentials or a query (give a SAS token separately)")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	shown := u.String()
	containerURL := shown + "/" + url.PathEscape(c.Container)

	retries := c.MaxRetries
	if retries == 0 {
		retries = 3
	}
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{
			MaxRetries:    int32(retries),
			RetryDelay:    500 * time.Millisecond,
			MaxRetryDelay: 10 * time.Second,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "backstop"},
	}}
	var cl *container.Client
	if c.AccountKey != "" {
		cred, err := azblob.NewSharedKeyCredential(c.Account, c.AccountKey)
		if err != nil {
			return nil, errors.New("azure store: the account key is not valid base64")
		}
		cl, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("azure store: %v", err)
		}
	} else {
		sas := strings.TrimPrefix(strings.TrimSpace(c.SASToken), "?")
		if _, err := url.ParseQuery(sas); err != nil {
			return nil, errors.New("azure store: the SAS token is not a valid query string")
		}
		cl, err = container.NewClientWithNoCredential(containerURL+"?"+sas, opts)
		if err != nil {
			return nil, errors.New("azure store: cannot build a client from the endpoint and SAS token")
		}
	}
	bs := c.BlockSize
	if bs <= 0 {
		bs = DefaultBlockSize
	}
	if bs > MaxBlockSize {
		return nil, fmt.Errorf("azure store: block size over Azure's limit of %d MiB", MaxBlockSize>>20)
	}
	conc := c.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	maxBlocks := c.MaxBlocks
	if maxBlocks <= 0 {
		maxBlocks = MaxBlocks
	}
	return &Store{
		c:           cl,
		account:     c.Account,
		container:   c.Container,
		prefix:      strings.Trim(c.Prefix, "/"),
		endpoint:    shown,
		blockSize:   bs,
		concurrency: conc,
		maxBlocks:   maxBlocks,
	}, nil
}

func (s *Store) String() string {
	return fmt.Sprintf("azure container %q in account %q at %s", s.container, s.account, s.endpoint)
}

func (s *Store) key(op, key string) (string, error) {
	k, err := store.FullKey(s.prefix, key)
	if err != nil {
		return "", &store.Error{Reason: store.ReasonStoreError, Op: op, Err: err}
	}
	return k, nil
}

func (s *Store) containerMissing(op string) error {
	return &store.Error{Reason: store.ReasonBucketNotFound, Op: op, Err: fmt.Errorf("container %q does not exist in account %q", s.container, s.account)}
}

// Error codes that mean the credentials were refused or do not allow the operation.
var authCodes = map[string]bool{
	"AuthenticationFailed":               true,
	"AuthorizationFailure":               true,
	"AuthorizationPermissionMismatch":    true,
	"AuthorizationProtocolMismatch":      true,
	"AuthorizationResourceTypeMismatch":  true,
	"AuthorizationServiceMismatch":       true,
	"AuthorizationSourceIPMismatch":      true,
	"InsufficientAccountPermissions":     true,
	"InvalidAuthenticationInfo":          true,
	"NoAuthenticationInformation":        true,
	"AccountIsDisabled":                  true,
	"KeyBasedAuthenticationNotPermitted": true,
}

// classify maps an SDK or network error to a store error.
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
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		msg := fmt.Sprintf("HTTP %d", re.StatusCode)
		if re.ErrorCode != "" {
			msg += " " + re.ErrorCode
		}
		e := &store.Error{Reason: store.ReasonStoreError, Op: op, Key: key, Err: errors.New(msg)}
		switch {
		case re.ErrorCode == "ContainerNotFound":
			return s.containerMissing(op)
		case re.ErrorCode == "BlobNotFound":
			e.Reason = store.ReasonNotFound
		case authCodes[re.ErrorCode] || re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
			e.Reason = store.ReasonAuthenticationFailed
		case re.StatusCode == http.StatusNotFound && re.ErrorCode == "":
			// A HEAD response has no body; disambiguate decides.
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

// scrub drops the request URL (whose query may hold a SAS token) that
// *url.Error repeats.
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

// disambiguate turns a NotFound for a blob into BucketNotFound when the
// container is missing.
func (s *Store) disambiguate(ctx context.Context, op string, err error) error {
	if !store.IsNotFound(err) {
		return err
	}
	_, cerr := s.c.GetProperties(ctx, nil)
	var re *azcore.ResponseError
	if errors.As(cerr, &re) && (re.ErrorCode == "ContainerNotFound" || re.StatusCode == http.StatusNotFound) {
		return s.containerMissing(op)
	}
	return err
}

var octetStream = &blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream")}

// Put streams r to key as a block blob. Data that fits in one block is
// uploaded in one request; larger data is staged block by block, at most
// Concurrency blocks at a time, and committed after the last one. On any
// failure nothing is committed.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.key("put", key)
	if err != nil {
		return err
	}
	bb := s.c.NewBlockBlobClient(k)

	firstSize := int64(s.blockSize)
	if n, ok := store.KnownLength(r); ok && n < firstSize {
		firstSize = n + 1 // a small object (a manifest): no full block buffer
	} else if !ok {
		// A run killed during its upload of this key (kill -9, a lost node)
		// left uncommitted blocks; this run of the same key clears them.
		// Best effort (credentials that may read no block list still get
		// a backup), but a store out of reach fails the upload here.
		if err := s.classify("put", key, s.clearUncommitted(ctx, k)); store.ReasonOf(err) == store.ReasonStoreUnreachable {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	first := make([]byte, firstSize)
	n, rerr := io.ReadFull(r, first)
	if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
		_, err := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(first[:n])), &blockblob.UploadOptions{HTTPHeaders: octetStream})
		return s.classify("put", key, err)
	}
	if rerr != nil {
		return s.classify("put", key, rerr)
	}

	// Blocks are staged with the caller's context: when this upload fails
	// (the reader's error, a block refused), cancel stops reading while the
	// blocks in flight finish, so that all are in before they are cleared;
	// a request cut off on the wire may still land after the clearing.
	// When the caller cancels, that can happen: the next run clears them.
	stageCtx := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idPrefix [16]byte
	if _, err := rand.Read(idPrefix[:]); err != nil {
		return &store.Error{Reason: store.ReasonStoreError, Op: "put", Key: key, Err: err}
	}
	blockID := func(i int) string {
		// Every ID of a blob must have the same length.
		return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%s-%08d", hex.EncodeToString(idPrefix[:]), i)))
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		stageErr error
	)
	// pool holds the buffers not in flight: first is in use for block 0,
	// the others are allocated when first needed.
	pool := make(chan []byte, s.concurrency)
	for i := 1; i < s.concurrency; i++ {
		pool <- nil
	}
	var ids []string
	buf, fill := first, n
	var srcErr error
	for i := 0; ; i++ {
		if i > 0 {
			select {
			case buf = <-pool:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			if buf == nil {
				buf = make([]byte, s.blockSize)
			}
			fill, rerr = io.ReadFull(r, buf)
			if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
				srcErr = rerr
				cancel()
				break
			}
		}
		if fill > 0 && i >= s.maxBlocks {
			// Nothing is committed: the staged blocks are dropped by Azure.
			srcErr = store.TooLarge(key, s.maxBlocks, "block", s.blockSize, "spec.azure.blockSizeMiB")
			cancel()
			break
		}
		if fill > 0 {
			id := blockID(i)
			ids = append(ids, id)
			wg.Add(1)
			go func(b []byte) {
				defer wg.Done()
				_, err := bb.StageBlock(stageCtx, id, streaming.NopCloser(bytes.NewReader(b)), nil)
				if err != nil {
					mu.Lock()
					if stageErr == nil {
						stageErr = err
					}
					mu.Unlock()
					cancel()
				}
				pool <- b[:cap(b)]
			}(buf[:fill])
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
	}
	wg.Wait()
	err = srcErr
	if err == nil {
		err = stageErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		_, err = bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{HTTPHeaders: octetStream})
		if err == nil {
			return nil
		}
	}
	// Discard the blocks this upload staged, with a context that outlives
	// a cancelled run.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer dcancel()
	_ = s.clearUncommitted(dctx, k, ids...)
	return s.classify("put", key, err)
}

// Get opens key. The download starts before it returns, so a missing
// object or container is reported here. A broken connection is resumed
// where it stopped.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key("get", key)
	if err != nil {
		return nil, err
	}
	resp, err := s.c.NewBlobClient(k).DownloadStream(ctx, nil)
	if err != nil {
		return nil, s.disambiguate(ctx, "get", s.classify("get", key, err))
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	return &reader{rc: body, s: s, key: key}, nil
}

type reader struct {
	rc  io.ReadCloser
	s   *Store
	key string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.classify("get", r.key, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.rc.Close() }

// Stat describes key.
func (s *Store) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	k, err := s.key("stat", key)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	p, err := s.c.NewBlobClient(k).GetProperties(ctx, nil)
	if err != nil {
		return store.ObjectInfo{}, s.disambiguate(ctx, "stat", s.classify("stat", key, err))
	}
	oi := store.ObjectInfo{Key: key}
	if p.ContentLength != nil {
		oi.Size = *p.ContentLength
	}
	if p.LastModified != nil {
		oi.LastModified = *p.LastModified
	}
	return oi, nil
}

// Delete removes key and its snapshots; a missing object is not an error,
// a missing container is.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.key("delete", key)
	if err != nil {
		return err
	}
	_, err = s.c.NewBlobClient(k).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)})
	if err != nil {
		err = s.disambiguate(ctx, "delete", s.classify("delete", key, err))
		if !store.IsNotFound(err) {
			return err
		}
	}
	// Blocks that a killed upload staged at key and never committed, where
	// no blob was committed. Best effort: Azure discards them within a week.
	_ = s.clearUncommitted(ctx, k)
	return nil
}

// listPrefix is the blob name prefix of the keys under prefix.
func (s *Store) listPrefix(prefix string) string {
	if s.prefix == "" {
		return prefix
	}
	return s.prefix + "/" + prefix
}

// List returns the objects under prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	full := s.listPrefix(prefix)
	opts := &container.ListBlobsFlatOptions{}
	if full != "" {
		opts.Prefix = &full
	}
	pager := s.c.NewListBlobsFlatPager(opts)
	var out []store.ObjectInfo
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, s.classify("list", prefix, err)
		}
		for _, it := range page.Segment.BlobItems {
			if it == nil || it.Name == nil {
				continue
			}
			key := *it.Name
			if s.prefix != "" {
				key = strings.TrimPrefix(key, s.prefix+"/")
			}
			oi := store.ObjectInfo{Key: key}
			if it.Properties != nil {
				if it.Properties.ContentLength != nil {
					oi.Size = *it.Properties.ContentLength
				}
				if it.Properties.LastModified != nil {
					oi.LastModified = *it.Properties.LastModified
				}
			}
			out = append(out, oi)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Probe writes, reads back and deletes a small object.
func (s *Store) Probe(ctx context.Context) error { return store.RunProbe(ctx, s) }

// hasCode tells whether err is an Azure error with one of codes.
func hasCode(err error, codes ...string) bool {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, c := range codes {
		if re.ErrorCode == c {
			return true
		}
	}
	return false
}

// clearUncommitted discards the blocks that uploads staged at the blob k
// and never committed, where no blob is committed at k. Azure has no call
// that drops uncommitted blocks, but committing a block list discards
// every block it does not name: an empty list makes an empty blob, which is
// then deleted. The commit is made only if no blob exists at k
// (If-None-Match: *) and the deletion only of the blob that commit made
// (If-Match: its ETag), so a committed blob is never changed, not even one
// committed in between. Where a blob is committed, its uncommitted blocks
// are left: the next commit at k (the upload that follows) or the blob's
// deletion discards them, or Azure a week after they were staged. It must
// not run while an upload of k stages blocks; uploads of one key do not run
// at once (an artifact path belongs to one backup run), except when a node
// is cut off with a run still going and the Job starts another: then the
// later run's clearing makes the earlier one fail at its commit. With
// mine, the block IDs a failed upload staged, it clears only if one of
// them is still there, so that earlier run, failing, leaves alone the
// blocks of the run that replaced it.
func (s *Store) clearUncommitted(ctx context.Context, k string, mine ...string) error {
	bb := s.c.NewBlockBlobClient(k)
	bl, err := bb.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		if hasCode(err, "BlobNotFound") {
			return nil
		}
		return err
	}
	if len(bl.UncommittedBlocks) == 0 {
		return nil
	}
	if len(mine) > 0 {
		ours := make(map[string]bool, len(mine))
		for _, id := range mine {
			ours[id] = true
		}
		if !slices.ContainsFunc(bl.UncommittedBlocks, func(b *blockblob.Block) bool { return b != nil && b.Name != nil && ours[*b.Name] }) {
			return nil
		}
	}
	made, err := bb.CommitBlockList(ctx, nil, &blockblob.CommitBlockListOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	if err != nil {
		if hasCode(err, "BlobAlreadyExists", "ConditionNotMet") {
			return nil // a committed blob: left as it is
		}
		return err
	}
	_, err = bb.Delete(ctx, &blob.DeleteOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: made.ETag}},
	})
	if err != nil && !hasCode(err, "BlobNotFound", "ConditionNotMet") {
		return err
	}
	return nil
}

// blobNames walks the names of a listing, page by page.
type blobNames struct {
	pager *runtime.Pager[container.ListBlobsFlatResponse]
	items []*container.BlobItem
}

// names lists the blobs whose names start with full; with uncommitted, the
// blobs that hold only uncommitted blocks too.
func (s *Store) names(full string, uncommitted bool) *blobNames {
	opts := &container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{UncommittedBlobs: uncommitted}}
	if full != "" {
		opts.Prefix = &full
	}
	return &blobNames{pager: s.c.NewListBlobsFlatPager(opts)}
}

// next returns the next name, or false after the last.
func (w *blobNames) next(ctx context.Context) (string, bool, error) {
	for {
		for len(w.items) > 0 {
			it := w.items[0]
			w.items = w.items[1:]
			if it != nil && it.Name != nil {
				return *it.Name, true, nil
			}
		}
		if !w.pager.More() {
			return "", false, nil
		}
		page, err := w.pager.NextPage(ctx)
		if err != nil {
			return "", false, err
		}
		w.items = page.Segment.BlobItems
	}
}

// eachUncommitted calls fn with the name of each blob under full that was
// never committed and holds uncommitted blocks: the blobs a listing shows
// only when asked for uncommitted blobs too. The two listings, both in name
// order, are walked side by side, so memory does not grow with the
// container. A name may be reported that was committed or cleared in
// between: fn checks the blob itself.
func (s *Store) eachUncommitted(ctx context.Context, full string, fn func(name string) error) error {
	all, committed := s.names(full, true), s.names(full, false)
	c, more, err := committed.next(ctx)
	if err != nil {
		return err
	}
	for {
		name, ok, err := all.next(ctx)
		if err != nil || !ok {
			return err
		}
		for more && c < name {
			if c, more, err = committed.next(ctx); err != nil {
				return err
			}
		}
		if more && c == name {
			continue
		}
		if err := fn(name); err != nil {
			return err
		}
	}
}

var (
	_ store.DebrisCounter = (*Store)(nil)
	_ store.DebrisClearer = (*Store)(nil)
)

// maxSizedBlobs bounds the blobs Debris reads the block list of, one
// request each: a probe stays quick in a container full of debris.
const maxSizedBlobs = 100

// Debris counts the blobs under the store's prefix that hold uncommitted
// blocks and were never committed (uploads that stopped before their
// commit), and the bytes of those blocks: the first maxSizedBlobs of them
// only, with Partial set, when there are more. Uncommitted blocks of a
// committed blob are not counted: a listing does not show them.
func (s *Store) Debris(ctx context.Context) (store.Debris, error) {
	var d store.Debris
	err := s.eachUncommitted(ctx, s.listPrefix(""), func(name string) error {
		if d.Objects >= maxSizedBlobs {
			d.Objects++
			d.Partial = true
			return nil
		}
		bl, err := s.c.NewBlockBlobClient(name).GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
		if err != nil {
			if hasCode(err, "BlobNotFound") {
				return nil // committed or cleared since it was listed
			}
			return err
		}
		if len(bl.UncommittedBlocks) == 0 {
			return nil
		}
		d.Objects++
		for _, b := range bl.UncommittedBlocks {
			if b != nil && b.Size != nil {
				d.Bytes += *b.Size
			}
		}
		return nil
	})
	if err != nil {
		return store.Debris{}, s.classify("list uncommitted blobs", "", err)
	}
	return d, nil
}

// ClearDebris discards the uncommitted blocks of every blob under prefix
// that was never committed, as clearUncommitted does for one key. Where a
// blob cannot be cleared it goes on with the others and returns the first
// error.
func (s *Store) ClearDebris(ctx context.Context, prefix string) error {
	var first error
	err := s.eachUncommitted(ctx, s.listPrefix(prefix), func(name string) error {
		if err := s.clearUncommitted(ctx, name); err != nil && first == nil {
			first = s.classify("clear uncommitted blocks", strings.TrimPrefix(name, s.listPrefix("")), err)
		}
		return nil
	})
	if err != nil {
		return s.classify("list uncommitted blobs", prefix, err)
	}
	return first
}
