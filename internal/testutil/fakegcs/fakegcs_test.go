package fakegcs

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	s := Start(t)
	u := s.Endpoint + "/upload/storage/v1/b/" + s.Bucket + "/o?uploadType=media&name=" + url.QueryEscape("a/b")
	resp, err := http.Post(u, "application/octet-stream", bytes.NewReader([]byte("hello")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: HTTP %d", resp.StatusCode)
	}
	if keys := s.Keys(t, "a/"); strings.Join(keys, " ") != "a/b" {
		t.Fatalf("keys %v", keys)
	}
}
