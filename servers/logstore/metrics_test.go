package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMetricsCountRequestsByKindAndListedObjects(t *testing.T) {
	store := open(t, t.TempDir(), newClock())
	server := httptest.NewServer(S3{store, newMetrics()})
	defer server.Close()
	do := func(method, path string, header ...string) int {
		t.Helper()
		request, _ := http.NewRequest(method, server.URL+path, strings.NewReader("x"))
		for i := 0; i+1 < len(header); i += 2 {
			request.Header.Set(header[i], header[i+1])
		}
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		response.Body.Close()
		return response.StatusCode
	}
	for offset := 0; offset < 3; offset++ {
		do("PUT", "/b/"+batch(0, offset), "If-None-Match", "*")
	}
	do("PUT", "/b/k")
	etag := put(t, store, "k", "x").ETag
	if status := do("GET", "/b/k", "If-None-Match", etag); status != 304 {
		t.Fatalf("conditional GET: %d", status)
	}
	do("GET", "/b/k")
	do("GET", "/b?list-type=2&prefix="+records(0))
	do("GET", "/b?list-type=2&prefix="+records(0))

	response, err := http.Get(server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(response.Body)
	response.Body.Close()
	for _, line := range []string{
		`driftline_logstore_requests_total{kind="put_conditional"} 3`,
		`driftline_logstore_requests_total{kind="put"} 1`,
		`driftline_logstore_requests_total{kind="get_unchanged"} 1`,
		`driftline_logstore_requests_total{kind="get"} 1`,
		`driftline_logstore_requests_total{kind="list"} 2`,
		`driftline_logstore_listed_objects_total 6`,
		`driftline_logstore_objects{bucket="b"} 4`,
	} {
		if !strings.Contains(string(text), line+"\n") {
			t.Errorf("no %q in\n%s", line, text)
		}
	}
}
