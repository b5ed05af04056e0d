package e2e

import (
	"net"
	"path"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/testutil/minio"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
	"github.com/backstop-io/backstop/internal/testutil/testtls"
)

// testVerifiedTLS backs up a PostgreSQL server that refuses connections
// without TLS, through a target with tlsMode verify-full and its CA in a
// Secret (caSecretRef): the Job mounts it and the agent checks the server
// against it. The same target with another CA fails, naming the
// certificate, and stores nothing. The store is HTTPS with a private CA.
func testVerifiedTLS(t *testing.T, e *env) {
	g := NewWithT(t)
	pg := pgserver.Start(t) // its own server: it requires TLS
	ca := testtls.NewCA(t, "backstop-e2e-db-ca")
	cert, key := ca.Serving(t, []string{"localhost"}, []net.IP{net.ParseIP(pg.Host)})
	pg.EnableTLS(t, cert, key)
	ns := e.namespace(t)
	// The store too serves HTTPS with a certificate of a private CA, given
	// in its caSecretRef: the operator's probe and manifest check and the
	// agent's upload all trust it.
	storeCA := testtls.NewCA(t, "backstop-e2e-store-ca")
	storeCert, storeKey := storeCA.Serving(t, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	s3 := minio.StartTLS(t, minio.Serving{CertPEM: storeCert, KeyPEM: storeKey, CAPEM: storeCA.PEM})
	e.secret(t, ns, "minio-tls", map[string]string{"accessKeyID": s3.AccessKey, "secretAccessKey": s3.SecretKey})
	e.secret(t, ns, "minio-tls-ca", map[string]string{"ca.crt": string(storeCA.PEM)})
	store := e.s3Store("minio-tls", ns)
	store.Spec.S3.Bucket = s3.Bucket
	store.Spec.S3.Endpoint = s3.URL
	store.Spec.S3.CredentialsSecretRef.Name = "minio-tls"
	store.Spec.S3.CASecretRef = &backstopv1alpha1.SecretKeySelector{Name: "minio-tls-ca", Key: "ca.crt"}
	e.create(t, store)
	e.waitReady(t, store)

	target := func(name, caPEM string) *backstopv1alpha1.BackupTarget {
		db := "tls_" + name
		pg.CreateDatabase(t, db, "")
		pg.MustQuery(t, db, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)")
		e.secret(t, ns, "pg-"+name, map[string]string{"password": pg.Password})
		e.secret(t, ns, "pg-"+name+"-ca", map[string]string{"ca.crt": caPEM})
		bt := &backstopv1alpha1.BackupTarget{
			ObjectMeta: metav1.ObjectMeta{Name: "pg-" + name, Namespace: ns},
			Spec: backstopv1alpha1.BackupTargetSpec{Postgres: &backstopv1alpha1.PostgresTarget{
				DatabaseConnection: backstopv1alpha1.DatabaseConnection{
					Host:        pg.Host,
					Port:        ptr.To(int32(pg.Port)),
					TLSMode:     backstopv1alpha1.TLSVerifyFull,
					CASecretRef: &backstopv1alpha1.SecretKeySelector{Name: "pg-" + name + "-ca", Key: "ca.crt"},
					Credentials: backstopv1alpha1.DatabaseCredentials{
						Username:          pg.User,
						PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: "pg-" + name, Key: "password"},
					},
				},
				Database: db,
			}},
		}
		e.create(t, bt)
		e.waitReady(t, bt)
		return bt
	}
	trusted := target("trusted", string(ca.PEM))
	untrusted := target("untrusted", string(testtls.NewCA(t, "another-ca").PEM))

	e.create(t, onDemandBackup(ns, "over-tls", trusted.Name, store.Name))
	bk := e.waitBackup(t, ns, "over-tls", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), bk.Status.Message)
	g.Expect(s3.Keys(t, "e2e/"+path.Join(ns, trusted.Name, "over-tls")+"/")).To(HaveLen(2), "the manifest and the data object")

	e.create(t, onDemandBackup(ns, "untrusted-server", untrusted.Name, store.Name))
	bk = e.waitBackup(t, ns, "untrusted-server", 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupFailed))
	g.Expect(bk.Status.Reason).To(Equal(backstopv1alpha1.ReasonTargetUnreachable), bk.Status.Message)
	g.Expect(bk.Status.Message).To(ContainSubstring("certificate verify failed"))
	g.Expect(bk.Status.Message).NotTo(ContainSubstring(pg.Password))
	g.Expect(s3.Keys(t, "e2e/"+path.Join(ns, untrusted.Name, "untrusted-server")+"/")).To(BeEmpty())
}
