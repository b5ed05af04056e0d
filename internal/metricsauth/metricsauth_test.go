package metricsauth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// apiServer answers reviews as a cluster with one valid token, "reader",
// whose ServiceAccount may get /metrics, and "other", who may not. It
// counts the reviews, and can be made to fail.
type apiServer struct {
	reviews int
	down    bool
	seen    []authorizationv1.SubjectAccessReviewSpec
}

func (a *apiServer) gate(now func() time.Time) *Gate {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(action clienttesting.Action) (bool, runtime.Object, error) {
		a.reviews++
		if a.down {
			return true, nil, errors.New("connection refused")
		}
		tr := action.(clienttesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		switch tr.Spec.Token {
		case "reader":
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: "system:serviceaccount:monitoring:prometheus", UID: "u1", Groups: []string{"system:serviceaccounts"},
				Extra: map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"prometheus-0"}},
			}}
		case "other":
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:serviceaccount:default:other"}}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(action clienttesting.Action) (bool, runtime.Object, error) {
		a.reviews++
		sar := action.(clienttesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		a.seen = append(a.seen, sar.Spec)
		na := sar.Spec.NonResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "system:serviceaccount:monitoring:prometheus" && na != nil && na.Path == "/metrics" && na.Verb == "get"
		return true, sar, nil
	})
	return NewGate(cs.AuthenticationV1().TokenReviews(), cs.AuthorizationV1().SubjectAccessReviews(), now)
}

func get(h http.Handler, path, token string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

func TestGate(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("backstop_up 1")) })
	for _, tc := range []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"an authorised reader", "/metrics", "reader", http.StatusOK, "backstop_up 1"},
		{"no token", "/metrics", "", http.StatusUnauthorized, "Unauthorized"},
		{"an empty token", "/metrics", " ", http.StatusUnauthorized, "Unauthorized"},
		{"a token the API server rejects", "/metrics", "forged", http.StatusUnauthorized, "Unauthorized"},
		{"an authenticated caller without the right", "/metrics", "other", http.StatusForbidden, "system:serviceaccount:default:other may not get /metrics"},
		{"the reader on another path", "/debug", "reader", http.StatusForbidden, "system:serviceaccount:monitoring:prometheus may not get /debug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &apiServer{}
			status, body := get(api.gate(time.Now).Handler(logr.Discard(), metrics), tc.path, tc.token)
			if status != tc.status || body != tc.body {
				t.Errorf("got %d %q, want %d %q", status, body, tc.status, tc.body)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "Bearer  abc ": "abc",
		"": "", "Bearer": "", "Bearer ": "", "Basic YWxhZGRpbjpvcGVuc2VzYW1l": "", "abc": "",
	} {
		if got := bearerToken(header); got != want {
			t.Errorf("bearerToken(%q) = %q, want %q", header, got, want)
		}
	}
}

func TestGate_AsksWithTheCallersIdentity(t *testing.T) {
	api := &apiServer{}
	h := api.gate(time.Now).Handler(logr.Discard(), http.NotFoundHandler())
	get(h, "/metrics", "reader")
	if len(api.seen) != 1 {
		t.Fatalf("%d access reviews, want 1", len(api.seen))
	}
	s := api.seen[0]
	if s.UID != "u1" || len(s.Groups) != 1 || s.Groups[0] != "system:serviceaccounts" || s.Extra["authentication.kubernetes.io/pod-name"][0] != "prometheus-0" {
		t.Errorf("the review does not carry the caller's uid, groups and extra: %+v", s)
	}
}

func TestGate_RemembersDecisionsForAWhile(t *testing.T) {
	api := &apiServer{}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	h := api.gate(func() time.Time { return now }).Handler(logr.Discard(), http.NotFoundHandler())

	get(h, "/metrics", "reader")
	get(h, "/metrics", "forged")
	if api.reviews != 3 {
		t.Fatalf("%d reviews for two callers, want 3 (token, access; token)", api.reviews)
	}
	now = now.Add(9 * time.Second)
	get(h, "/metrics", "reader")
	get(h, "/metrics", "forged")
	if api.reviews != 3 {
		t.Fatalf("%d reviews after repeated scrapes, want still 3", api.reviews)
	}
	// A refusal is asked again after ten seconds, an allowance after a minute.
	now = now.Add(2 * time.Second)
	get(h, "/metrics", "forged")
	get(h, "/metrics", "reader")
	if api.reviews != 4 {
		t.Fatalf("%d reviews, want 4: the refusal asked again, the allowance not", api.reviews)
	}
	now = now.Add(time.Minute)
	get(h, "/metrics", "reader")
	if api.reviews != 6 {
		t.Fatalf("%d reviews, want 6: the allowance asked again after a minute", api.reviews)
	}
}

func TestGate_APIServerDownServesNothingAndIsNotRemembered(t *testing.T) {
	api := &apiServer{down: true}
	h := api.gate(time.Now).Handler(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("backstop_up 1")) }))
	status, body := get(h, "/metrics", "reader")
	if status != http.StatusInternalServerError || strings.Contains(body, "backstop_up") || strings.Contains(body, "reader") {
		t.Fatalf("got %d %q, want 500 without metrics or the token", status, body)
	}
	api.down = false
	if status, _ := get(h, "/metrics", "reader"); status != http.StatusOK {
		t.Errorf("got %d once the API server is back, want 200", status)
	}
}

func TestGate_CacheIsBounded(t *testing.T) {
	api := &apiServer{}
	g := api.gate(time.Now)
	h := g.Handler(logr.Discard(), http.NotFoundHandler())
	for i := range maxCached + 10 {
		get(h, "/metrics", "forged-"+strconv.Itoa(i))
	}
	if n := len(g.decided); n > maxCached {
		t.Errorf("%d decisions cached, want at most %d", n, maxCached)
	}
}
