package scale

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape is every sample of one read of a metrics endpoint.
type scrape []sample

// fetchMetrics reads a plain-HTTP Prometheus text endpoint.
func fetchMetrics(url string) (scrape, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics parses the Prometheus text exposition format (the subset the
// client library writes: no timestamps, no exemplars).
func parseMetrics(r io.Reader) (scrape, error) {
	var out scrape
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			s.name = line[:i]
			end, err := parseLabels(line[i+1:], s.labels)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", line, err)
			}
			rest = line[i+1+end:]
		} else {
			f := strings.Fields(line)
			s.name, rest = f[0], strings.TrimPrefix(line, f[0])
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("%q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `k="v",...}` into m and returns how many bytes it used,
// the closing brace included.
func parseLabels(s string, m map[string]string) (int, error) {
	i := 0
	for {
		for i < len(s) && (s[i] == ',' || s[i] == ' ') {
			i++
		}
		if i >= len(s) {
			return 0, fmt.Errorf("unterminated labels")
		}
		if s[i] == '}' {
			return i + 1, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 || i+eq+1 >= len(s) || s[i+eq+1] != '"' {
			return 0, fmt.Errorf("bad label at %d", i)
		}
		key := s[i : i+eq]
		i += eq + 2
		var b strings.Builder
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i])
				}
				continue
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return 0, fmt.Errorf("unterminated label value")
		}
		m[key] = b.String()
		i++
	}
}

// sum adds the values of the samples named name whose labels include match.
func (sc scrape) sum(name string, match map[string]string) float64 {
	var total float64
	for _, s := range sc {
		if s.name == name && hasLabels(s.labels, match) {
			total += s.value
		}
	}
	return total
}

// values returns the distinct values of label among the samples named name.
func (sc scrape) values(name, label string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range sc {
		if v, ok := s.labels[label]; ok && s.name == name && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// histogram is a classic Prometheus histogram: cumulative buckets and a count.
type histogram struct {
	buckets []bucket
	count   float64
	sum     float64
}

// histogramOf collects the histogram <name>_bucket/_count/_sum whose labels
// include match, summed over the other labels.
func (sc scrape) histogramOf(name string, match map[string]string) histogram {
	byLE := map[float64]float64{}
	for _, s := range sc {
		if s.name != name+"_bucket" || !hasLabels(s.labels, match) {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			continue
		}
		byLE[le] += s.value
	}
	h := histogram{count: sc.sum(name+"_count", match), sum: sc.sum(name+"_sum", match)}
	for le, c := range byLE {
		h.buckets = append(h.buckets, bucket{le: le, count: c})
	}
	sort.Slice(h.buckets, func(i, j int) bool { return h.buckets[i].le < h.buckets[j].le })
	return h
}

// minus is h with the observations of an earlier read of it taken away.
func (h histogram) minus(earlier histogram) histogram {
	prev := map[float64]float64{}
	for _, b := range earlier.buckets {
		prev[b.le] = b.count
	}
	out := histogram{count: h.count - earlier.count, sum: h.sum - earlier.sum}
	for _, b := range h.buckets {
		out.buckets = append(out.buckets, bucket{le: b.le, count: b.count - prev[b.le]})
	}
	return out
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does:
// linear interpolation inside the bucket that holds it. It returns the
// bucket's upper bound as well, which is a sure upper limit.
func (h histogram) quantile(q float64) (estimate, upper float64) {
	if h.count <= 0 || len(h.buckets) == 0 {
		return math.NaN(), math.NaN()
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for _, b := range h.buckets {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lower, b.le
			}
			if b.count == below {
				return b.le, b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below), b.le
		}
		lower, below = b.le, b.count
	}
	return lower, math.Inf(1)
}

// fractionAtMost is the share of observations at most le, which must be a
// bucket bound.
func (h histogram) fractionAtMost(le float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	for _, b := range h.buckets {
		if b.le == le {
			return b.count / h.count
		}
	}
	return math.NaN()
}
