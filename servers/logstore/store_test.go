package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"
)

// clock is a clock the tests move by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newClock() *clock { return &clock{time.UnixMilli(1_700_000_000_000)} }

func open(t *testing.T, root string, c *clock) *Store {
	t.Helper()
	s, err := OpenStore(root, []string{"b"}, false, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must[T any](t *testing.T) func(T, error) T {
	return func(value T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return value
	}
}

func put(t *testing.T, s *Store, key, body string) Meta {
	t.Helper()
	return must[Meta](t)(s.Put("b", key, []byte(body), nil, nil))
}

func code(err error) string {
	var failure *StoreError
	if errors.As(err, &failure) {
		return failure.Code
	}
	return fmt.Sprint(err)
}

func keys(t *testing.T, s *Store, prefix string) []string {
	t.Helper()
	page := must[Listing](t)(s.List("b", prefix, "", "", MaxKeys))
	var found []string
	for _, entry := range page.Contents {
		found = append(found, entry.Key)
	}
	return found
}

func batch(partition, offset int) string {
	return records(partition) + fmt.Sprintf("%020d.batch", offset)
}

func records(partition int) string {
	return fmt.Sprintf("clusters/c/topics/t/partitions/%010d/records/", partition)
}

func ptr[T any](value T) *T { return &value }

func TestStorePathsAsPythonWroteThem(t *testing.T) {
	cases := map[string]string{
		"clusters/c/records/00000000000000000001.batch": "clusters/c/records/00000000000000000001.batch.s3o",
		"a.b/../c/":    "a%2Eb/%2E%2E/c/.s3o",
		"a//€ %2F+":    "a/%/%E2%82%AC%20%252F%2B.s3o",
		"x/y~z_-.json": "x/y~z_-.json.s3o",
	}
	for key, path := range cases {
		if got := storePath(key); got != path {
			t.Errorf("storePath(%q) = %q, want %q", key, got, path)
		}
		if back := keyOf(path); back != key {
			t.Errorf("keyOf(%q) = %q, want %q", path, back, key)
		}
	}
}

// Conditional writes

func TestCreateRefusesAnExistingKey(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	first := must[Meta](t)(s.Put("b", "k", []byte("one"), nil, ptr("*")))
	if _, err := s.Put("b", "k", []byte("two"), nil, ptr("*")); code(err) != "PreconditionFailed" {
		t.Fatalf("second create: %v", err)
	}
	meta, body, _ := s.Get("b", "k")
	if meta != first || string(body) != "one" {
		t.Fatalf("got %v %q", meta, body)
	}
}

func TestUpdateNeedsTheCurrentETag(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	if _, err := s.Put("b", "k", []byte("one"), ptr(`"0"`), nil); code(err) != "PreconditionFailed" {
		t.Fatalf("update of a missing key: %v", err)
	}
	first := put(t, s, "k", "one")
	second := must[Meta](t)(s.Put("b", "k", []byte("two"), &first.ETag, nil))
	if _, err := s.Put("b", "k", []byte("three"), &first.ETag, nil); code(err) != "PreconditionFailed" {
		t.Fatalf("stale update: %v", err)
	}
	meta, body, _ := s.Get("b", "k")
	if meta != second || string(body) != "two" || second.ETag != `"b8a9f715dbb64fd5c56e7783c6820a61"` {
		t.Fatalf("got %v %q", meta, body) // the ETag is md5("two")
	}
}

func TestPlainPutOverwrites(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	put(t, s, "k", "one")
	meta := put(t, s, "k", "two")
	page := must[Listing](t)(s.List("b", "", "", "", MaxKeys))
	if !reflect.DeepEqual(page.Contents, []Entry{{"k", meta}}) {
		t.Fatalf("listing %v", page.Contents)
	}
}

func TestMissingKeysAndBuckets(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	if _, _, err := s.Get("b", "nothing"); code(err) != "NoSuchKey" {
		t.Fatal(err)
	}
	if _, err := s.Put("elsewhere", "k", nil, nil, nil); code(err) != "NoSuchBucket" {
		t.Fatal(err)
	}
}

// Listing

func TestListingIsSortedAndPaged(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	var want []string
	for i := 0; i < 2500; i++ {
		want = append(want, fmt.Sprintf("p/%05d", i))
	}
	for i := len(want) - 1; i >= 0; i-- {
		put(t, s, want[i], "x")
	}
	put(t, s, "q", "outside the prefix")
	var seen []string
	start, pages := "", 0
	for {
		page := must[Listing](t)(s.List("b", "p/", "", start, MaxKeys))
		for _, entry := range page.Contents {
			seen = append(seen, entry.Key)
		}
		pages++
		if page.NextStart == "" {
			break
		}
		start = page.NextStart
	}
	if !reflect.DeepEqual(seen, want) || pages != 3 {
		t.Fatalf("%d keys in %d pages", len(seen), pages)
	}
}

func TestDelimiterFoldsCommonPrefixes(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	for _, key := range []string{"g/a.json", "g/a/offsets/1.json", "g/a/offsets/2.json", "g/b/x", "g/c.json"} {
		put(t, s, key, "{}")
	}
	page := must[Listing](t)(s.List("b", "g/", "/", "", MaxKeys))
	if len(page.Contents) != 2 || page.Contents[0].Key != "g/a.json" || page.Contents[1].Key != "g/c.json" {
		t.Fatalf("contents %v", page.Contents)
	}
	if !reflect.DeepEqual(page.Prefixes, []string{"g/a/", "g/b/"}) {
		t.Fatalf("prefixes %v", page.Prefixes)
	}
	// Paging by two: a common prefix counts as one entry and never comes back.
	var entries []string
	start := ""
	for {
		page := must[Listing](t)(s.List("b", "g/", "/", start, 2))
		for _, entry := range page.Contents {
			entries = append(entries, entry.Key)
		}
		entries = append(entries, page.Prefixes...)
		if page.NextStart == "" {
			break
		}
		start = page.NextStart
	}
	sort.Strings(entries)
	if !reflect.DeepEqual(entries, []string{"g/a.json", "g/a/", "g/b/", "g/c.json"}) {
		t.Fatalf("entries %v", entries)
	}
}

// LastModified and restarts

func TestLastModifiedIncreasesWithEveryWrite(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	previous := int64(0)
	for i := 0; i < 20; i++ { // the clock never moves
		stamp := put(t, s, fmt.Sprintf("k%d", i%3), "x").ModifiedMs
		if stamp <= previous {
			t.Fatalf("write %d: %d after %d", i, stamp, previous)
		}
		previous = stamp
	}
	c.now = c.now.Add(-time.Hour) // even when the wall clock goes back
	if stamp := put(t, s, "k", "x").ModifiedMs; stamp <= previous {
		t.Fatalf("%d after %d", stamp, previous)
	}
}

// tansu takes a batch's offset first and writes it after, so a partition's batches can land
// out of order; tansu's earliest offset is the batch a listing shows written first.
func TestListingsShowAPartitionsBatchesWrittenInOffsetOrder(t *testing.T) {
	root, c := t.TempDir(), newClock()
	s := open(t, root, c)
	second := put(t, s, batch(0, 2), "second").ModifiedMs
	put(t, s, batch(1, 0), "another partition")
	first := put(t, s, batch(0, 0), "first") // landed last
	put(t, s, records(0)+"notes.txt", "not a batch")
	third := put(t, s, batch(0, 5), "third").ModifiedMs
	for _, store := range []*Store{s, open(t, root, c)} {
		shown := map[string]int64{}
		for _, entry := range must[Listing](t)(store.List("b", "", "", "", MaxKeys)).Contents {
			shown[entry.Key] = entry.Meta.shownMs
		}
		want := map[string]int64{
			batch(0, 0): second, batch(0, 2): second, batch(0, 5): third,
			batch(1, 0): second + 1, records(0) + "notes.txt": first.ModifiedMs + 1,
		}
		if !reflect.DeepEqual(shown, want) {
			t.Fatalf("listed as written at %v, want %v", shown, want)
		}
		if meta := must[Meta](t)(store.Head("b", batch(0, 0))); meta.ModifiedMs != first.ModifiedMs {
			t.Fatalf("HEAD says %d, want %d: only listings change", meta.ModifiedMs, first.ModifiedMs)
		}
	}
}

func TestARestartRestoresEveryObject(t *testing.T) {
	root, c := t.TempDir(), newClock()
	s := open(t, root, c)
	names := []string{"a", "a/b", "a/b/c", "a/../x", "a//b", "a/", "dots.in/names.json", "€ %2F+"}
	metas := map[string]Meta{}
	for _, key := range names {
		metas[key] = put(t, s, key, key)
	}
	again := open(t, root, c)
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	if got := keys(t, again, ""); !reflect.DeepEqual(got, sorted) {
		t.Fatalf("keys %v", got)
	}
	for _, key := range names {
		meta, body, err := again.Get("b", key)
		if err != nil || meta != metas[key] || string(body) != key {
			t.Fatalf("%q: %v %q %v", key, meta, body, err)
		}
	}
}

// A kill in the middle of an append leaves part of a record: the restart cuts it off, and
// keeps every whole one. So does a record damaged on disk, its length or its bytes.
func TestARestartCutsOffARecordAKillLeftHalfWritten(t *testing.T) {
	damages := map[string]func(segment string, last int64){
		"cut short": func(segment string, last int64) {
			info := must[os.FileInfo](t)(os.Stat(segment))
			must[struct{}](t)(struct{}{}, os.Truncate(segment, info.Size()-5))
		},
		"a length past the end": func(segment string, last int64) {
			overwrite(t, segment, last, []byte{0xff, 0xff, 0xff, 0x7f})
		},
		"a changed byte of its body": func(segment string, last int64) {
			info := must[os.FileInfo](t)(os.Stat(segment))
			overwrite(t, segment, info.Size()-3, []byte{'#'})
		},
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			root, c := t.TempDir(), newClock()
			s := open(t, root, c)
			first := put(t, s, "kept", "x")
			put(t, s, "torn", "a body long enough to be cut")
			damage(onlySegment(t, root), first.at.record)
			again := open(t, root, c)
			if got := keys(t, again, ""); !reflect.DeepEqual(got, []string{"kept"}) {
				t.Fatalf("keys %v", got)
			}
			put(t, again, "next", "y")
			if got := keys(t, open(t, root, c), ""); !reflect.DeepEqual(got, []string{"kept", "next"}) {
				t.Fatalf("keys after the next write %v", got)
			}
		})
	}
}

