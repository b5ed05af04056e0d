// Package metricsauth lets only callers the API server authenticates, and
// authorises for the request's verb on its path, read the metrics endpoint:
// a TokenReview and a SubjectAccessReview, their answers cached briefly.
//
// controller-runtime's metrics/filters does the same through k8s.io/apiserver,
// which links CEL, OpenTelemetry and gRPC into the operator: 47 MB of its
// 107 MB binary, and pages of them stayed resident (docs/benchmarks.md,
// "Operator at scale").
package metricsauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const (
	// A scraper's answer is reused for a minute; a refusal for ten
	// seconds, so that a fixed RBAC binding takes effect soon and a flood of
	// bad tokens still costs the API server little.
	allowTTL = time.Minute
	denyTTL  = 10 * time.Second
	// reviewTimeout bounds each review; the scrape fails rather than hangs.
	reviewTimeout = 10 * time.Second
	// maxCached bounds the cache: scrapers are few, tokens rotate.
	maxCached = 1024
)

// FilterProvider is a metricsserver.Options.FilterProvider.
func FilterProvider(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	authz, err := authorizationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	g := NewGate(authn.TokenReviews(), authz.SubjectAccessReviews(), time.Now)
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return g.Handler(log, next), nil
	}, nil
}

// Gate decides who may read, and remembers its decisions for a while.
type Gate struct {
	tokens  authenticationclient.TokenReviewInterface
	access  authorizationclient.SubjectAccessReviewInterface
	now     func() time.Time
	mu      sync.Mutex
	decided map[[sha256.Size]byte]decision
}

// decision is the answer to one token, verb and path: an HTTP status and
// the message that goes with it.
type decision struct {
	status  int
	message string
	until   time.Time
}

// NewGate returns a Gate that asks the API server through the two clients.
func NewGate(tokens authenticationclient.TokenReviewInterface, access authorizationclient.SubjectAccessReviewInterface, now func() time.Time) *Gate {
	return &Gate{tokens: tokens, access: access, now: now, decided: map[[sha256.Size]byte]decision{}}
}

// Handler serves next to the callers the API server lets in and answers
// the others 401 (no or a rejected token), 403 (not authorised) or 500
// (the API server could not say).
func (g *Gate) Handler(log logr.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token := bearerToken(req.Header.Get("Authorization"))
		if token == "" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		d, err := g.decide(req.Context(), token, strings.ToLower(req.Method), req.URL.Path)
		if err != nil {
			log.Error(err, "Could not review a metrics request")
			http.Error(w, "Could not review the request", http.StatusInternalServerError)
			return
		}
		if d.status != http.StatusOK {
			log.V(1).Info("Refused a metrics request", "status", d.status, "reason", d.message)
			http.Error(w, d.message, d.status)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// bearerToken is the token of an "Authorization: Bearer <token>" header (the
// scheme in any case, as the API server reads it), or "".
func bearerToken(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// decide returns the cached decision or asks the API server. The cache is
// keyed by a hash: no token is kept.
func (g *Gate) decide(ctx context.Context, token, verb, path string) (decision, error) {
	key := sha256.Sum256([]byte(token + "\x00" + verb + "\x00" + path))
	now := g.now()
	g.mu.Lock()
	d, ok := g.decided[key]
	g.mu.Unlock()
	if ok && now.Before(d.until) {
		return d, nil
	}
	d, err := g.review(ctx, token, verb, path)
	if err != nil {
		return decision{}, err
	}
	d.until = now.Add(denyTTL)
	if d.status == http.StatusOK {
		d.until = now.Add(allowTTL)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.decided) >= maxCached {
		for k, old := range g.decided {
			if !now.Before(old.until) {
				delete(g.decided, k)
			}
		}
		if len(g.decided) >= maxCached {
			clear(g.decided)
		}
	}
	g.decided[key] = d
	return d, nil
}

// review asks who the token is, then whether they may use verb on path.
func (g *Gate) review(ctx context.Context, token, verb, path string) (decision, error) {
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	tr, err := g.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return decision{status: http.StatusUnauthorized, message: "Unauthorized"}, nil
	}
	user := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := g.access.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:                  user.Username,
		UID:                   user.UID,
		Groups:                user.Groups,
		Extra:                 extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("subject access review for %s: %w", user.Username, err)
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		return decision{status: http.StatusForbidden, message: fmt.Sprintf("%s may not %s %s", user.Username, verb, path)}, nil
	}
	return decision{status: http.StatusOK}, nil
}
