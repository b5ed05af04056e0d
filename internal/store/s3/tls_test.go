package s3_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/backstop-io/backstop/internal/store"
	"github.com/backstop-io/backstop/internal/store/s3"
	"github.com/backstop-io/backstop/internal/testutil/minio"
	"github.com/backstop-io/backstop/internal/testutil/testtls"
)

// A MinIO serving HTTPS with a certificate of a private CA, as in-cluster
// object stores often do: with the CA given (caSecretRef) the store works;
// without it, with another CA, or with a certificate for another name, it
// is StoreUnreachable and the message names the certificate.
func TestStore_PrivateCA(t *testing.T) {
	ca := testtls.NewCA(t, "backstop-test-store-ca")
	cert, key := ca.Serving(t, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	srv := minio.StartTLS(t, minio.Serving{CertPEM: cert, KeyPEM: key, CAPEM: ca.PEM})
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("MinIO serves %s", srv.URL)
	}
	ctx := context.Background()
	open := func(endpoint, caFile string) *s3.Store {
		t.Helper()
		s, err := s3.New(s3.Config{Endpoint: endpoint, Bucket: srv.Bucket, ForcePathStyle: true, Region: "us-east-1",
			CAFile: caFile, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	for _, endpoint := range []string{srv.URL, srv.Endpoint} { // no scheme: HTTPS
		s := open(endpoint, ca.File(t))
		if err := s.Probe(ctx); err != nil {
			t.Fatalf("%s with its CA: probe: %v", endpoint, err)
		}
		if err := s.Put(ctx, "a/b.txt", strings.NewReader("over TLS")); err != nil {
			t.Fatalf("%s: put: %v", endpoint, err)
		}
		rc, err := s.Get(ctx, "a/b.txt")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "over TLS" {
			t.Errorf("%s: read back %q", endpoint, got)
		}
	}

	otherName, otherKey := ca.Serving(t, []string{"store.elsewhere.example"}, nil)
	misnamed := minio.StartTLS(t, minio.Serving{CertPEM: otherName, KeyPEM: otherKey, CAPEM: ca.PEM, ServerName: "store.elsewhere.example"})
	for name, s := range map[string]*s3.Store{
		"no CA":        open(srv.URL, ""),
		"another CA":   open(srv.URL, testtls.NewCA(t, "another-ca").File(t)),
		"another name": open(misnamed.URL, ca.File(t)),
	} {
		err := s.Probe(ctx)
		if store.ReasonOf(err) != store.ReasonStoreUnreachable || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: reason %q, error %v; want %s naming the certificate", name, store.ReasonOf(err), err, store.ReasonStoreUnreachable)
		}
	}
}
