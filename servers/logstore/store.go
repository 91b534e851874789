// The log store's objects, with a sorted in-memory index and retention.
//
// Objects live as records in append-only segment files (segments.go), written before a request
// is answered, so a `kill -9` at any moment keeps every object a client was told is stored. The
// index (sorted keys per bucket) is rebuilt at start by replaying the segments, which keeps
// listings to a binary search and a slice. Stores written before segments, one file per object
// (paths.go), are moved into a segment at start.
package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxKeys is the most keys one listing page or one DeleteObjects request holds.
const MaxKeys = 1000

// MaxKeyBytes is S3's longest key.
const MaxKeyBytes = 1024

// RetiredFor is how long an expired batch stays readable after it left the listings (Kafka's
// `file.delete.delay.ms`): tansu lists a partition's batches, then reads them, and a batch
// that retention deleted in between failed the whole fetch (`UnknownServerError`).
const RetiredFor = 60 * time.Second

const tempSuffix = ".tmp"

// batchKey matches tansu's batch objects:
// `clusters/<c>/topics/<t>/partitions/<p10>/records/<offset20>.batch`.
var batchKey = regexp.MustCompile(`^(.*/partitions/[^/]+/records/)[^/]+\.batch$`)

// commitKey matches tansu's committed offsets:
// `clusters/<c>/groups/consumers/<g>/offsets/<t>/partitions/<p10>.json`, a JSON object whose
// `offset` is the group's next offset to read and whose `metadata` is the commit's metadata
// string: `resume=<offset>` names a lower offset the group may read again after a restart.
var commitKey = regexp.MustCompile(
	`^(clusters/[^/]+/)groups/consumers/[^/]+/offsets/([^/]+)/partitions/([0-9]+)\.json$`)

// recordsOf is the `records/` prefix of the partition a committed offset key is for.
func recordsOf(commit string) string {
	m := commitKey.FindStringSubmatch(commit)
	return m[1] + "topics/" + m[2] + "/partitions/" + m[3] + "/records/"
}

// StoreError is an S3 error: Code and Status are what S3 answers for it.
type StoreError struct {
	Code    string
	Status  int
	Message string
}

func (e *StoreError) Error() string { return e.Message }

func storeError(code string, status int, description, subject string) *StoreError {
	return &StoreError{code, status, fmt.Sprintf("%s (%s)", description, subject)}
}

func noSuchBucket(bucket string) error {
	return storeError("NoSuchBucket", 404, "The specified bucket does not exist.", bucket)
}

func noSuchKey(key string) error {
	return storeError("NoSuchKey", 404, "The specified key does not exist.", key)
}

func preconditionFailed(key string) error {
	return storeError("PreconditionFailed", 412,
		"At least one of the preconditions you specified did not hold.", key)
}

// Meta is what a listing or a HEAD tells of an object.
type Meta struct {
	Size int64
	// ETag is quoted, as in the `ETag` header.
	ETag string
	// ModifiedMs is milliseconds since the epoch, strictly increasing with every write.
	ModifiedMs int64
	// shownMs is the LastModified a listing shows: ModifiedMs, but for a batch never later
	// than the next batch of its partition (inOffsetOrder).
	shownMs int64
	// listed is the object's `<Contents>` in a listing, made once: tansu lists a partition's
	// every batch on each fetch, so the same objects are listed many times a second under load.
	listed string
	// at is where its record lies in the segments.
	at location
}

func newMeta(key string, etag string, modifiedMs int64, at location) Meta {
	return Meta{Size: at.size, ETag: etag, ModifiedMs: modifiedMs, at: at}.listedAt(key, modifiedMs)
}

// listedAt is meta as listings show it when they say it was written at ms.
func (m Meta) listedAt(key string, ms int64) Meta {
	m.shownMs = ms
	m.listed = contents(escape(key), m)
	return m
}

