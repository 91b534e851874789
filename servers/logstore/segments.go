// The log store's objects on disk: records appended to segment files.
//
// Each write appends one record to the newest segment: a PUT the whole object (bucket, key,
// ETag, LastModified, body), a DELETE a tombstone that carries the store's clock. One file per
// object (before) cost ext4 an inode per batch tansu wrote: in the whole stack at 200
// requests/s, ~700 us of CPU in openat per PUT, two thirds of the store's CPU (pprof); an
// append is one write(2).
//
// At start the segments are replayed in order and the last record of a key wins. A record cut
// short by a kill fails its length or checksum and ends its segment: the file is cut there.
// Compaction writes every live object into a new segment, a temporary file renamed into place,
// whose first record is a reset that tells a replay to forget everything before it, and then
// deletes the older segments: a kill at any step loses nothing and brings nothing back.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	segmentSuffix = ".seg"
	// compactAbove is how many bytes of dead records the segments may hold, beyond as many as
	// the live objects take, before compaction rewrites the live ones.
	compactAbove = 64 << 20
	// recordPrefix is a record's payload length (uint32) and the payload's CRC-32C (uint32).
	recordPrefix = 8
	// payloadFixed is the kind (1 byte), LastModified (int64 ms) and the lengths (uint16) of
	// the bucket, the key and the ETag; they follow, then the body.
	payloadFixed = 1 + 8 + 2 + 2 + 2
)

type recordKind byte

