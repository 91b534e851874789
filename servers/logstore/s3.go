package main

// S3's HTTP protocol over a Store. It answers the requests tansu's object_store client sends
// (PutObject with `If-Match` or `If-None-Match: *`, GetObject with `If-None-Match`,
// ListObjectsV2, DeleteObjects), plus HEAD and single DELETE for other S3 clients. Addressing
// is path-style (`/<bucket>/<key>`). Signatures are not checked: the server listens on
// loopback only.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	namespace = "http://s3.amazonaws.com/doc/2006-03-01/"
	maxBody   = 64 << 20
	xmlHead   = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"
)

func badRequest(code, description string, status int) *StoreError {
	return &StoreError{code, status, description}
}

// S3 serves a Store, and its metrics at `GET /metrics`.
type S3 struct {
	store   *Store
	metrics *Metrics
}

// statusWriter remembers the status of a reply, to count a 304 apart.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (s S3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" && r.Method == http.MethodGet {
		s.metrics.write(w, s.store)
		return
	}
	started, kind := time.Now(), kindOf(r)
	reply := &statusWriter{w, 200}
	s.answer(reply, r)
	if kind == kindGet && reply.status == http.StatusNotModified {
		kind = kindUnchanged
	}
	s.metrics.served(kind, started)
}

func (s S3) answer(w http.ResponseWriter, r *http.Request) {
	resource := r.URL.Path
	err := s.serve(w, r)
	if err == nil {
		return
	}
	var failure *StoreError
	if !errors.As(err, &failure) {
		log.Printf("ERROR %s %s: %v", r.Method, resource, err)
		failure = &StoreError{"InternalError", 500, "We encountered an internal error."}
	}
	document := fmt.Sprintf("<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource></Error>",
		failure.Code, escape(failure.Message), escape(resource))
	writeXML(w, failure.Status, r.Method == http.MethodHead, document)
}