// Entry is one object of a listing.
type Entry struct {
	Key  string
	Meta Meta
}

// Listing is one ListObjectsV2 page.
type Listing struct {
	Contents []Entry
	Prefixes []string
	// NextStart is where the next page starts (inclusive); "" when this page is the last.
	NextStart string
}

type bucket struct {
	keys       []string // sorted
	meta       map[string]Meta
	partitions map[string]bool // `records/` prefixes that hold batches
	commits    map[string]bool // committed-offset keys
	// listFrom is, per `records/` prefix, the first batch a listing of it shows: the groups
	// reading the partition have read those before it (see Expire).
	listFrom map[string]string
}

// groupsRead is how far consumer groups have read a partition: the next offset they read, and
// the lowest they may read again after a restart (`resume=` in a commit's metadata; the offset
// without it). For one commit, or the lowest of each over the groups reading the partition.
type groupsRead struct{ offset, resume int64 }

// committed is one group's commit for a partition, as of the commit object's ModifiedMs.
type committed struct {
	modifiedMs int64
	read       groupsRead
}

// resumePrefix starts a commit's metadata that names its resume offset (`flows.kafka.RESUME`).
const resumePrefix = "resume="

type retiredKey struct{ bucket, key string }

type retired struct {
	until time.Time
	meta  Meta
	// body is kept here once compaction has dropped the object's record.
	body []byte
}

// Store holds buckets of objects under a folder; safe to use from several goroutines.
type Store struct {
	root  string
	disk  *segmentLog
	clock func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	committed map[string]committed // commit key -> its offset, as of its ModifiedMs
	retired   map[retiredKey]retired
	lastMs    int64
}

// OpenStore loads (or creates) `buckets` under `root`.
func OpenStore(root string, buckets []string, fsync bool, clock func() time.Time) (*Store, error) {
	s := &Store{
		root: root, clock: clock,
		buckets:   map[string]*bucket{},
		committed: map[string]committed{},
		retired:   map[retiredKey]retired{},
	}
	for _, name := range buckets {
		s.buckets[name] = &bucket{
			meta: map[string]Meta{}, partitions: map[string]bool{}, commits: map[string]bool{},
			listFrom: map[string]string{},
		}
	}
	disk, err := openSegmentLog(filepath.Join(root, "segments"), fsync, s.replay)
	if err != nil {
		return nil, err
	}
	s.disk = disk
	if err := s.moveFiles(buckets); err != nil {
		disk.close()
		return nil, err
	}
	disk.live = 0
	for _, name := range buckets {
		b := s.buckets[name]
		for key, meta := range b.meta {
			b.keys = append(b.keys, key)
			b.index(key)
			disk.live += meta.at.record
		}
		sort.Strings(b.keys)
		for partition := range b.partitions {
			batches := b.batches(partition)
			for i := len(batches) - 1; i >= 0; i-- { // the next batch first
				b.meta[batches[i].Key] = b.inOffsetOrder(partition, batches[i].Key, batches[i].Meta)
			}
		}
		log.Printf("INFO bucket %s: %d objects", name, len(b.meta))
	}
	return s, s.compactIfDue()
}

// replay applies one record read back from the segments.
func (s *Store) replay(r record) {
	if r.modifiedMs > s.lastMs {
		s.lastMs = r.modifiedMs
	}
	if r.kind == resetRecord {
		for _, b := range s.buckets {
			b.meta = map[string]Meta{}
		}
		return
	}
	b, ok := s.buckets[r.bucket]
	if !ok { // a bucket no longer served: compaction drops it
		return
	}
	if r.kind == putRecord {
		b.meta[r.key] = newMeta(r.key, r.etag, r.modifiedMs, r.at)
	} else {
		delete(b.meta, r.key)
	}
}

// index notes a new key that is a batch or a committed offset.
func (b *bucket) index(key string) {
	if m := batchKey.FindStringSubmatch(key); m != nil {
		b.partitions[m[1]] = true
	} else if commitKey.MatchString(key) {
		b.commits[key] = true
	}
}

