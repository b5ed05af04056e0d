// Package agent is the command line of the backup agent, the process a
// Backup or Restore Job runs, and of the user commands that work without a
// cluster.
//
// # Commands
//
//	backstop agent backup  [flags]   dump -> compress -> encrypt -> upload; manifest.json last
//	backstop agent restore [flags]   download, verify all of it, then check the target and restore
//	backstop agent verify  [flags]   download and verify only; the target is not needed
//	backstop verify  [flags]         the same verification, for a user, with a summary
//	backstop decrypt [flags]         verify, then write the plaintext dump to stdout or --output
//
// main.go calls Main with the arguments after "agent" (or including it) and
// UserMain with the arguments starting at "verify" or "decrypt". Jobs run
// the same Main through cmd/backstop-agent (`backstop-agent backup ...`), a
// binary in the same image that leaves the operator out: its start-up
// touches tens of MiB less of the binary, so a Job's memory is the data
// path's.
//
// # Memory
//
// A backup's live memory is fixed by its flags, whatever the data size: the
// upload buffer (--s3-part-size-mib, 8 MiB by default; GCS 8 MiB; Azure two
// blocks of 4 MiB) and the compressor (about 14 MiB at zstd 3, which
// compresses 2 MiB frames two at a time, 48 MiB at zstd 19).
// Unless GOMEMLIMIT is set, the run sets the Go heap's soft limit to that
// plus what the runtime holds at the start and 4 MiB (at least 32 MiB), so
// the heap stays near its live size; restores and verifies use 40 MiB.
// docs/benchmarks.md has the peak RSS this gives.
//
// Flags carry only settings that are not secret. Secrets come from the
// environment or from mounted files, never from flags.
//
// # Target flags (backup, restore; --engine also on verify)
//
//	--engine postgres|mysql|files   required for backup and restore; on verify, the artifact must match
//	--host HOST --port N            database server (port 0: the engine's default)
//	--database NAME                 repeatable; none: every user database
//	--tls-mode disable|prefer|require|verify-ca|verify-full
//	--ca-file FILE                  PEM CAs that verify-ca and verify-full trust (default: the system's)
//	--path DIR                      files engine: the directory to back up or restore
//	--user NAME                     or env BACKSTOP_DB_USER
//	--password-file FILE            or env BACKSTOP_DB_PASSWORD
//
// # Store flags
//
//	--store-type s3|gcs|azure|filesystem  required
//	--s3-endpoint HOST[:PORT]|URL   https unless --s3-insecure or an http:// URL
//	--s3-bucket NAME --s3-region REGION
//	--s3-force-path-style           bucket in the URL path (MinIO, Ceph)
//	--s3-insecure                   plain HTTP for an endpoint without a scheme
//	--s3-ca-file FILE               extra CAs (PEM) to trust
//	--s3-credentials-dir DIR        files accessKeyID and secretAccessKey (a mounted Secret);
//	                                else env AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
//	--s3-part-size-mib N            multipart part size, 5 to 512, default 8 (S3 allows 10,000
//	                                parts: 8 MiB parts hold up to 78 GiB; raise it for more;
//	                                the BackupStore's spec.s3.partSizeMiB)
//	--gcs-bucket NAME               Google Cloud Storage bucket
//	--gcs-endpoint URL              http(s)://host[:port]; default Google's JSON API endpoint.
//	                                For an emulator (fake-gcs-server) or a Private Service Connect endpoint
//	--gcs-credentials-file FILE     service-account JSON key (a mounted Secret); else env
//	                                GOOGLE_APPLICATION_CREDENTIALS naming such a file; neither: Application
//	                                Default Credentials (GKE workload identity, the metadata server).
//	                                An http:// --gcs-endpoint without a key is used anonymously
//	--gcs-anonymous                 send no credentials (an emulator behind https)
//	--azure-account NAME            Azure storage account
//	--azure-container NAME          blob container
//	--azure-endpoint URL            blob service URL, default https://<account>.blob.core.windows.net;
//	                                Azurite: http://127.0.0.1:<port>/<account>
//	--azure-key-file FILE           file holding the account key (a mounted Secret, key accountKey);
//	                                else env AZURE_STORAGE_KEY
//	--azure-sas-file FILE           file holding a SAS token (key sasToken); else env
//	                                AZURE_STORAGE_SAS_TOKEN. Exactly one of key and SAS token
//	--azure-block-size-mib N        block size, default 4 (Azure allows 50,000 blocks: 4 MiB blocks
//	                                hold up to 195 GiB; raise it for more; the BackupStore's
//	                                spec.azure.blockSizeMiB); two blocks are in flight
//	--fs-root DIR                   filesystem store: the directory (e.g. a mounted PVC)
//	--prefix P                      key prefix in the store
//	--artifact-path NS/TARGET/NAME  required; the artifact is <prefix>/<artifact-path>/
//
// # Data path flags
//
// backup:
//
//	--compression zstd|gzip|none    default zstd
//	--compression-level N           0 (default): zstd 3, gzip 6
//	--encryption x25519|scrypt|none required; no default, plaintext only when asked for by name
//	--recipient age1...             repeatable (public keys are not secret)
//	--recipients-file FILE          one recipient per line, # comments
//	--passphrase-file FILE          scrypt; or env BACKSTOP_AGE_PASSPHRASE
//
// restore, verify, and the user commands:
//
//	--identity-file FILE            age identity file (a mounted Secret); or env BACKSTOP_AGE_IDENTITY
//	--passphrase-file FILE          scrypt; or env BACKSTOP_AGE_PASSPHRASE
//	--expect-sha256 HEX             refuse (IntegrityMismatch) an artifact whose data has another SHA-256:
//	                                a Restore's Jobs read what it chose, not what was written since
//
// all agent commands:
//
//	--scratch-dir DIR               where restore/verify download the artifact (default: the temp dir);
//	                                needs room for the stored object
//	--progress-interval D           progress lines on stderr, default 10s; 0 turns them off
//	--timeout D                     fail with DeadlineExceeded after D (0: no limit); set it
//	                                below the Job's activeDeadlineSeconds
//	--termination-log FILE          default /dev/termination-log; written if its directory exists
//
// user commands only: --file DATA (a local data object instead of a store),
// --manifest FILE (its manifest.json; without one only age authentication and
// the compression checksums vouch for the file), --output FILE (decrypt;
// written with mode 0600 through a temporary file, never overwriting), --json
// (verify: print the Result JSON).
//
// # Store layout
//
//	<prefix>/<artifact-path>/data<engine-ext><compression-ext><encryption-ext>
//	<prefix>/<artifact-path>/manifest.json   written last; the commit record
//
// for example data.sql.zst.age (postgres, mysql), data.tar.zst.age (files),
// data.sql.gz (gzip, no encryption). The data object is a standard age file
// around a standard zstd or gzip stream around the engine's own dump:
// `age -d -i key.txt data.sql.zst.age | zstd -d | psql` restores by hand.
//
// A backup refuses to overwrite a completed backup (reason AlreadyExists).
// A failed backup leaves nothing behind: no manifest, no data object, no
// multipart parts. GCS uploads are resumable uploads in 8 MiB chunks that
// are abandoned, never finalized, on failure; Azure uploads stage blocks and
// commit the block list only after the last one, so a failed upload leaves
// only uncommitted blocks, which are invisible and which Azure discards
// after a week.
//
// # Result
//
// Every agent run prints one line of JSON on stdout and writes the same line
// to the termination log (under 4 KiB, the kubelet's limit):
//
//	{"phase":"Succeeded"|"Failed","reason":"...","message":"...","engine":"postgres",
//	 "artifactPath":"ns/target/backup","dataObject":"data.sql.zst.age",
//	 "storedBytes":N,"plaintextBytes":N,"sha256":"<hex>","plaintextSha256":"<hex>",
//	 "startTime":"RFC 3339","completionTime":"RFC 3339"}
//
// Empty fields are omitted. reason is one of the Reason* constants in
// result.go: StoreUnreachable, AuthenticationFailed, BucketNotFound,
// StoreError, ManifestNotFound, IntegrityMismatch, DecryptionFailed,
// EngineMismatch, DumpFailed, DumpIncomplete, TargetUnreachable,
// TargetAuthenticationFailed, DatabaseNotFound, RestoreFailed,
// UnsafeArchive, InvalidInput, AlreadyExists, DeadlineExceeded, Canceled.
// ParseResult decodes it.
//
// Exit status: 0 on success; 1 on a failed run, with a one-line error
// "backstop-agent <cmd>: <Reason>: <message>" on stderr ("backstop agent
// <cmd>: ..." when run so); 2 on bad usage (unknown command or flag).
// Messages never hold a password, key, passphrase or credential URL: known
// secret values and anything shaped like an age secret key are replaced by
// [redacted].
package agent
