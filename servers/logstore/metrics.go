package main

// The log store's Prometheus metrics, at `GET /metrics` (so no bucket may be called
// "metrics"): what each kind of request costs it, and how long tansu's listings are. Each fetch
// of a consumer that finds something new lists the partition's every stored batch, so
// `driftline_logstore_listed_objects_total` over `driftline_logstore_requests_total{kind="list"}`
// is the listing length the broker pays for.

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// The kinds of request counted apart.
const (
	kindGet         = "get"
	kindUnchanged   = "get_unchanged"
	kindPut         = "put"
	kindConditional = "put_conditional"
	kindList        = "list"
	kindDelete      = "delete"
	kindOther       = "other"
)

var kinds = []string{kindGet, kindUnchanged, kindPut, kindConditional, kindList, kindDelete, kindOther}

type counter struct{ requests, nanoseconds atomic.Int64 }

// Metrics are counters since the server started; safe to use from every goroutine.
type Metrics struct {
	byKind          map[string]*counter
	listed          atomic.Int64
	retentionDelete atomic.Int64
}

func newMetrics() *Metrics {
	m := &Metrics{byKind: map[string]*counter{}}
	for _, kind := range kinds {
		m.byKind[kind] = &counter{}
	}
	return m
}

// served counts one request of kind that took since started.
func (m *Metrics) served(kind string, started time.Time) {
	c := m.byKind[kind]
	c.requests.Add(1)
	c.nanoseconds.Add(int64(time.Since(started)))
}

// write is the Prometheus text exposition of the metrics and of store's contents.
func (m *Metrics) write(w http.ResponseWriter, store *Store) {
	var out strings.Builder
	out.WriteString("# HELP driftline_logstore_requests_total S3 requests answered, by kind.\n" +
		"# TYPE driftline_logstore_requests_total counter\n")
	for _, kind := range kinds {
		fmt.Fprintf(&out, "driftline_logstore_requests_total{kind=%q} %d\n", kind, m.byKind[kind].requests.Load())
	}
	out.WriteString("# HELP driftline_logstore_request_seconds_total Time spent answering them, by kind.\n" +
		"# TYPE driftline_logstore_request_seconds_total counter\n")
	for _, kind := range kinds {
		seconds := float64(m.byKind[kind].nanoseconds.Load()) / 1e9
		fmt.Fprintf(&out, "driftline_logstore_request_seconds_total{kind=%q} %g\n", kind, seconds)
	}
	fmt.Fprintf(&out, "# HELP driftline_logstore_listed_objects_total Objects returned by listings.\n"+
		"# TYPE driftline_logstore_listed_objects_total counter\n"+
		"driftline_logstore_listed_objects_total %d\n", m.listed.Load())
	fmt.Fprintf(&out, "# HELP driftline_logstore_retention_deleted_total Batches retention deleted.\n"+
		"# TYPE driftline_logstore_retention_deleted_total counter\n"+
		"driftline_logstore_retention_deleted_total %d\n", m.retentionDelete.Load())
	objects := store.Counts()
	names := make([]string, 0, len(objects))
	for name := range objects {
		names = append(names, name)
	}
	sort.Strings(names)
	out.WriteString("# HELP driftline_logstore_objects Objects listed in a bucket now.\n" +
		"# TYPE driftline_logstore_objects gauge\n")
	for _, name := range names {
		fmt.Fprintf(&out, "driftline_logstore_objects{bucket=%q} %d\n", name, objects[name])
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	respond(w, 200, []byte(out.String()), false)
}

// kindOf is the kind a request is counted as, before it is answered.
func kindOf(r *http.Request) string {
	conditional := r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != ""
	switch r.Method {
	case http.MethodGet:
		if r.URL.Query().Get("list-type") == "2" {
			return kindList
		}
		return kindGet
	case http.MethodPut:
		if conditional {
			return kindConditional
		}
		return kindPut
	case http.MethodDelete:
		return kindDelete
	case http.MethodPost:
		if r.URL.Query().Has("delete") {
			return kindDelete
		}
	}
	return kindOther
}