// moveFiles moves the objects of a store written before segments, one file each (its first
// line a JSON header with the ETag and LastModified, the rest the body), into the segments,
// then deletes the files. A kill in between moves them again at the next start.
func (s *Store) moveFiles(buckets []string) error {
	clockFile := filepath.Join(s.root, ".clock")
	if text, err := os.ReadFile(clockFile); err == nil {
		if ms, err := strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64); err == nil && ms > s.lastMs {
			s.lastMs = ms
		}
	}
	moved := 0
	for _, name := range buckets {
		folder := filepath.Join(s.root, name)
		err := filepath.WalkDir(folder, func(path string, entry fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && path == folder {
				return fs.SkipDir
			}
			if err != nil || entry.IsDir() || !strings.HasSuffix(path, objectSuffix) {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var head struct {
				ETag       string `json:"etag"`
				ModifiedMs int64  `json:"modified_ms"`
			}
			end := bytes.IndexByte(data, '\n')
			if end < 0 || json.Unmarshal(data[:end], &head) != nil {
				return fmt.Errorf("%s: damaged header", path)
			}
			relative, _ := filepath.Rel(folder, path)
			key := keyOf(filepath.ToSlash(relative))
			at, err := s.disk.append(putRecord, name, key, head.ETag, head.ModifiedMs, data[end+1:])
			if err != nil {
				return err
			}
			s.replay(record{putRecord, name, key, head.ETag, head.ModifiedMs, at})
			moved++
			return nil
		})
		if err != nil {
			return err
		}
	}
	if moved == 0 {
		return removeIfThere(clockFile)
	}
	if err := s.disk.files[s.disk.active].Sync(); err != nil {
		return err
	}
	for _, name := range buckets {
		if err := os.RemoveAll(filepath.Join(s.root, name)); err != nil {
			return err
		}
	}
	log.Printf("INFO moved %d objects from files into segments", moved)
	return removeIfThere(clockFile)
}

func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Store) bucket(name string) (*bucket, error) {
	b, ok := s.buckets[name]
	if !ok {
		return nil, noSuchBucket(name)
	}
	return b, nil
}

// LastWriteMs is the store's clock at its newest write: it moves whenever anything is written.
func (s *Store) LastWriteMs() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastMs
}

// Counts is how many objects each bucket lists now.
func (s *Store) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := make(map[string]int, len(s.buckets))
	for name, b := range s.buckets {
		counts[name] = len(b.meta)
	}
	return counts
}

