// Command driftline-logstore is the broker's log store: a small S3-compatible server made for
// tansu's `s3://` storage.
//
// tansu keeps its log as one object per batch and relies on conditional PUTs (`If-None-Match:
// *`, `If-Match`) for every offset it hands out, and every fetch of a consumer lists the
// partition's `records/` prefix and reads the batches it wants, one request each. This server
// appends each object to a segment file on local disk (it survives `kill -9`), checks and writes
// conditional PUTs as one step, lists from a sorted in-memory index, and deletes each
// partition's oldest batches itself (retention by age and count and, with `--keep-read`, every
// batch no consumer group reading the partition may read again). With `--keep-read`, a
// partition's listings start where the slowest group reads next, so they stay as short as the
// slowest reader allows (Store.Expire). It replaced a Python server of the same design
// (servers/logstore/__init__.py tells why the log store exists, with the measurements).
//
//	driftline-logstore --root DIR --port N --bucket tansu [--max-batches K] ...
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const (
	// retentionEvery is the time between retention passes while anything is written. A pass
	// that deletes nothing costs two binary searches per partition.
	retentionEvery = 500 * time.Millisecond
	// retentionIdleEvery is the time between passes while nothing is written: only age can
	// then expire a batch (nothing new to cap, no commit that moved).
	retentionIdleEvery = 30 * time.Second
	// expireLimit is the most batches one pass deletes, so a pass never holds the lock long.
	expireLimit = 5000
)

type bucketList []string

func (b *bucketList) String() string { return strings.Join(*b, ",") }

func (b *bucketList) Set(value string) error {
	*b = append(*b, value)
	return nil
}

type options struct {
	root, host string
	port       int
	buckets    bucketList
	fsync      bool
	retention  Retention
}

func parse(args []string) (options, error) {
	var o options
	flags := flag.NewFlagSet("driftline-logstore", flag.ContinueOnError)
	flags.StringVar(&o.root, "root", "", "folder that holds the objects (required)")
	flags.StringVar(&o.host, "host", "127.0.0.1", "a loopback address: the server checks no signatures")
	flags.IntVar(&o.port, "port", 0, "port to listen on (required)")
	flags.Var(&o.buckets, "bucket", "a bucket to serve; repeat for more (at least one)")
	flags.BoolVar(&o.fsync, "fsync", false, "fsync every write (survives power loss, not only kill -9)")
	age := flags.Float64("retention-seconds", -1, "delete batches older than this (-1: no limit)")
	maxBatches := flags.Int("max-batches", -1, "keep at most this many per partition (-1: no limit)")
	keepRead := flags.Int("keep-read", -1, "in a partition that consumer groups read, keep only "+
		"what one may read again and list only what one has not read, and always the newest "+
		"this many batches (-1: off)")
	listed := flags.Float64("listed-seconds", 10, "with --keep-read, list a partition from where "+
		"the groups that keep up read: that committed within this many seconds, or whose next "+
		"batch is younger (-1: every group)")
	if err := flags.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.root == "" || o.port == 0 || len(o.buckets) == 0:
		return o, errors.New("--root, --port and --bucket are required")
	case o.host != "127.0.0.1" && o.host != "::1" && o.host != "localhost":
		return o, errors.New("--host must be a loopback address: the server checks no signatures")
	}
	if *age >= 0 {
		d := time.Duration(*age * float64(time.Second))
		o.retention.Age = &d
	}
	if *maxBatches >= 0 {
		o.retention.MaxBatches = maxBatches
	}
	if *keepRead >= 0 {
		o.retention.KeepRead = keepRead
	}
	if *listed >= 0 {
		d := time.Duration(*listed * float64(time.Second))
		o.retention.Listed = &d
	}
	return o, nil
}

// retain runs retention passes: twice a second while anything is written, every 30 s while
// nothing is.
func retain(store *Store, keep Retention, metrics *Metrics) {
	seenWrite, passedAt := int64(-1), time.Time{}
	for range time.Tick(retentionEvery) {
		written := store.LastWriteMs()
		if written == seenWrite && time.Since(passedAt) < retentionIdleEvery {
			continue
		}
		seenWrite, passedAt = written, time.Now()
		deleted, err := store.Expire(keep, expireLimit)
		if err != nil { // the next pass tries again; the server keeps serving
			log.Printf("ERROR retention pass failed: %v", err)
		}
		if deleted > 0 {
			metrics.retentionDelete.Add(int64(deleted))
			log.Printf("INFO retention deleted %d batches", deleted)
		}
	}
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("logstore ")
	o, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "driftline-logstore:", err)
		os.Exit(2)
	}
	store, err := OpenStore(o.root, o.buckets, o.fsync, time.Now)
	if err != nil {
		log.Fatalf("ERROR %v", err)
	}
	metrics := newMetrics()
	keep := o.retention
	if keep.Age != nil || keep.MaxBatches != nil || keep.KeepRead != nil {
		go retain(store, keep, metrics)
	}
	address := net.JoinHostPort(o.host, fmt.Sprint(o.port))
	log.Printf("INFO serving %s on http://%s", o.root, address)
	server := &http.Server{Addr: address, Handler: S3{store, metrics}, ReadHeaderTimeout: 30 * time.Second}
	log.Fatal(server.ListenAndServe())
}
