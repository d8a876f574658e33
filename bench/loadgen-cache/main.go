// Command loadgen-cache drives the cache service's gRPC API for `make bench SCENARIO=cache`:
// a fixed number of concurrent callers issue Get (or 16-key BatchGet) calls over one
// connection for a fixed time, and it prints one JSON line of what was done.
//
// It is written here rather than taken from ghz because ghz records and reports every call,
// which costs CPU that this 2-core bench machine takes from the server it measures; this
// one only counts.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type report struct {
	Mode      string  `json:"mode"`
	Callers   int     `json:"callers"`
	Calls     int64   `json:"calls"`
	Keys      int64   `json:"keys"`
	Hits      int64   `json:"hits"`
	Errors    int64   `json:"errors"`
	Seconds   float64 `json:"seconds"`
	CallsPerS float64 `json:"calls_per_s"`
	KeysPerS  float64 `json:"keys_per_s"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50052", "cache gRPC address")
	mode := flag.String("mode", "get", "get | batch-get")
	callers := flag.Int("callers", 50, "concurrent callers")
	keys := flag.Int("keys", 1000, "distinct keys, loaded before the run")
	valueSize := flag.Int("value-size", 100, "bytes per value")
	batch := flag.Int("batch", 16, "keys per BatchGet")
	duration := flag.Duration("duration", 5*time.Second, "how long to run")
	conns := flag.Int("conns", 1, "gRPC connections the callers share")
	flag.Parse()

	clients := make([]pb.CacheServiceClient, *conns)
	for i := range clients {
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatalf("connect %s: %v", *addr, err)
		}
		defer conn.Close()
		clients[i] = pb.NewCacheServiceClient(conn)
	}
	names := load(clients[0], *keys, *valueSize)

	var calls, found, errors atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *callers; i++ {
		wg.Add(1)
		go func(client pb.CacheServiceClient, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			request := &pb.BatchGetRequest{Namespace: "bench", Keys: make([]string, *batch)}
			for ctx.Err() == nil {
				var hits int
				var err error
				if *mode == "get" {
					var got *pb.GetResponse
					got, err = client.Get(ctx, &pb.GetRequest{Namespace: "bench", Key: names[rng.IntN(len(names))]})
					if err == nil && got.Found {
						hits = 1
					}
				} else {
					for k := range request.Keys {
						request.Keys[k] = names[rng.IntN(len(names))]
					}
					var got *pb.BatchGetResponse
					got, err = client.BatchGet(ctx, request)
					if err == nil {
						for _, e := range got.Entries {
							if e.Found {
								hits++
							}
						}
					}
				}
				if err != nil {
					if ctx.Err() == nil {
						errors.Add(1)
					}
					continue
				}
				calls.Add(1)
				found.Add(int64(hits))
			}
		}(clients[i%len(clients)], uint64(i))
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	perCall := int64(1)
	if *mode != "get" {
		perCall = int64(*batch)
	}
	r := report{
		Mode: *mode, Callers: *callers, Calls: calls.Load(), Keys: calls.Load() * perCall,
		Hits: found.Load(), Errors: errors.Load(), Seconds: elapsed,
	}
	r.CallsPerS = float64(r.Calls) / elapsed
	r.KeysPerS = float64(r.Keys) / elapsed
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		log.Fatal(err)
	}
	if r.Hits != r.Keys {
		log.Fatalf("%d of %d keys missed: the cache lost loaded keys", r.Keys-r.Hits, r.Keys)
	}
}

// load stores `keys` values of `size` bytes in namespace "bench" and returns their names.
func load(client pb.CacheServiceClient, keys, size int) []string {
	names := make([]string, keys)
	entries := make([]*pb.CacheEntry, keys)
	value := make([]byte, size)
	for i := range names {
		names[i] = fmt.Sprintf("key:%06d", i)
		entries[i] = &pb.CacheEntry{Key: names[i], Value: value}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.BatchSet(ctx, &pb.BatchSetRequest{Namespace: "bench", Entries: entries}); err != nil {
		log.Fatalf("load %d keys: %v", keys, err)
	}
	return names
}