// ETagMatches tells whether an `If-Match`/`If-None-Match` value (`*` or a list of ETags)
// names etag.
func ETagMatches(condition, etag string) bool {
	for _, tag := range strings.Split(condition, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// Put stores body; with a condition (nil for none), checks it and writes as one step.
func (s *Store) Put(bucketName, key string, body []byte, ifMatch, ifNoneMatch *string) (Meta, error) {
	sum := md5.Sum(body)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucketName)
	if err != nil {
		return Meta{}, err
	}
	current, exists := b.meta[key]
	if ifNoneMatch != nil && exists && ETagMatches(*ifNoneMatch, current.ETag) {
		return Meta{}, preconditionFailed(key)
	}
	if ifMatch != nil && !(exists && ETagMatches(*ifMatch, current.ETag)) {
		return Meta{}, preconditionFailed(key)
	}
	if len(key) > MaxKeyBytes {
		return Meta{}, storeError("KeyTooLongError", 400, "Your key is too long.", key)
	}
	stamp := s.clock().UnixMilli()
	if stamp <= s.lastMs {
		stamp = s.lastMs + 1
	}
	at, err := s.disk.append(putRecord, bucketName, key, etag, stamp, body)
	if err != nil {
		return Meta{}, err
	}
	meta := newMeta(key, etag, stamp, at)
	s.lastMs = stamp
	if exists {
		s.disk.release(current.at)
	}
	s.unlink(bucketName, key)
	if commitKey.MatchString(key) {
		b.readBack(key, body)
	}
	if !exists {
		at := sort.SearchStrings(b.keys, key)
		b.keys = append(b.keys, "")
		copy(b.keys[at+1:], b.keys[at:])
		b.keys[at] = key
		b.index(key)
	}
	if m := batchKey.FindStringSubmatch(key); m != nil {
		meta = b.inOffsetOrder(m[1], key, meta)
	}
	b.meta[key] = meta
	return meta, s.compactIfDue()
}

// inOffsetOrder is a batch's meta listed as written no later than the next batch of its
// partition (a `records/` prefix), so that listings show a partition's batches written in
// offset order. tansu writes a partition's batches concurrently, each at the offset it took,
// and a batch can land after the one above it; tansu answers a reader that starts from the
// beginning (ListOffsets, earliest) with the batch listed as written first, not the lowest
// offset, and that reader skipped the batch below it for good (1-3 acknowledged messages
// missing in 1 run in 20 of test_logstore_tansu.py). A new write is the newest, so it never
// changes what an earlier batch shows; key is in the index already.
func (b *bucket) inOffsetOrder(partition, key string, meta Meta) Meta {
	at := sort.SearchStrings(b.keys, key) + 1
	for ; at < len(b.keys) && strings.HasPrefix(b.keys[at], partition); at++ {
		if next := b.keys[at]; isBatchOf(partition, next) {
			if shown := b.meta[next].shownMs; shown < meta.shownMs {
				return meta.listedAt(key, shown)
			}
			break
		}
	}
	return meta
}

// readBack lists a partition again from the batch that holds a group's new commit, until the
// next retention pass, when the commit goes back below where its listings start: a reader
// restarted from an older snapshot commits where it starts before its first fetch, and one
// back from a stop commits its position again when it finds a gap (`flows.kafka`).
func (b *bucket) readBack(commit string, body []byte) {
	records := recordsOf(commit)
	first, ok := b.listFrom[records]
	if !ok {
		return
	}
	read, err := commitRead(body)
	if err != nil {
		delete(b.listFrom, records)
		return
	}
	if read.offset >= baseOffset(first) {
		return
	}
	batches := b.batches(records)
	if len(batches) == 0 {
		delete(b.listFrom, records)
		return
	}
	b.listFrom[records] = batches[fullyRead(batches, read.offset, 0)].Key
}

// object finds a listed or retired object; the caller holds the lock.
func (s *Store) object(bucketName, key string) (Meta, error) {
	b, err := s.bucket(bucketName)
	if err != nil {
		return Meta{}, err
	}
	if meta, ok := b.meta[key]; ok {
		return meta, nil
	}
	if r, ok := s.retired[retiredKey{bucketName, key}]; ok {
		return r.meta, nil
	}
	return Meta{}, noSuchKey(key)
}

// Head is an object's metadata.
func (s *Store) Head(bucketName, key string) (Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.object(bucketName, key)
}

// Get is an object's metadata and body.
func (s *Store) Get(bucketName, key string) (Meta, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read(bucketName, key)
}

// read is a listed or retired object's metadata and body; the caller holds the lock.
func (s *Store) read(bucketName, key string) (Meta, []byte, error) {
	meta, err := s.object(bucketName, key)
	if err != nil {
		return Meta{}, nil, err
	}
	if r, ok := s.retired[retiredKey{bucketName, key}]; ok && r.body != nil {
		return meta, r.body, nil
	}
	body, err := s.disk.read(meta.at)
	return meta, body, err
}

// List is one ListObjectsV2 page: keys from start (inclusive) in order, folded at delimiter.
func (s *Store) List(bucketName, prefix, delimiter, start string, maxKeys int) (Listing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucketName)
	if err != nil {
		return Listing{}, err
	}
	var page Listing
	from := prefix
	if start > from {
		from = start
	}
	if first, ok := b.listFrom[prefix]; ok && first > from {
		from = first
	}
	at := sort.SearchStrings(b.keys, from)
	for at < len(b.keys) && strings.HasPrefix(b.keys[at], prefix) {
		key := b.keys[at]
		if len(page.Contents)+len(page.Prefixes) == maxKeys {
			page.NextStart = key
			break
		}
		cut := -1
		if delimiter != "" {
			if i := strings.Index(key[len(prefix):], delimiter); i >= 0 {
				cut = len(prefix) + i
			}
		}
		if cut < 0 {
			page.Contents = append(page.Contents, Entry{key, b.meta[key]})
			at++
			continue
		}
		folded := key[:cut+len(delimiter)]
		page.Prefixes = append(page.Prefixes, folded)
		next := after(folded)
		at += sort.SearchStrings(b.keys[at:], next)
	}
	return page, nil
}