func (s S3) serve(w http.ResponseWriter, r *http.Request) error {
	path := r.URL.Path
	if !utf8.ValidString(path) {
		return badRequest("InvalidURI", "Not UTF-8.", 400)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxBody {
		return badRequest("EntityTooLarge", fmt.Sprintf("Bodies are limited to %d bytes.", maxBody), 400)
	}
	bucket, key, _ := strings.Cut(strings.TrimLeft(path, "/"), "/")
	query := r.URL.Query()
	if bucket == "" {
		return badRequest("NotImplemented", "Listing buckets is not supported.", 501)
	}
	if key != "" {
		return s.object(w, r, bucket, key, query, body)
	}
	return s.bucket(w, r, bucket, query, body)
}

// optionalHeader is a header's value, or nil when the request has none.
func optionalHeader(r *http.Request, name string) *string {
	if values := r.Header.Values(name); len(values) > 0 {
		return &values[len(values)-1]
	}
	return nil
}

func (s S3) object(w http.ResponseWriter, r *http.Request, bucket, key string, query url.Values, body []byte) error {
	if len(query) > 0 || r.Header.Get("X-Amz-Copy-Source") != "" {
		return badRequest("NotImplemented", "Only plain object requests are supported.", 501)
	}
	switch r.Method {
	case http.MethodPut:
		meta, err := s.store.Put(bucket, key, body, optionalHeader(r, "If-Match"), optionalHeader(r, "If-None-Match"))
		if err != nil {
			return err
		}
		w.Header().Set("ETag", meta.ETag)
		respond(w, 200, nil, false)
	case http.MethodGet, http.MethodHead:
		meta, err := s.store.Head(bucket, key)
		if err != nil {
			return err
		}
		if condition := optionalHeader(r, "If-None-Match"); condition != nil && ETagMatches(*condition, meta.ETag) {
			w.Header().Set("ETag", meta.ETag)
			respond(w, http.StatusNotModified, nil, true)
			return nil
		}
		var data []byte
		if r.Method == http.MethodGet {
			if meta, data, err = s.store.Get(bucket, key); err != nil {
				return err
			}
		}
		header := w.Header()
		header.Set("ETag", meta.ETag)
		header.Set("Last-Modified", time.UnixMilli(meta.ModifiedMs).UTC().Format(http.TimeFormat))
		header.Set("Content-Type", "application/octet-stream")
		header.Set("Content-Length", strconv.FormatInt(meta.Size, 10))
		header.Set("X-Amz-Request-Id", requestID())
		w.WriteHeader(200)
		w.Write(data)
	case http.MethodDelete:
		if err := s.store.DeleteMany(bucket, []string{key}); err != nil {
			return err
		}
		respond(w, http.StatusNoContent, nil, true)
	default:
		return badRequest("MethodNotAllowed", r.Method+" is not allowed on an object.", 405)
	}
	return nil
}

func (s S3) bucket(w http.ResponseWriter, r *http.Request, bucket string, query url.Values, body []byte) error {
	switch {
	case r.Method == http.MethodGet && query.Get("list-type") == "2":
		document, err := s.list(bucket, query)
		if err != nil {
			return err
		}
		writeXML(w, 200, false, document...)
	case r.Method == http.MethodPost && query.Has("delete"):
		document, err := s.delete(bucket, body)
		if err != nil {
			return err
		}
		writeXML(w, 200, false, document...)
	case r.Method == http.MethodHead:
		if _, err := s.store.List(bucket, "", "", "", 1); err != nil { // NoSuchBucket
			return err
		}
		respond(w, 200, nil, true)
	default:
		return badRequest("NotImplemented", "Only ListObjectsV2 and DeleteObjects exist here.", 501)
	}
	return nil
}

// last is a query parameter's last value, as Python's parse_qs gave the old server.
func last(query url.Values, name string) (string, bool) {
	values, ok := query[name]
	if !ok || len(values) == 0 {
		return "", false
	}
	return values[len(values)-1], true
}

func (s S3) list(bucket string, query url.Values) ([]string, error) {
	prefix, _ := last(query, "prefix")
	delimiter, _ := last(query, "delimiter")
	after, _ := last(query, "start-after")
	token, hasToken := last(query, "continuation-token")
	start := ""
	if hasToken {
		decoded, err := base64.URLEncoding.DecodeString(token)
		if err != nil || !utf8.Valid(decoded) {
			return nil, badRequest("InvalidArgument", "The continuation token is not valid.", 400)
		}
		start = string(decoded)
	} else if after != "" {
		start = after + "\x00"
	}
	maxKeys := MaxKeys
	if text, ok := last(query, "max-keys"); ok {
		n, err := strconv.Atoi(text)
		if err != nil {
			return nil, badRequest("InvalidArgument", "max-keys must be a number.", 400)
		}
		maxKeys = minOf(MaxKeys, n)
		if maxKeys < 1 {
			maxKeys = 1
		}
	}
	page, err := s.store.List(bucket, prefix, delimiter, start, maxKeys)
	if err != nil {
		return nil, err
	}
	s.metrics.listed.Add(int64(len(page.Contents)))
	encoding, _ := last(query, "encoding-type")
	text := escape
	if encoding == "url" {
		text = urlQuote
	}
	truncated := "false"
	if page.NextStart != "" {
		truncated = "true"
	}
	parts := make([]string, 0, len(page.Contents)+len(page.Prefixes)+8)
	parts = append(parts, fmt.Sprintf(
		`<ListBucketResult xmlns="%s"><Name>%s</Name><Prefix>%s</Prefix><MaxKeys>%d</MaxKeys>`+
			"<KeyCount>%d</KeyCount><IsTruncated>%s</IsTruncated>",
		namespace, escape(bucket), text(prefix), maxKeys, len(page.Contents)+len(page.Prefixes), truncated))
	if delimiter != "" {
		parts = append(parts, "<Delimiter>"+text(delimiter)+"</Delimiter>")
	}
	if encoding == "url" {
		parts = append(parts, "<EncodingType>url</EncodingType>")
	}
	if hasToken {
		parts = append(parts, "<ContinuationToken>"+escape(token)+"</ContinuationToken>")
	}
	if after != "" {
		parts = append(parts, "<StartAfter>"+text(after)+"</StartAfter>")
	}
	if page.NextStart != "" {
		next := base64.URLEncoding.EncodeToString([]byte(page.NextStart))
		parts = append(parts, "<NextContinuationToken>"+next+"</NextContinuationToken>")
	}
	for _, entry := range page.Contents {
		if encoding == "url" {
			parts = append(parts, contents(urlQuote(entry.Key), entry.Meta))
		} else {
			parts = append(parts, entry.Meta.listed)
		}
	}
	for _, folded := range page.Prefixes {
		parts = append(parts, "<CommonPrefixes><Prefix>"+text(folded)+"</Prefix></CommonPrefixes>")
	}
	return append(parts, "</ListBucketResult>"), nil
}

// contents is one object's `<Contents>` in a listing, its key already escaped: the key, the
// time and the size, which is all object_store reads. S3 adds the optional ETag and
// StorageClass; tansu parses every entry of a partition's listing on each fetch, and without
// them its CPU for a listing of 500 batches fell by about half (bench notes in the README).
// HEAD and GET still answer the ETag.
func contents(key string, meta Meta) string {
	return "<Contents><Key>" + key + "</Key><LastModified>" + isoTime(meta.shownMs) +
		"</LastModified><Size>" + strconv.FormatInt(meta.Size, 10) + "</Size></Contents>"
}

// isoTime is S3's LastModified in listings, with milliseconds.
func isoTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

type deleteRequest struct {
	Objects []struct {
		Key string `xml:"Key"`
	} `xml:"Object"`
	Quiet string `xml:"Quiet"`
}

func (s S3) delete(bucket string, body []byte) ([]string, error) {
	var request deleteRequest
	if xml.Unmarshal(body, &request) != nil {
		return nil, badRequest("MalformedXML", "The Delete body is not XML.", 400)
	}
	if len(request.Objects) == 0 || len(request.Objects) > MaxKeys {
		return nil, badRequest("MalformedXML", fmt.Sprintf("Delete takes 1 to %d keys.", MaxKeys), 400)
	}
	keys := make([]string, len(request.Objects))
	for i, object := range request.Objects {
		keys[i] = object.Key
	}
	if err := s.store.DeleteMany(bucket, keys); err != nil {
		return nil, err
	}
	parts := []string{`<DeleteResult xmlns="` + namespace + `">`}
	if strings.TrimSpace(request.Quiet) != "true" {
		for _, key := range keys {
			parts = append(parts, "<Deleted><Key>"+escape(key)+"</Key></Deleted>")
		}
	}
	return append(parts, "</DeleteResult>"), nil
}

// escape is XML's text escaping of `&`, `<` and `>`.
func escape(text string) string {
	return xmlEscaper.Replace(text)
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func requestID() string {
	var id [16]byte
	rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

// respond writes a reply with an empty body (or none, for HEAD and 304).
func respond(w http.ResponseWriter, status int, body []byte, noBody bool) {
	header := w.Header()
	header.Set("X-Amz-Request-Id", requestID())
	if status != http.StatusNoContent && status != http.StatusNotModified {
		header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	if !noBody {
		w.Write(body)
	}
}

// writeXML answers with an XML document made of parts, copied once into the reply.
func writeXML(w http.ResponseWriter, status int, noBody bool, parts ...string) {
	size := len(xmlHead)
	for _, part := range parts {
		size += len(part)
	}
	body := make([]byte, 0, size)
	body = append(body, xmlHead...)
	for _, part := range parts {
		body = append(body, part...)
	}
	w.Header().Set("Content-Type", "application/xml")
	respond(w, status, body, noBody)
}
