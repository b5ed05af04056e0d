package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backstop-io/backstop/internal/engine/postgres"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

// ---------------------------------------------------------------------------
// PostgreSQL

// pgTable is the benchmark table: an event log whose rows mix random text
// (an md5 token, eight words drawn at random from 32) with repetitive text (a
// user agent out of four, an event kind out of eight), numbers and times, so
// the dump compresses about as well as real application data.
const pgTable = `CREATE TABLE public.events (
	id bigint NOT NULL,
	created_at timestamptz NOT NULL,
	account_id integer NOT NULL,
	kind text NOT NULL,
	token text NOT NULL,
	note text NOT NULL,
	user_agent text NOT NULL,
	amount numeric(12,2) NOT NULL
)`

const pgInsert = `INSERT INTO public.events
SELECT g,
	timestamptz '2024-01-01 00:00:00+00' + g * interval '7 seconds',
	(random() * 1000000)::int,
	(ARRAY['login','logout','purchase','refund','page_view','click','signup','error'])[1 + (g %% 8)::int],
	md5(random()::text),
	w[1 + (random() * 31)::int] || ' ' || w[1 + (random() * 31)::int] || ' ' || w[1 + (random() * 31)::int] || ' ' ||
	w[1 + (random() * 31)::int] || ' ' || w[1 + (random() * 31)::int] || ' ' || w[1 + (random() * 31)::int] || ' ' ||
	w[1 + (random() * 31)::int] || ' ' || w[1 + (random() * 31)::int],
	(ARRAY['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
	       'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
	       'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0',
	       'curl/8.8.0'])[1 + (random() * 3)::int],
	round((random() * 10000)::numeric, 2)
FROM generate_series(%d, %d) g,
	(SELECT ARRAY['account','balance','invoice','payment','order','shipping','customer','refund',
	              'pending','settled','failed','retry','card','transfer','credit','debit',
	              'europe','america','asia','mobile','desktop','tablet','campaign','coupon',
	              'premium','basic','trial','annual','monthly','upgrade','downgrade','cancel'] AS w) v`

// psql runs sql in db with a time limit.
func psql(t *testing.T, pg *pgserver.Server, db, sql string, limit time.Duration) string {
	t.Helper()
	out, err := psqlErr(pg, db, sql, limit)
	if err != nil {
		t.Fatalf("psql in %s: %v\n%.300s", db, err, sql)
	}
	return out
}

func psqlErr(pg *pgserver.Server, db, sql string, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pg.BinDir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
	cmd.Env = pg.Env(db)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// dumpSize runs pg_dump (the agent's arguments) and counts its output.
func dumpSize(t *testing.T, pg *pgserver.Server, db string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pg_dump", postgres.DumpArgs...)
	cmd.Env = pg.Env(db)
	var c countingWriter
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = &c, stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump %s: %v: %s", db, err, stderr)
	}
	return c.n
}

// writeDump writes pg_dump's output (the agent's arguments) of db to file.
func writeDump(t *testing.T, b *bench, db, file string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pg_dump", postgres.DumpArgs...)
	cmd.Env = b.pg.Env(db)
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = f, stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump %s > %s: %v: %s", db, file, err, stderr)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// pgData describes a generated database.
type pgData struct {
	DB       string
	Rows     int64
	IDSum    string
	DumpSize int64
	Took     time.Duration
}

// genPostgres creates database db with about target bytes of pg_dump
// output: a calibration batch first, whose dump size gives the bytes per
// row, then the rest in batches on two connections, then the primary key
// and VACUUM (FREEZE, ANALYZE) so every measurement reads settled pages.
func genPostgres(t *testing.T, pg *pgserver.Server, db string, target int64) pgData {
	t.Helper()
	start := time.Now()
	psql(t, pg, "postgres", "CREATE DATABASE "+db, time.Minute)
	psql(t, pg, db, pgTable, time.Minute)
	const calib = 50_000
	psql(t, pg, db, fmt.Sprintf(pgInsert, 1, calib), 5*time.Minute)
	perRow := float64(dumpSize(t, pg, db)) / calib
	total := int64(float64(target) / perRow)
	if total < calib {
		total = calib
	}
	// Batches of up to 250,000 rows (a few seconds each), two at a time.
	const batch = 250_000
	type span struct{ lo, hi int64 }
	spans := make(chan span, 1+total/batch)
	for lo := int64(calib + 1); lo <= total; lo += batch {
		spans <- span{lo, min(lo+batch-1, total)}
	}
	close(spans)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range spans {
				if _, err := psqlErr(pg, db, fmt.Sprintf(pgInsert, s.lo, s.hi), 5*time.Minute); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("generating %s: %v", db, err)
	}
	psql(t, pg, db, "ALTER TABLE public.events ADD PRIMARY KEY (id)", 10*time.Minute)
	psql(t, pg, db, "VACUUM (FREEZE, ANALYZE) public.events", 10*time.Minute)
	d := pgData{DB: db, Took: time.Since(start)}
	d.Rows, d.IDSum = pgCount(t, pg, db)
	return d
}

// pgCount returns the row count and the sum of ids of the events table.
func pgCount(t *testing.T, pg *pgserver.Server, db string) (int64, string) {
	t.Helper()
	return pgCountOf(t, pg, db, "public.events", "id")
}

// pgCountOf returns the row count of table and the sum of its column key.
func pgCountOf(t *testing.T, pg *pgserver.Server, db, table, key string) (int64, string) {
	t.Helper()
	out := psql(t, pg, db, fmt.Sprintf("SELECT count(*) || ' ' || sum(%s) FROM %s", key, table), 5*time.Minute)
	var n int64
	var sum string
	if _, err := fmt.Sscan(out, &n, &sum); err != nil {
		t.Fatalf("counting rows in %s: %q: %v", db, out, err)
	}
	return n, sum
}

// genPgbench creates database db with pgbench's tables at scale s (100,000
// accounts each; scale 60 dumps to 586 MB of short rows).
func genPgbench(t *testing.T, pg *pgserver.Server, db string, s int) pgData {
	t.Helper()
	start := time.Now()
	psql(t, pg, "postgres", "CREATE DATABASE "+db, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pg.BinDir, "pgbench"), "-i", "-q", "-s", strconv.Itoa(s))
	cmd.Env = pg.Env(db)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	d := pgData{DB: db, Took: time.Since(start)}
	d.Rows, d.IDSum = pgCountOf(t, pg, db, "public.pgbench_accounts", "aid")
	return d
}