// after is the first string after all those that start with prefix (not empty).
func after(prefix string) string {
	last := prefix[len(prefix)-1]
	if last == 0xff { // no byte follows: every longer string with this prefix sorts before
		return prefix + "\xff"
	}
	return prefix[:len(prefix)-1] + string([]byte{last + 1})
}

// DeleteMany deletes the keys that exist; like S3, missing keys are not an error.
func (s *Store) DeleteMany(bucketName string, keys []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	removed, err := s.unlist(bucketName, keys)
	for _, key := range removed {
		s.unlink(bucketName, key)
	}
	if err != nil {
		return err
	}
	return s.compactIfDue()
}

// unlist takes keys out of the index, with a tombstone each in the segments (all in one write),
// and returns those that were in it. A retired key's record stays live until `unlink`.
func (s *Store) unlist(bucketName string, keys []string) ([]string, error) {
	b, err := s.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	var removed []string
	gone := map[string]bool{}
	for _, key := range keys {
		if _, ok := b.meta[key]; ok && !gone[key] {
			gone[key] = true
			removed = append(removed, key)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := s.disk.appendDeletes(bucketName, removed, s.lastMs); err != nil {
		return nil, err
	}
	for _, key := range removed {
		if _, isRetired := s.retired[retiredKey{bucketName, key}]; !isRetired {
			s.disk.release(b.meta[key].at)
		}
		delete(b.meta, key)
		delete(b.commits, key)
		delete(s.committed, key)
	}
	kept := b.keys[:0] // one pass over the sorted keys, not a shift for each key removed
	for _, key := range b.keys {
		if !gone[key] {
			kept = append(kept, key)
		}
	}
	b.keys = kept
	return removed, nil
}

// unlink forgets a retired object: nothing reads it any more.
func (s *Store) unlink(bucketName, key string) {
	k := retiredKey{bucketName, key}
	if r, ok := s.retired[k]; ok {
		delete(s.retired, k)
		s.disk.release(r.meta.at)
	}
}

// compactIfDue rewrites the live objects into a new segment once dead records outweigh them;
// the caller holds the lock. Retired objects keep their bodies in memory until they go.
func (s *Store) compactIfDue() error {
	if !s.disk.due() {
		return nil
	}
	c, err := s.disk.compact(s.lastMs)
	if err != nil {
		return err
	}
	moved := map[*bucket]map[string]Meta{}
	var live int64
	for name, b := range s.buckets {
		moved[b] = make(map[string]Meta, len(b.meta))
		for key, meta := range b.meta {
			body, err := s.disk.read(meta.at)
			if err == nil {
				meta.at, err = c.add(putRecord, name, key, meta.ETag, meta.ModifiedMs, body)
			}
			if err != nil {
				c.abandon()
				return err
			}
			moved[b][key] = meta
			live += meta.at.record
		}
	}
	bodies := map[retiredKey][]byte{}
	for k, r := range s.retired {
		if r.body == nil {
			body, err := s.disk.read(r.meta.at)
			if err != nil {
				c.abandon()
				return err
			}
			bodies[k] = body
		}
	}
	if err := c.finish(live); err != nil {
		return err
	}
	for b, metas := range moved {
		b.meta = metas
	}
	for k, body := range bodies {
		r := s.retired[k]
		r.body, r.meta.at = body, location{}
		s.retired[k] = r
	}
	log.Printf("INFO compacted the segments: %d bytes of live objects", live)
	return nil
}

// Retention is what `Expire` keeps; a nil field does not limit.
type Retention struct {
	// Age: batches older than this go.
	Age *time.Duration
	// MaxBatches: a partition keeps at most this many, but for what a group may still read
	// (with KeepRead).
	MaxBatches *int
	// KeepRead: in a partition that consumer groups read, keep only what one of them may read
	// again after a restart and list only what one of them has not read yet, and always keep
	// and list the newest this many batches.
	KeepRead *int
	// Listed: with KeepRead, the listings follow only the groups that keep up: that committed
	// within this long, or whose next batch is younger (when none does, the furthest one). A
	// reader stopped while batches wait for it no longer lengthens every fetch once the oldest
	// has waited this long, and when it is back it commits its position again (`flows.kafka`);
	// an idle reader at the end of the log stays, however long ago it committed.
	Listed *time.Duration
}

// Expire deletes the oldest `.batch` objects of every partition, as Kafka retention would.
//
// A partition keeps its batches younger than Age and, of those, its newest MaxBatches, and
// always its newest one (tansu reads the log end from it). With KeepRead, a partition that
// consumer groups read (groups that committed an offset for it within Age) keeps only what one
// of them may read again after a restart (its `resume=` offset, else its committed offset),
// and MaxBatches never deletes what one of them may still read: a reader stopped for longer
// than MaxBatches batches take to come (seconds under load) loses nothing. Its listings, until
// the next pass or a commit that goes back, show only what one of them has not read yet (its
// committed offset; of those keeping up, see Listed), so a stopped reader lengthens them
// only once it is back, until it has caught up; both always include its newest KeepRead
// batches. tansu lists every listed batch on each fetch, so short listings keep fetches
// cheap, and a restarted reader that commits its resume offset before it fetches has its
// batches listed again at once (Put, readBack). Only a leading run of batches is deleted, so
// the log never gets holes; watermarks, offsets and groups are never touched. A deleted batch
// leaves the listings at once and its file RetiredFor later, so a reader that has just listed
// it can still read it. At most limit objects go per call, so one call never holds the lock
// for long. Returns how many were deleted.
func (s *Store) Expire(keep Retention, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	for k, r := range s.retired {
		if !r.until.After(now) {
			s.unlink(k.bucket, k.key)
		}
	}
	horizonMs := int64(-1)
	if keep.Age != nil {
		horizonMs = now.Add(-*keep.Age).UnixMilli()
	}
	deleted := 0
	names := make([]string, 0, len(s.buckets))
	for name := range s.buckets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b := s.buckets[name]
		var readUpTo map[string]groupsRead
		if keep.KeepRead != nil {
			listedMs := int64(-1)
			if keep.Listed != nil {
				listedMs = now.Add(-*keep.Listed).UnixMilli()
			}
			readUpTo = s.readUpTo(name, b, horizonMs, listedMs)
		}
		b.listFrom = map[string]string{}
		partitions := make([]string, 0, len(b.partitions))
		for partition := range b.partitions {
			partitions = append(partitions, partition)
		}
		sort.Strings(partitions)
		for _, partition := range partitions {
			read, isRead := readUpTo[partition]
			keepRead := keep.KeepRead
			if !isRead {
				keepRead = nil
			}
			if !b.mayExpire(partition, horizonMs, keep.MaxBatches, keepRead) {
				continue
			}
			batches := b.batches(partition)
			if keepRead != nil {
				if n := fullyRead(batches, read.offset, *keepRead); n > 0 {
					b.listFrom[partition] = batches[n].Key
				}
			}
			count := 0
			// MaxBatches only where no group reads: where groups read, KeepRead below removes
			// all they have read and nothing one of them may still read, however far behind.
			if keep.MaxBatches != nil && keepRead == nil && len(batches) > *keep.MaxBatches {
				count = len(batches) - *keep.MaxBatches
			}
			if horizonMs >= 0 {
				for count < len(batches) && batches[count].Meta.ModifiedMs < horizonMs {
					count++
				}
			}
			if keepRead != nil {
				if n := fullyRead(batches, read.resume, *keepRead); n > count {
					count = n
				}
			}
			count = minOf(count, len(batches)-1, limit-deleted)
			if count <= 0 {
				continue
			}
			keys := make([]string, count)
			for i, entry := range batches[:count] {
				keys[i] = entry.Key
				s.retired[retiredKey{name, entry.Key}] = retired{until: now.Add(RetiredFor), meta: entry.Meta}
			}
			if _, err := s.unlist(name, keys); err != nil {
				return deleted, err
			}
			deleted += count
		}
	}
	return deleted, s.compactIfDue()
}

func minOf(values ...int) int {
	least := values[0]
	for _, v := range values[1:] {
		if v < least {
			least = v
		}
	}
	return least
}

// readUpTo is, per `records/` prefix, what the groups that committed for it after horizonMs
// (-1: any time) have read: the lowest resume offset (none of them reads a batch below it
// again), and the lowest offset of the groups keeping up (every batch below it has been read by
// every group still reading): those that committed after listedMs, or whose next batch was
// written after it (an idle group at the end of the log commits nothing; when traffic comes
// back, it has Listed from the first new batch to read and commit again). If none keeps up,
// past the end: the partition is listed as one no group reads, its newest KeepRead batches.
// Listed from the furthest of the stopped groups, its listings grew with every batch and
// readers that commit nothing (the gateway, kcat) paid for them: the gateway's fetches of
// results listed ~900 objects each, 10 s after every flow reading them stopped, and of 200
// requests/s offered 24-87 were answered. A stopped group that comes back commits its
// position again when it finds a gap, and its batches are listed again at once (readBack).
func (s *Store) readUpTo(name string, b *bucket, horizonMs, listedMs int64) map[string]groupsRead {
	lowest, lowestListed := map[string]groupsRead{}, map[string]int64{}
	for key := range b.commits {
		meta := b.meta[key]
		if horizonMs >= 0 && meta.ModifiedMs < horizonMs {
			continue // a group gone quiet for longer than retention holds nothing back
		}
		cached, ok := s.committed[key]
		if !ok || cached.modifiedMs != meta.ModifiedMs {
			_, body, err := s.read(name, key) // a small file: read under the lock
			if err != nil {
				continue
			}
			read, err := commitRead(body)
			if err != nil {
				continue
			}
			cached = committed{meta.ModifiedMs, read}
			s.committed[key] = cached
		}
		records := recordsOf(key)
		current, ok := lowest[records]
		if !ok {
			current = cached.read
		}
		if cached.read.offset < current.offset {
			current.offset = cached.read.offset
		}
		if cached.read.resume < current.resume {
			current.resume = cached.read.resume
		}
		lowest[records] = current
		if meta.ModifiedMs >= listedMs || b.waitingSinceMs(records, cached.read.offset) >= listedMs {
			if listed, ok := lowestListed[records]; !ok || cached.read.offset < listed {
				lowestListed[records] = cached.read.offset
			}
		}
	}
	for records, current := range lowest {
		if listed, ok := lowestListed[records]; ok {
			current.offset = listed
		} else {
			current.offset = math.MaxInt64
		}
		lowest[records] = current
	}
	return lowest
}

// commitRead is what a commit object that tansu wrote says the group has read.
func commitRead(body []byte) (groupsRead, error) {
	var commit struct {
		Offset   int64  `json:"offset"`
		Metadata string `json:"metadata"` // null reads as ""
	}
	if err := json.Unmarshal(body, &commit); err != nil {
		return groupsRead{}, err
	}
	return groupsRead{commit.Offset, resumeOffset(commit.Metadata, commit.Offset)}, nil
}

// resumeOffset is the offset a commit's metadata names with `resume=`, never above the
// committed offset itself; offset when it names none. librdkafka sends the metadata with its C
// string's closing NUL, which tansu keeps.
func resumeOffset(metadata string, offset int64) int64 {
	metadata = strings.TrimRight(metadata, "\x00")
	if !strings.HasPrefix(metadata, resumePrefix) {
		return offset
	}
	resume, err := strconv.ParseInt(strings.TrimPrefix(metadata, resumePrefix), 10, 64)
	if err != nil || resume < 0 || resume > offset {
		return offset
	}
	return resume
}

// span is where the keys under prefix lie in the sorted keys.
func (b *bucket) span(prefix string) (int, int) {
	low := sort.SearchStrings(b.keys, prefix)
	high := low + sort.SearchStrings(b.keys[low:], after(prefix))
	return low, high
}

// waitingSinceMs is when the first batch at or after offset in a `records/` prefix was written
// (math.MaxInt64 when there is none yet): how long a group reading from offset has left it.
func (b *bucket) waitingSinceMs(records string, offset int64) int64 {
	at := sort.SearchStrings(b.keys, records+fmt.Sprintf("%020d.batch", offset))
	for ; at < len(b.keys) && strings.HasPrefix(b.keys[at], records); at++ {
		if key := b.keys[at]; isBatchOf(records, key) {
			return b.meta[key].ModifiedMs
		}
	}
	return math.MaxInt64
}

// mayExpire is a quick test, two binary searches, that rules out most partitions on most passes.
func (b *bucket) mayExpire(partition string, horizonMs int64, maxBatches, keepRead *int) bool {
	low, high := b.span(partition)
	switch {
	case low == high:
		return false
	case maxBatches != nil && high-low > *maxBatches:
		return true
	case keepRead != nil && high-low > *keepRead:
		return true
	case horizonMs < 0:
		return false
	}
	first := b.keys[low] // the oldest batch, unless something else sorts first
	return !strings.HasSuffix(first, ".batch") || b.meta[first].ModifiedMs < horizonMs
}

// batches are those directly under partition (a `.../records/` prefix), oldest offset first.
func (b *bucket) batches(partition string) []Entry {
	low, high := b.span(partition)
	var found []Entry
	for _, key := range b.keys[low:high] {
		if isBatchOf(partition, key) {
			found = append(found, Entry{key, b.meta[key]})
		}
	}
	return found
}

// isBatchOf tells whether key, which starts with partition (a `.../records/` prefix), is a
// batch directly under it.
func isBatchOf(partition, key string) bool {
	return strings.HasSuffix(key, ".batch") && !strings.Contains(key[len(partition):], "/")
}

// fullyRead is how many of the oldest batches lie wholly below offset readUpTo and beyond the
// newest keep: a batch ends where the next one begins.
func fullyRead(batches []Entry, readUpTo int64, keep int) int {
	count, most := 0, minOf(len(batches)-keep, len(batches)-1)
	for count < most && baseOffset(batches[count+1].Key) <= readUpTo {
		count++
	}
	return count
}

// baseOffset is the first offset of a batch object.
func baseOffset(key string) int64 {
	name := key[strings.LastIndexByte(key, '/')+1:]
	offset, _ := strconv.ParseInt(strings.TrimSuffix(name, ".batch"), 10, 64)
	return offset
}