const (
	putRecord    recordKind = 1
	deleteRecord recordKind = 2
	resetRecord  recordKind = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// location is where an object's record lies in the segments.
type location struct {
	segment int64
	body    int64 // offset of the body in the segment file
	size    int64 // of the body
	record  int64 // of the whole record: what the object's bytes count towards `live`
}

// record is one replayed record; `at` is where a PUT's body lies.
type record struct {
	kind              recordKind
	bucket, key, etag string
	modifiedMs        int64
	at                location
}

func encodeRecord(kind recordKind, bucket, key, etag string, modifiedMs int64, body []byte) ([]byte, error) {
	if len(bucket) > 0xffff || len(key) > 0xffff || len(etag) > 0xffff {
		return nil, errors.New("a bucket, key or ETag longer than 65,535 bytes")
	}
	payload := payloadFixed + len(bucket) + len(key) + len(etag) + len(body)
	data := make([]byte, recordPrefix+payload)
	p := data[recordPrefix:]
	p[0] = byte(kind)
	binary.LittleEndian.PutUint64(p[1:], uint64(modifiedMs))
	binary.LittleEndian.PutUint16(p[9:], uint16(len(bucket)))
	binary.LittleEndian.PutUint16(p[11:], uint16(len(key)))
	binary.LittleEndian.PutUint16(p[13:], uint16(len(etag)))
	copy(p[payloadFixed:], bucket+key+etag)
	copy(p[payloadFixed+len(bucket)+len(key)+len(etag):], body)
	binary.LittleEndian.PutUint32(data, uint32(payload))
	binary.LittleEndian.PutUint32(data[4:], crc32.Checksum(p, castagnoli))
	return data, nil
}

// decodeRecord reads the record at the start of data, or says it is cut short or damaged.
func decodeRecord(data []byte) (record, int, bool) {
	if len(data) < recordPrefix+payloadFixed {
		return record{}, 0, false
	}
	payload := int(binary.LittleEndian.Uint32(data))
	if payload < payloadFixed || len(data) < recordPrefix+payload {
		return record{}, 0, false
	}
	p := data[recordPrefix : recordPrefix+payload]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(data[4:]) {
		return record{}, 0, false
	}
	lengths := [3]int{
		int(binary.LittleEndian.Uint16(p[9:])),
		int(binary.LittleEndian.Uint16(p[11:])),
		int(binary.LittleEndian.Uint16(p[13:])),
	}
	texts := payloadFixed + lengths[0] + lengths[1] + lengths[2]
	if texts > payload {
		return record{}, 0, false
	}
	r := record{kind: recordKind(p[0]), modifiedMs: int64(binary.LittleEndian.Uint64(p[1:]))}
	at := payloadFixed
	r.bucket, at = string(p[at:at+lengths[0]]), at+lengths[0]
	r.key, at = string(p[at:at+lengths[1]]), at+lengths[1]
	r.etag = string(p[at : at+lengths[2]])
	r.at = location{body: int64(recordPrefix + texts), size: int64(payload - texts), record: int64(recordPrefix + payload)}
	return r, recordPrefix + payload, true
}

// segmentLog appends records to the newest segment and reads bodies back by location.
// Not safe for concurrent use: the Store's lock guards it.
type segmentLog struct {
	dir   string
	fsync bool
	files map[int64]*os.File
	// active is the segment appended to, size its length.
	active, size int64
	// total is the bytes of every record in the segments, live those of the objects that are
	// still readable (listed or retired): total - live is what compaction would free.
	total, live int64
	// compactAbove is the constant but in tests, which lower it.
	compactAbove int64
}

func segmentName(id int64) string { return fmt.Sprintf("%020d%s", id, segmentSuffix) }

// openSegmentLog replays the segments in dir through apply, oldest record first, and leaves
// the newest open for appending. Segments before the last reset record are deleted.
func openSegmentLog(dir string, fsync bool, apply func(record)) (*segmentLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	g := &segmentLog{dir: dir, fsync: fsync, files: map[int64]*os.File{}, compactAbove: compactAbove}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, entry := range names {
		name := entry.Name()
		if strings.HasSuffix(name, tempSuffix) { // a compaction cut short by a kill
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
		} else if id, err := strconv.ParseInt(strings.TrimSuffix(name, segmentSuffix), 10, 64); err == nil && strings.HasSuffix(name, segmentSuffix) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	lastReset := int64(-1)
	for _, id := range ids {
		reset, err := g.replay(id, apply)
		if err != nil {
			g.close()
			return nil, err
		}
		if reset {
			lastReset = id
		}
	}
	for _, id := range ids {
		if id < lastReset { // a compaction's leftovers: its kill came before it deleted them
			g.remove(id)
		}
	}
	if len(g.files) == 0 {
		if err := g.create(1); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// replay applies one segment's records and cuts off a damaged or short tail; reset tells
// whether the segment holds a reset record.
func (g *segmentLog) replay(id int64, apply func(record)) (reset bool, err error) {
	path := filepath.Join(g.dir, segmentName(id))
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return false, err
	}
	// Streamed a record at a time: a segment can be larger than what the store holds live.
	reader := bufio.NewReaderSize(file, 1<<20)
	var buffer []byte
	end := int64(0)
	for end < info.Size() {
		r, n, ok := readRecord(reader, info.Size()-end, &buffer)
		if !ok {
			log.Printf("WARN %s: a damaged or short record at byte %d of %d: cut there", path, end, info.Size())
			if err := file.Truncate(end); err != nil {
				file.Close()
				return false, err
			}
			break
		}
		r.at.segment, r.at.body = id, r.at.body+end
		reset = reset || r.kind == resetRecord
		apply(r)
		end += int64(n)
	}
	g.files[id], g.active, g.size = file, id, end
	g.total += end
	return reset, nil
}

// readRecord reads the next record, at most left bytes long, into buffer (grown as needed).
func readRecord(reader *bufio.Reader, left int64, buffer *[]byte) (record, int, bool) {
	prefix, err := reader.Peek(recordPrefix)
	if err != nil {
		return record{}, 0, false
	}
	size := int64(recordPrefix) + int64(binary.LittleEndian.Uint32(prefix))
	if size > left { // cut short, or a damaged length
		return record{}, 0, false
	}
	if int64(cap(*buffer)) < size {
		*buffer = make([]byte, size)
	}
	data := (*buffer)[:size]
	if _, err := io.ReadFull(reader, data); err != nil {
		return record{}, 0, false
	}
	return decodeRecord(data)
}

func (g *segmentLog) create(id int64) error {
	file, err := os.OpenFile(filepath.Join(g.dir, segmentName(id)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	g.files[id], g.active, g.size = file, id, 0
	return nil
}

func (g *segmentLog) remove(id int64) {
	if file, ok := g.files[id]; ok {
		if info, err := file.Stat(); err == nil {
			g.total -= info.Size()
		}
		file.Close()
		delete(g.files, id)
	}
	if err := os.Remove(filepath.Join(g.dir, segmentName(id))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Printf("ERROR removing a compacted segment: %v", err)
	}
}

func (g *segmentLog) close() {
	for _, file := range g.files {
		file.Close()
	}
}

// append writes one record at the end of the active segment; a PUT's record is live.
func (g *segmentLog) append(kind recordKind, bucket, key, etag string, modifiedMs int64, body []byte) (location, error) {
	file := g.files[g.active]
	// At the logical end: a failed write's partial bytes are overwritten by the next one, or
	// cut off at the next start.
	at, err := writeRecord(file, g.active, g.size, kind, bucket, key, etag, modifiedMs, body)
	if err != nil {
		return location{}, err
	}
	if err := g.wrote(at.record); err != nil {
		return location{}, err
	}
	if kind == putRecord {
		g.live += at.record
	}
	return at, nil
}

// appendDeletes writes a delete record for each key at the end of the active segment, in one
// write: a retention pass that deletes a thousand batches costs one system call, not a thousand.
func (g *segmentLog) appendDeletes(bucket string, keys []string, modifiedMs int64) error {
	var data []byte
	for _, key := range keys {
		one, err := encodeRecord(deleteRecord, bucket, key, "", modifiedMs, nil)
		if err != nil {
			return err
		}
		data = append(data, one...)
	}
	if _, err := g.files[g.active].WriteAt(data, g.size); err != nil {
		return err
	}
	return g.wrote(int64(len(data)))
}

// wrote counts n bytes just written at the end of the active segment, synced first in fsync
// mode (a failed sync counts nothing: the next write goes over them).
func (g *segmentLog) wrote(n int64) error {
	if g.fsync {
		if err := g.files[g.active].Sync(); err != nil {
			return err
		}
	}
	g.size += n
	g.total += n
	return nil
}

// writeRecord writes one record at offset of segment id's file.
func writeRecord(file *os.File, id, offset int64, kind recordKind, bucket, key, etag string, modifiedMs int64, body []byte) (location, error) {
	data, err := encodeRecord(kind, bucket, key, etag, modifiedMs, body)
	if err != nil {
		return location{}, err
	}
	if _, err := file.WriteAt(data, offset); err != nil {
		return location{}, err
	}
	size := int64(len(data))
	return location{id, offset + size - int64(len(body)), int64(len(body)), size}, nil
}

// read is the body at `at`.
func (g *segmentLog) read(at location) ([]byte, error) {
	file, ok := g.files[at.segment]
	if !ok {
		return nil, fmt.Errorf("segment %d is gone", at.segment)
	}
	body := make([]byte, at.size)
	_, err := file.ReadAt(body, at.body)
	return body, err
}

// release notes that an object's record is no longer needed: compaction drops it.
func (g *segmentLog) release(at location) { g.live -= at.record }

// due tells whether compaction would free more than the live objects take, and compactAbove.
func (g *segmentLog) due() bool {
	dead := g.total - g.live
	return dead > g.compactAbove && dead > g.live
}

// compaction is a new segment being written with the live objects.
type compaction struct {
	log  *segmentLog
	id   int64
	file *os.File
	size int64
}

// compact starts a compaction: the new segment's reset record carries the clock.
func (g *segmentLog) compact(modifiedMs int64) (*compaction, error) {
	id := g.active + 1
	file, err := os.Create(filepath.Join(g.dir, segmentName(id)+tempSuffix))
	if err != nil {
		return nil, err
	}
	c := &compaction{g, id, file, 0}
	if _, err := c.add(resetRecord, "", "", "", modifiedMs, nil); err != nil {
		c.abandon()
		return nil, err
	}
	return c, nil
}

// add copies one object into the new segment; its new location counts once compaction ends.
func (c *compaction) add(kind recordKind, bucket, key, etag string, modifiedMs int64, body []byte) (location, error) {
	at, err := writeRecord(c.file, c.id, c.size, kind, bucket, key, etag, modifiedMs, body)
	if err == nil {
		c.size += at.record
	}
	return at, err
}

// finish makes the new segment durable and the one appended to, then deletes the older ones.
func (c *compaction) finish(live int64) error {
	final := filepath.Join(c.log.dir, segmentName(c.id))
	if err := c.file.Sync(); err != nil {
		c.abandon()
		return err
	}
	if err := os.Rename(c.file.Name(), final); err != nil {
		c.abandon()
		return err
	}
	g := c.log
	if g.fsync { // the rename too
		if folder, err := os.Open(g.dir); err == nil {
			folder.Sync()
			folder.Close()
		}
	}
	older := make([]int64, 0, len(g.files))
	for id := range g.files {
		older = append(older, id)
	}
	g.files[c.id], g.active, g.size = c.file, c.id, c.size
	for _, id := range older {
		g.remove(id)
	}
	g.total, g.live = c.size, live
	return nil
}

func (c *compaction) abandon() {
	c.file.Close()
	os.Remove(c.file.Name())
}