// ---------------------------------------------------------------------------
// Files

// vocab are the words of the text-like files.
var vocab = func() [64]string {
	w := strings.Fields(`the of and to in is was for on that with as by at from this be are or an
		have not which it but were all their has been one more when also there other into after
		time first new two can may only over such between used most some during three would
		about them these request response error`)
	var v [64]string
	for i := range v {
		v[i] = w[i%len(w)]
	}
	return v
}()

// fillText fills b with log-like text: words drawn at random from 64, a
// random 16-digit hex token every eighth word, lines of about ten words.
func fillText(r *rand.Rand, b []byte) {
	const hexDigits = "0123456789abcdef"
	i, word := 0, 0
	for i < len(b) {
		x := r.Uint64()
		for k := 0; k < 10 && i < len(b); k++ {
			word++
			if word%8 == 0 {
				y := r.Uint64()
				for j := 0; j < 16 && i < len(b); j++ {
					b[i] = hexDigits[y&15]
					y >>= 4
					i++
				}
			} else {
				i += copy(b[i:], vocab[x&63])
			}
			x >>= 6
			if i < len(b) {
				if word%10 == 0 {
					b[i] = '\n'
				} else {
					b[i] = ' '
				}
				i++
			}
		}
	}
}

// fillRandom fills b with incompressible bytes (media, archives).
func fillRandom(r *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		x := r.Uint64()
		b[i], b[i+1], b[i+2], b[i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
		b[i+4], b[i+5], b[i+6], b[i+7] = byte(x>>32), byte(x>>40), byte(x>>48), byte(x>>56)
	}
}

// treeData describes a generated tree.
type treeData struct {
	Root  string
	Files int
	Bytes int64
	// Parts are the top-level directories, each about PartBytes.
	Parts     []string
	PartBytes int64
	Took      time.Duration
}

// genTree writes nParts directories of about partBytes each under root:
// 44% small text files of 1..64 KiB (500 per directory), 37% one large
// log-like text file, 19% one large random file. Two writers, one part each
// at a time; the content is deterministic per part.
func genTree(t *testing.T, root string, nParts int, partBytes int64) treeData {
	t.Helper()
	start := time.Now()
	td := treeData{Root: root, PartBytes: partBytes}
	for p := range nParts {
		td.Parts = append(td.Parts, filepath.Join(root, fmt.Sprintf("part%02d", p)))
	}
	jobs := make(chan int, nParts)
	for p := range nParts {
		jobs <- p
	}
	close(jobs)
	var wg sync.WaitGroup
	errs := make(chan error, nParts)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				if err := genPart(td.Parts[p], uint64(p), partBytes); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("generating the tree: %v", err)
	}
	n, size := treeSize(t, root)
	td.Files, td.Bytes, td.Took = n, size, time.Since(start)
	return td
}

func genPart(dir string, seed uint64, partBytes int64) error {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	buf := make([]byte, 1<<20)
	smallBudget := partBytes * 44 / 100
	var written int64
	for i := 0; written < smallBudget; i++ {
		d := filepath.Join(dir, "docs", fmt.Sprintf("d%03d", i/500))
		if i%500 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		n := 1024 + r.IntN(63*1024+1)
		fillText(r, buf[:n])
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.txt", i)), buf[:n], 0o644); err != nil {
			return err
		}
		written += int64(n)
	}
	if err := writeLarge(filepath.Join(dir, "logs", "app.log"), partBytes*37/100, buf, func(b []byte) { fillText(r, b) }); err != nil {
		return err
	}
	return writeLarge(filepath.Join(dir, "media", "blob.bin"), partBytes*19/100, buf, func(b []byte) { fillRandom(r, b) })
}

func writeLarge(p string, size int64, buf []byte, fill func([]byte)) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		fill(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

// treeSize counts the regular files under root and their bytes.
func treeSize(t *testing.T, root string) (int, int64) {
	t.Helper()
	n, size := 0, int64(0)
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n++
			size += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return n, size
}

// fileSHA256 is the hex SHA-256 of a file.
func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
