// Package agent holds the backup agent's throughput benchmark: the
// backstop-agent binary run as `backstop-agent backup|restore` subprocesses,
// exactly as a Job runs it (and the full backstop binary once, for
// comparison), against a real PostgreSQL server (about 1 GiB of pg_dump
// output), a 2 GiB file tree, a real MinIO and a filesystem store, side by
// side with pg_dump and tar alone, with `zstd -3` alone, and with the shell
// pipeline `pg_dump | gzip | age -r KEY > file`. It measures wall time,
// throughput, CPU and the peak RSS of each process, and compares a verified
// PostgreSQL restore through the agent with `psql -1 -f dump.sql` into a
// fresh database (TestAgentThroughput).
//
// TestCompressionVsCLI compares the agent's compressor at zstd levels 1 to 6
// with the stock `zstd -3` and `zstd -T2 -3` on three generated corpora (a
// pgbench-like dump, a dump of bytea values, a tar of mixed files): stored
// size and throughput.
//
// They run only with BACKSTOP_BENCH=1 (`make bench`); see
// docs/benchmarks.md, sections "Agent throughput" and "Compression ratio
// against the zstd CLI".
package agent
