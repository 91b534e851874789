// The log store's objects on local disk, with a sorted in-memory index and retention.
//
// Each object is one file whose first line is a JSON header (ETag, LastModified) and whose
// rest is the body. A write goes to a temporary file in the same folder and is renamed over the
// old one, so a `kill -9` at any moment leaves either the old or the new object, header and
// body together. The index (sorted keys per bucket) is rebuilt at start by walking the
// folders, which keeps listings to a binary search and a slice instead of a directory walk per
// request.
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
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxKeys is the most keys one listing page or one DeleteObjects request holds.
const MaxKeys = 1000

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
	// listed is the object's `<Contents>` in a listing, made once: tansu lists a partition's
	// every batch on each fetch, so the same objects are listed many times a second under load.
	listed string
}

func newMeta(key string, size int64, etag string, modifiedMs int64) Meta {
	meta := Meta{Size: size, ETag: etag, ModifiedMs: modifiedMs}
	meta.listed = contents(escape(key), meta)
	return meta
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

type header struct {
	ETag       string `json:"etag"`
	ModifiedMs int64  `json:"modified_ms"`
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
}

// Store holds buckets of objects under a folder; safe to use from several goroutines.
type Store struct {
	root  string
	fsync bool
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
		root: root, fsync: fsync, clock: clock,
		buckets:   map[string]*bucket{},
		committed: map[string]committed{},
		retired:   map[retiredKey]retired{},
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	stale, _ := filepath.Glob(filepath.Join(root, "*"+tempSuffix))
	for _, path := range stale {
		os.Remove(path)
	}
	if text, err := os.ReadFile(s.clockFile()); err == nil {
		if s.lastMs, err = strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64); err != nil {
			return nil, fmt.Errorf("%s: %w", s.clockFile(), err)
		}
	}
	for _, name := range buckets {
		if err := s.load(name); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) clockFile() string { return filepath.Join(s.root, ".clock") }

func (s *Store) load(name string) error {
	folder := filepath.Join(s.root, name)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return err
	}
	b := &bucket{
		meta: map[string]Meta{}, partitions: map[string]bool{}, commits: map[string]bool{},
		listFrom: map[string]string{},
	}
	err := filepath.WalkDir(folder, func(path string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		if !strings.HasSuffix(path, objectSuffix) {
			if strings.HasSuffix(path, tempSuffix) { // a write cut short by a kill
				return os.Remove(path)
			}
			return nil
		}
		head, size, err := readHeader(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		relative, _ := filepath.Rel(folder, path)
		key := keyOf(filepath.ToSlash(relative))
		b.meta[key] = newMeta(key, size, head.ETag, head.ModifiedMs)
		if head.ModifiedMs > s.lastMs {
			s.lastMs = head.ModifiedMs
		}
		return nil
	})
	if err != nil {
		return err
	}
	for key := range b.meta {
		b.keys = append(b.keys, key)
		b.index(key)
	}
	sort.Strings(b.keys)
	s.buckets[name] = b
	log.Printf("INFO bucket %s: %d objects", name, len(b.meta))
	return nil
}

// index notes a new key that is a batch or a committed offset.
func (b *bucket) index(key string) {
	if m := batchKey.FindStringSubmatch(key); m != nil {
		b.partitions[m[1]] = true
	} else if commitKey.MatchString(key) {
		b.commits[key] = true
	}
}

// readHeader reads an object file's header line; size is the body's.
func readHeader(path string) (header, int64, error) {
	var head header
	file, err := os.Open(path)
	if err != nil {
		return head, 0, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return head, 0, err
	}
	buffer := make([]byte, 256)
	n, _ := file.Read(buffer)
	end := strings.IndexByte(string(buffer[:n]), '\n')
	if end < 0 {
		return head, 0, errors.New("no header line")
	}
	if err := json.Unmarshal(buffer[:end], &head); err != nil {
		return head, 0, err
	}
	return head, info.Size() - int64(end) - 1, nil
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
	stamp := s.clock().UnixMilli()
	if stamp <= s.lastMs {
		stamp = s.lastMs + 1
	}
	meta := newMeta(key, int64(len(body)), etag, stamp)
	head, _ := json.Marshal(header{etag, stamp})
	data := append(append(head, '\n'), body...)
	if err := s.write(filepath.Join(s.root, bucketName, storePath(key)), data); err != nil {
		if errors.Is(err, syscall.ENAMETOOLONG) {
			return Meta{}, storeError("KeyTooLongError", 400, "Your key is too long.", key)
		}
		return Meta{}, err
	}
	s.lastMs = stamp
	delete(s.retired, retiredKey{bucketName, key})
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
	b.meta[key] = meta
	return meta, nil
}

// readBack lists a partition whole again, until the next retention pass, when a group's new
// commit for it goes back below where its listings start: a reader restarted from an older
// snapshot commits where it starts before its first fetch.
func (b *bucket) readBack(commit string, body []byte) {
	records := recordsOf(commit)
	first, ok := b.listFrom[records]
	if !ok {
		return
	}
	read, err := commitRead(body)
	if err != nil || read.offset < baseOffset(first) {
		delete(b.listFrom, records)
	}
}

func (s *Store) write(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	temp, err := os.CreateTemp(filepath.Dir(path), ".*"+tempSuffix)
	if err != nil {
		return err
	}
	_, err = temp.Write(data)
	if err == nil && s.fsync {
		err = temp.Sync()
	}
	if closeErr := temp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(temp.Name(), path)
	}
	if err != nil {
		os.Remove(temp.Name())
	}
	return err
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

// Get is an object's metadata and body. The file is read outside the lock: a write replaces
// it whole (rename), and the metadata comes from the file read, so the two always agree.
func (s *Store) Get(bucketName, key string) (Meta, []byte, error) {
	if _, err := s.Head(bucketName, key); err != nil {
		return Meta{}, nil, err
	}
	return s.read(bucketName, key)
}

// read is an object's file: its header's metadata and its body.
func (s *Store) read(bucketName, key string) (Meta, []byte, error) {
	data, err := os.ReadFile(filepath.Join(s.root, bucketName, storePath(key)))
	if errors.Is(err, fs.ErrNotExist) { // deleted since it was looked up
		return Meta{}, nil, noSuchKey(key)
	}
	if err != nil {
		return Meta{}, nil, err
	}
	end := bytes.IndexByte(data, '\n')
	var head header
	if end < 0 || json.Unmarshal(data[:end], &head) != nil {
		return Meta{}, nil, fmt.Errorf("%s/%s: damaged header", bucketName, key)
	}
	body := data[end+1:]
	return Meta{Size: int64(len(body)), ETag: head.ETag, ModifiedMs: head.ModifiedMs}, body, nil
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
	return err
}

// unlist takes keys out of the index and returns those that were in it.
func (s *Store) unlist(bucketName string, keys []string) ([]string, error) {
	b, err := s.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, key := range keys {
		if _, ok := b.meta[key]; !ok {
			continue
		}
		delete(b.meta, key)
		at := sort.SearchStrings(b.keys, key)
		b.keys = append(b.keys[:at], b.keys[at+1:]...)
		delete(b.commits, key)
		delete(s.committed, key)
		removed = append(removed, key)
	}
	if len(removed) > 0 { // the newest LastModified may have gone with them: keep it
		err = s.write(s.clockFile(), []byte(strconv.FormatInt(s.lastMs, 10)))
	}
	return removed, err
}

func (s *Store) unlink(bucketName, key string) {
	delete(s.retired, retiredKey{bucketName, key})
	top := filepath.Join(s.root, bucketName)
	path := filepath.Join(top, storePath(key))
	os.Remove(path)
	for folder := filepath.Dir(path); folder != top && strings.HasPrefix(folder, top); folder = filepath.Dir(folder) {
		if os.Remove(folder) != nil { // not empty
			return
		}
	}
}

// Retention is what `Expire` keeps; a nil field does not limit.
type Retention struct {
	// Age: batches older than this go.
	Age *time.Duration
	// MaxBatches: a partition keeps at most this many.
	MaxBatches *int
	// KeepRead: in a partition that consumer groups read, keep only what one of them may read
	// again after a restart and list only what one of them has not read yet, and always keep
	// and list the newest this many batches.
	KeepRead *int
}

// Expire deletes the oldest `.batch` objects of every partition, as Kafka retention would.
//
// A partition keeps its newest MaxBatches batches and those younger than Age, and always its
// newest one (tansu reads the log end from it). With KeepRead, a partition that consumer
// groups read (groups that committed an offset for it within Age) keeps only what one of them
// may read again after a restart (its `resume=` offset, else its committed offset), and its
// listings, until the next pass or a commit that goes back, show only what one of them has not
// read yet (its committed offset); both always include its newest KeepRead batches. tansu
// lists every listed batch on each fetch, so short listings keep fetches cheap, and a restarted
// reader that commits its resume offset before it fetches has its batches listed again at once
// (Put, readBack). Only a leading run of batches is deleted, so the log never gets holes;
// watermarks, offsets and groups are never touched. A deleted batch leaves the listings at once
// and its file RetiredFor later, so a reader that has just listed it can still read it. At most
// limit objects go per call, so one call never holds the lock for long. Returns how many were
// deleted.
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
			readUpTo = s.readUpTo(name, b, horizonMs)
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
			if keep.MaxBatches != nil && len(batches) > *keep.MaxBatches {
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
				s.retired[retiredKey{name, entry.Key}] = retired{now.Add(RetiredFor), entry.Meta}
			}
			if _, err := s.unlist(name, keys); err != nil {
				return deleted, err
			}
			deleted += count
		}
	}
	return deleted, nil
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

// readUpTo is, per `records/` prefix, the lowest offsets committed by the groups that committed
// for it after horizonMs (-1: any time): every batch below the offset has been read by every
// such group, and none of them reads one below the resume offset again.
func (s *Store) readUpTo(name string, b *bucket, horizonMs int64) map[string]groupsRead {
	lowest := map[string]groupsRead{}
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
		if strings.HasSuffix(key, ".batch") && !strings.Contains(key[len(partition):], "/") {
			found = append(found, Entry{key, b.meta[key]})
		}
	}
	return found
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