func overwrite(t *testing.T, path string, offset int64, data []byte) {
	t.Helper()
	file := must[*os.File](t)(os.OpenFile(path, os.O_WRONLY, 0))
	defer file.Close()
	must[int](t)(file.WriteAt(data, offset))
}

func onlySegment(t *testing.T, root string) string {
	t.Helper()
	found := must[[]string](t)(filepath.Glob(filepath.Join(root, "segments", "*"+segmentSuffix)))
	if len(found) != 1 {
		t.Fatalf("segments %v", found)
	}
	return found[0]
}

// Stores written before segments, one file per object, are moved into a segment at start.
func TestFilesOfTheEarlierLayoutMoveIntoASegment(t *testing.T) {
	root, c := t.TempDir(), newClock()
	objects := map[string]string{"a/b.json": "{}", batch(0, 7): "x7", "€ %2F+": "odd"}
	for key, body := range objects {
		path := filepath.Join(root, "b", storePath(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		head := `{"etag": "\"e\"", "modified_ms": 1700000000005}` + "\n"
		if err := os.WriteFile(path, []byte(head+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, ".clock"), []byte("1700000000009"), 0o644); err != nil {
		t.Fatal(err)
	}
	for restart := 0; restart < 2; restart++ {
		s := open(t, root, c)
		for key, body := range objects {
			meta, got, err := s.Get("b", key)
			if err != nil || string(got) != body || meta.ETag != `"e"` || meta.ModifiedMs != 1700000000005 {
				t.Fatalf("restart %d, %q: %v %q %v", restart, key, meta, got, err)
			}
		}
		if got := len(keys(t, s, "")); got != len(objects)+restart {
			t.Fatalf("restart %d: %d keys", restart, got)
		}
		if stamp := put(t, s, fmt.Sprint("new", restart), "x").ModifiedMs; stamp <= 1700000000009 {
			t.Fatalf("stamp %d: the old clock is lost", stamp)
		}
		for _, gone := range []string{"b", ".clock"} {
			if _, err := os.Stat(filepath.Join(root, gone)); !os.IsNotExist(err) {
				t.Fatalf("%s is still there", gone)
			}
		}
	}
}

// Once dead records outweigh the live objects, compaction rewrites the live ones into one new
// segment: every object reads the same, retired ones too, before and after a restart.
func TestCompactionKeepsEveryLiveObjectAndDropsTheRest(t *testing.T) {
	root, c := t.TempDir(), newClock()
	s := open(t, root, c)
	s.disk.compactAbove = 1000
	for offset := 0; offset < 4; offset++ {
		put(t, s, batch(0, offset), fmt.Sprint("b", offset))
	}
	if n := expire(t, s, Retention{MaxBatches: ptr(2)}, expireLimit); n != 2 {
		t.Fatalf("deleted %d", n)
	}
	first := onlySegment(t, root)
	var last Meta
	for i := 0; i < 100; i++ { // ~60 bytes of records each, all but the last dead
		last = put(t, s, "clusters/c/watermark.json", fmt.Sprint(i))
	}
	now := onlySegment(t, root)
	if now == first {
		t.Fatal("no compaction")
	}
	if size := must[os.FileInfo](t)(os.Stat(now)).Size(); size > 2000 {
		t.Fatalf("the compacted segment holds %d bytes", size)
	}
	check := func(s *Store, retiredReadable bool) {
		t.Helper()
		want := []string{batch(0, 2), batch(0, 3), "clusters/c/watermark.json"}
		if got := keys(t, s, ""); !reflect.DeepEqual(got, want) {
			t.Fatalf("keys %v", got)
		}
		if meta, body, err := s.Get("b", "clusters/c/watermark.json"); err != nil || string(body) != "99" || meta.ETag != last.ETag {
			t.Fatalf("%v %q %v", meta, body, err)
		}
		if _, body, _ := s.Get("b", batch(0, 3)); string(body) != "b3" {
			t.Fatalf("%q", body)
		}
		_, body, err := s.Get("b", batch(0, 0))
		if retiredReadable && string(body) != "b0" || !retiredReadable && code(err) != "NoSuchKey" {
			t.Fatalf("retired: %q %v", body, err)
		}
	}
	check(s, true)
	c.now = c.now.Add(RetiredFor)
	expire(t, s, Retention{MaxBatches: ptr(2)}, expireLimit)
	check(s, false)
	check(open(t, root, c), false)
}

// A kill during compaction: before the rename, its temporary file is dropped; after it, the
// older segments are, and the reset record keeps what they held from coming back.
func TestAKillDuringCompactionLosesAndResurrectsNothing(t *testing.T) {
	root, c := t.TempDir(), newClock()
	s := open(t, root, c)
	put(t, s, "gone", "x")
	put(t, s, "kept", "y")
	must[struct{}](t)(struct{}{}, s.DeleteMany("b", []string{"gone"}))
	older := onlySegment(t, root)
	saved := must[[]byte](t)(os.ReadFile(older))
	compaction := must[*compaction](t)(s.disk.compact(s.lastMs))
	meta := s.buckets["b"].meta["kept"]
	must[location](t)(compaction.add(putRecord, "b", "kept", meta.ETag, meta.ModifiedMs, []byte("y")))
	cutShort := compaction.file.Name()
	if got := keys(t, open(t, root, c), ""); !reflect.DeepEqual(got, []string{"kept"}) {
		t.Fatalf("keys %v", got)
	}
	if _, err := os.Stat(cutShort); !os.IsNotExist(err) {
		t.Fatal("the cut-short compaction is still there")
	}
	s = open(t, root, c)
	s.disk.compactAbove = 0
	if err := s.compactIfDue(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(older, saved, 0o644); err != nil { // as if the kill came before its removal
		t.Fatal(err)
	}
	again := open(t, root, c)
	if got := keys(t, again, ""); !reflect.DeepEqual(got, []string{"kept"}) {
		t.Fatalf("keys %v", got)
	}
	if _, err := os.Stat(older); !os.IsNotExist(err) {
		t.Fatal("the older segment is still there")
	}
}

func TestLastModifiedKeepsIncreasingAfterARestart(t *testing.T) {
	root, c := t.TempDir(), newClock()
	s := open(t, root, c)
	put(t, s, "old", "x")
	newest := put(t, s, "new", "x").ModifiedMs
	must[struct{}](t)(struct{}{}, s.DeleteMany("b", []string{"new"})) // the newest stamp is on no object
	c.now = c.now.Add(-time.Minute)
	if stamp := put(t, open(t, root, c), "next", "x").ModifiedMs; stamp != newest+1 {
		t.Fatalf("%d, want %d", stamp, newest+1)
	}
}

func TestDeleteManyRemovesObjectsForGood(t *testing.T) {
	root, c := t.TempDir(), newClock()
	s := open(t, root, c)
	put(t, s, "x/y/z", "x")
	put(t, s, "x/keep", "x")
	must[struct{}](t)(struct{}{}, s.DeleteMany("b", []string{"x/y/z", "never/existed"}))
	for _, store := range []*Store{s, open(t, root, c)} {
		if got := keys(t, store, ""); !reflect.DeepEqual(got, []string{"x/keep"}) {
			t.Fatalf("keys %v", got)
		}
	}
}

func TestDeleteManyWritesOneTombstoneForEachKeyItRemoves(t *testing.T) {
	root, c := t.TempDir(), newClock()
	s := open(t, root, c)
	var gone, kept []string
	for i := 0; i < 200; i++ {
		key := fmt.Sprintf("k/%03d", i)
		put(t, s, key, "x")
		if i%3 == 0 {
			kept = append(kept, key)
		} else {
			gone = append(gone, key)
		}
	}
	before := s.disk.size
	asked := append(append([]string{"never/existed"}, gone...), gone[:5]...) // and repeats
	must[struct{}](t)(struct{}{}, s.DeleteMany("b", asked))
	tombstones := s.disk.size - before
	one := int64(len(must[[]byte](t)(encodeRecord(deleteRecord, "b", gone[0], "", 0, nil))))
	if tombstones != int64(len(gone))*one {
		t.Fatalf("%d bytes of tombstones, want %d for %d keys", tombstones, int64(len(gone))*one, len(gone))
	}
	for _, store := range []*Store{s, open(t, root, c)} {
		if got := keys(t, store, ""); !reflect.DeepEqual(got, kept) {
			t.Fatalf("keys %v, want %v", got, kept)
		}
	}
}

// Retention

func expire(t *testing.T, s *Store, keep Retention, limit int) int {
	t.Helper()
	return must[int](t)(s.Expire(keep, limit))
}

func TestRetentionKeepsTheNewestBatches(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	for offset := 0; offset < 10; offset++ {
		put(t, s, batch(0, offset), "x")
	}
	put(t, s, batch(1, 0), "x")
	others := []string{"clusters/c/meta.json", "clusters/c/topics/t/partitions/0000000000/watermark.json"}
	for _, key := range others {
		put(t, s, key, "{}")
	}
	if n := expire(t, s, Retention{MaxBatches: ptr(4)}, expireLimit); n != 6 {
		t.Fatalf("deleted %d, want 6", n)
	}
	want := append([]string{batch(0, 6), batch(0, 7), batch(0, 8), batch(0, 9), batch(1, 0)}, others...)
	sort.Strings(want)
	if got := keys(t, s, ""); !reflect.DeepEqual(got, want) {
		t.Fatalf("keys %v", got)
	}
	if n := expire(t, s, Retention{MaxBatches: ptr(4)}, expireLimit); n != 0 {
		t.Fatalf("deleted %d more", n)
	}
}

// tansu lists a partition's batches, then reads them: retention in between must not fail the
// read (it failed the whole fetch, and kcat with it).
func TestAnExpiredBatchStaysReadableForAWhileAfterItLeftTheListing(t *testing.T) {
	root, c := t.TempDir(), newClock()
	s := open(t, root, c)
	for offset := 0; offset < 3; offset++ {
		put(t, s, batch(0, offset), fmt.Sprintf("x%d", offset))
	}
	if n := expire(t, s, Retention{MaxBatches: ptr(1)}, expireLimit); n != 2 {
		t.Fatalf("deleted %d", n)
	}
	if got := keys(t, s, ""); !reflect.DeepEqual(got, []string{batch(0, 2)}) {
		t.Fatalf("keys %v", got)
	}
	if _, body, err := s.Get("b", batch(0, 0)); err != nil || string(body) != "x0" { // listed before, read now
		t.Fatalf("%q %v", body, err)
	}
	c.now = c.now.Add(RetiredFor)
	expire(t, s, Retention{MaxBatches: ptr(1)}, expireLimit)
	if _, _, err := s.Get("b", batch(0, 0)); code(err) != "NoSuchKey" {
		t.Fatal(err)
	}
	if _, _, err := open(t, root, c).Get("b", batch(0, 0)); code(err) != "NoSuchKey" {
		t.Fatal("the retired batch came back after a restart")
	}
	if _, body, _ := s.Get("b", batch(0, 2)); string(body) != "x2" {
		t.Fatalf("%q", body)
	}
}

func TestRetentionByAgeNeverDeletesAPartitionsLastBatch(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	for offset := 0; offset < 5; offset++ {
		put(t, s, batch(0, offset), "x")
		c.now = c.now.Add(10 * time.Second)
	}
	put(t, s, records(0)+"notes.txt", "not a batch")
	keep := Retention{Age: ptr(25 * time.Second)}
	if n := expire(t, s, keep, expireLimit); n != 3 { // written 50, 40 and 30 s ago
		t.Fatalf("deleted %d", n)
	}
	c.now = c.now.Add(time.Hour)
	if n := expire(t, s, keep, expireLimit); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	if got := keys(t, s, records(0)); !reflect.DeepEqual(got, []string{batch(0, 4), records(0) + "notes.txt"}) {
		t.Fatalf("keys %v", got)
	}
}

func TestRetentionDeletesAtMostLimitPerPass(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	for partition := 0; partition < 3; partition++ {
		for offset := 0; offset < 5; offset++ {
			put(t, s, batch(partition, offset), "x")
		}
	}
	for _, want := range []int{5, 5, 2} {
		if n := expire(t, s, Retention{MaxBatches: ptr(1)}, 5); n != want {
			t.Fatalf("deleted %d, want %d", n, want)
		}
	}
	if got := keys(t, s, ""); len(got) != 3 {
		t.Fatalf("keys %v", got)
	}
}

// commit writes what tansu writes for a consumer group's OffsetCommit.
func commit(t *testing.T, s *Store, group string, partition, offset int) {
	commitWith(t, s, group, partition, offset, "")
}

// commitWith is a commit with metadata, as librdkafka sends it (with a closing NUL).
func commitWith(t *testing.T, s *Store, group string, partition, offset int, metadata string) {
	key := fmt.Sprintf("clusters/c/groups/consumers/%s/offsets/t/partitions/%010d.json", group, partition)
	if metadata != "" {
		metadata += `\u0000`
	}
	put(t, s, key, fmt.Sprintf(`{"offset":%d,"leader_epoch":-1,"timestamp":null,"metadata":"%s"}`, offset, metadata))
}

func TestRetentionKeepsWhatAConsumerGroupHasNotRead(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	for offset := 0; offset < 20; offset += 2 { // ten batches of two records: 0-1, 2-3, ..., 18-19
		put(t, s, batch(0, offset), "x")
		put(t, s, batch(1, offset), "x")
	}
	keep := Retention{MaxBatches: ptr(100), KeepRead: ptr(2)}
	if n := expire(t, s, keep, expireLimit); n != 0 { // no group reads them: kept
		t.Fatalf("deleted %d", n)
	}
	commit(t, s, "slow", 0, 7) // next to read: 7, inside the batch at 6
	commit(t, s, "fast", 0, 20)
	if n := expire(t, s, keep, expireLimit); n != 3 { // 0, 2 and 4 (the batch at 6 stays)
		t.Fatalf("deleted %d", n)
	}
	if first := keys(t, s, records(0))[0]; first != batch(0, 6) {
		t.Fatalf("first %s", first)
	}
	commit(t, s, "slow", 0, 20)
	if n := expire(t, s, keep, expireLimit); n != 5 { // the newest two stay
		t.Fatalf("deleted %d", n)
	}
	if got := keys(t, s, records(1)); len(got) != 10 { // partition 1 unread
		t.Fatalf("partition 1 keeps %d", len(got))
	}
}

func TestListingsShowWhatGroupsHaveNotReadAndRetentionWhatTheyMayReadAgain(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	for offset := 0; offset < 20; offset += 2 { // ten batches of two records: 0-1, 2-3, ..., 18-19
		put(t, s, batch(0, offset), "x")
	}
	keep := Retention{MaxBatches: ptr(100), KeepRead: ptr(1)}
	commitWith(t, s, "a", 0, 15, "resume=7") // read up to 15 (inside 14-15); a restart reads from 7
	commitWith(t, s, "b", 0, 19, "resume=11")
	if n := expire(t, s, keep, expireLimit); n != 3 { // 0-1, 2-3 and 4-5: 6-7 holds 7
		t.Fatalf("deleted %d", n)
	}
	if got := keys(t, s, records(0)); !reflect.DeepEqual(got, []string{batch(0, 14), batch(0, 16), batch(0, 18)}) {
		t.Fatalf("listed %v", got) // from 14-15, which holds 15, the next "a" reads
	}
	if got := keys(t, s, "clusters/"); len(got) != 9 { // other listings show every batch kept
		t.Fatalf("listed %d", len(got))
	}
	if _, body, err := s.Get("b", batch(0, 8)); err != nil || string(body) != "x" { // still readable
		t.Fatalf("%q %v", body, err)
	}
	commitWith(t, s, "b", 0, 20, "resume=11") // moving on changes nothing before the next pass
	if first := keys(t, s, records(0))[0]; first != batch(0, 14) {
		t.Fatalf("first %s", first)
	}
	commitWith(t, s, "a", 0, 7, "resume=7") // "a" restarted from its snapshot: listed again at once
	if first := keys(t, s, records(0))[0]; first != batch(0, 6) {
		t.Fatalf("first %s", first)
	}
	if n := expire(t, s, keep, expireLimit); n != 0 {
		t.Fatalf("deleted %d", n)
	}
	if first := keys(t, s, records(0))[0]; first != batch(0, 6) {
		t.Fatalf("first %s", first)
	}
	commitWith(t, s, "a", 0, 20, "resume=20")
	commitWith(t, s, "b", 0, 20, "resume=20")
	expire(t, s, keep, expireLimit)
	if got := keys(t, s, records(0)); !reflect.DeepEqual(got, []string{batch(0, 18)}) {
		t.Fatalf("listed %v", got) // all read: the newest KeepRead batches stay listed
	}
}

func TestAReaderFarBehindLosesNothingToTheBatchLimitNorSlowsTheListings(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	for offset := 0; offset < 10; offset++ {
		put(t, s, batch(0, offset), "x")
	}
	listed := 10 * time.Second
	keep := Retention{MaxBatches: ptr(3), KeepRead: ptr(1), Listed: &listed}
	commitWith(t, s, "stopped", 0, 4, "resume=2") // a restart reads from 2
	commit(t, s, "live", 0, 8)
	if n := expire(t, s, keep, expireLimit); n != 2 { // 0 and 1, not the 7 over the limit
		t.Fatalf("deleted %d", n)
	}
	if got := keys(t, s, records(0)); len(got) != 6 || got[0] != batch(0, 4) {
		t.Fatalf("listed %v", got) // from 4, the next "stopped" reads
	}
	c.now = c.now.Add(30 * time.Second) // "stopped" commits no more; "live" goes on
	commit(t, s, "live", 0, 10)
	if n := expire(t, s, keep, expireLimit); n != 0 {
		t.Fatalf("deleted %d", n)
	}
	if got := keys(t, s, records(0)); !reflect.DeepEqual(got, []string{batch(0, 9)}) {
		t.Fatalf("listed %v", got) // as far as "live" reads
	}
	c.now = c.now.Add(30 * time.Second) // nobody commits: listed as a partition nobody reads
	if expire(t, s, keep, expireLimit); !reflect.DeepEqual(keys(t, s, records(0)), []string{batch(0, 9)}) {
		t.Fatalf("listed %v", keys(t, s, records(0)))
	}
	commitWith(t, s, "stopped", 0, 4, "resume=2") // back: its commit lists its batches again
	if got := keys(t, s, records(0)); len(got) != 6 || got[0] != batch(0, 4) {
		t.Fatalf("listed %v", got) // from the one it reads next
	}
	if expire(t, s, keep, expireLimit); keys(t, s, records(0))[0] != batch(0, 4) {
		t.Fatalf("listed %v", keys(t, s, records(0))) // and the next pass follows it
	}
	commitWith(t, s, "stopped", 0, 10, "resume=9") // caught up
	if n := expire(t, s, keep, expireLimit); n != 7 {
		t.Fatalf("deleted %d", n)
	}
}

func TestAPartitionEveryGroupStoppedReadingIsListedAsOneNobodyReads(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	for offset := 0; offset < 10; offset++ {
		put(t, s, batch(0, offset), "x")
	}
	listed := 10 * time.Second
	keep := Retention{KeepRead: ptr(2), Listed: &listed}
	commitWith(t, s, "a", 0, 4, "resume=3")
	commitWith(t, s, "b", 0, 6, "resume=6")
	c.now = c.now.Add(30 * time.Second) // both stopped while batches wait for them
	for offset := 10; offset < 20; offset++ {
		put(t, s, batch(0, offset), "x")
	}
	if n := expire(t, s, keep, expireLimit); n != 3 { // 0-2: "a" may read 3 again
		t.Fatalf("deleted %d", n)
	}
	if got := keys(t, s, records(0)); !reflect.DeepEqual(got, []string{batch(0, 18), batch(0, 19)}) {
		t.Fatalf("listed %v", got) // not from 6, growing with every batch
	}
	commitWith(t, s, "a", 0, 4, "resume=3") // back: it finds a gap and commits again
	if got := keys(t, s, records(0)); len(got) != 16 || got[0] != batch(0, 4) {
		t.Fatalf("listed %v", got)
	}
}

func TestAnIdleReaderStaysListedUntilABatchHasWaitedForItTooLong(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	for offset := 0; offset < 5; offset++ {
		put(t, s, batch(0, offset), "x")
	}
	commit(t, s, "idle", 0, 5) // both at the end of the log, then a minute of quiet
	commit(t, s, "live", 0, 5)
	c.now = c.now.Add(time.Minute)
	for offset := 5; offset < 10; offset++ { // traffic comes back
		put(t, s, batch(0, offset), "x")
	}
	listed := 10 * time.Second
	keep := Retention{KeepRead: ptr(1), Listed: &listed}
	for _, step := range []struct {
		wait  time.Duration
		first string
	}{
		{0, batch(0, 5)},               // "idle" committed a minute ago, but 5 has just come
		{9 * time.Second, batch(0, 5)}, // 5 has waited 9 s for it
		{2 * time.Second, batch(0, 9)}, // 11 s: it no longer keeps up; as far as "live" reads
	} {
		c.now = c.now.Add(step.wait)
		commit(t, s, "live", 0, 10)
		expire(t, s, keep, expireLimit)
		if got := keys(t, s, records(0)); got[0] != step.first {
			t.Fatalf("after %v more, listed %v", step.wait, got)
		}
	}
}

func TestResumeOffset(t *testing.T) {
	for _, c := range []struct {
		metadata string
		want     int64
	}{{"resume=7", 7}, {"resume=7\x00", 7}, {"", 20}, {"resume=", 20}, {"resume=x", 20}, {"resume=-1", 20}, {"resume=21", 20}, {"other", 20}} {
		if got := resumeOffset(c.metadata, 20); got != c.want {
			t.Errorf("resumeOffset(%q, 20) = %d, want %d", c.metadata, got, c.want)
		}
	}
}

func TestAGroupQuietForLongerThanRetentionHoldsNothingBack(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	commit(t, s, "gone", 0, 0)
	commit(t, s, "live", 0, 0)
	for offset := 0; offset < 5; offset++ {
		put(t, s, batch(0, offset), "x")
	}
	c.now = c.now.Add(30 * time.Second)
	commit(t, s, "live", 0, 5)
	keep := func(age time.Duration) Retention {
		return Retention{Age: &age, MaxBatches: ptr(100), KeepRead: ptr(1)}
	}
	if n := expire(t, s, keep(time.Hour), expireLimit); n != 0 { // "gone" has read nothing
		t.Fatalf("deleted %d", n)
	}
	if n := expire(t, s, keep(20*time.Second), expireLimit); n != 4 { // 30 s old: age alone removes them
		t.Fatalf("deleted %d", n)
	}
	for offset := 5; offset < 10; offset++ {
		put(t, s, batch(0, offset), "x")
	}
	commit(t, s, "live", 0, 10)
	c.now = c.now.Add(15 * time.Second)
	if n := expire(t, s, keep(20*time.Second), expireLimit); n != 5 { // "gone" last committed 45 s ago
		t.Fatalf("deleted %d", n)
	}
}

func TestFullyReadAndBaseOffset(t *testing.T) {
	var batches []Entry
	for _, offset := range []int{0, 5, 9, 12} {
		batches = append(batches, Entry{fmt.Sprintf("r/%020d.batch", offset), Meta{}})
	}
	got := []int{fullyRead(batches, 9, 0), fullyRead(batches, 10, 0), fullyRead(batches, 9, 3)}
	if !reflect.DeepEqual(got, []int{2, 2, 1}) {
		t.Fatalf("fullyRead %v", got)
	}
	if offset := baseOffset(batch(0, 42)); offset != 42 {
		t.Fatalf("baseOffset %d", offset)
	}
	if ETagMatches(`"a"`, `"c"`) || !ETagMatches(`"a", W/"b"`, `"b"`) || !ETagMatches("*", `"c"`) {
		t.Fatal("ETagMatches")
	}
}

// Writers, readers and retention at once (run with `go test -race` to check the locking):
// every write lands, every listed batch can be read (retired ones included), and retention
// leaves each partition its newest batches.
func TestConcurrentWritesReadsAndRetention(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	var wait sync.WaitGroup
	failures := make(chan error, 64)
	for writer := 0; writer < 4; writer++ {
		wait.Add(1)
		go func(partition int) {
			defer wait.Done()
			for offset := 0; offset < 200; offset++ {
				if _, err := s.Put("b", batch(partition, offset), []byte("x"), nil, ptr("*")); err != nil {
					failures <- err
					return
				}
				page, err := s.List("b", records(partition), "", "", MaxKeys)
				if err != nil {
					failures <- err
					return
				}
				for _, entry := range page.Contents {
					if _, _, err := s.Get("b", entry.Key); err != nil {
						failures <- fmt.Errorf("listed, then: %w", err)
						return
					}
				}
			}
		}(writer)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			if _, err := s.Expire(Retention{MaxBatches: ptr(10)}, expireLimit); err != nil {
				failures <- err
				return
			}
		}
	}()
	wait.Wait()
	<-done
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	expire(t, s, Retention{MaxBatches: ptr(10)}, expireLimit)
	for partition := 0; partition < 4; partition++ {
		got := keys(t, s, records(partition))
		if len(got) != 10 || got[9] != batch(partition, 199) {
			t.Errorf("partition %d keeps %d batches, the newest %q", partition, len(got), got[len(got)-1])
		}
	}
}
