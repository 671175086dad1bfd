// Command gcp-peer is the benchmark's reference xDS server: envoyproxy/go-control-plane's own
// SnapshotCache and ADS server (SotW and Delta), serving the resources exitgate's translator wrote
// to files. It is the peer `npm run bench` compares exitgate against, with the same load client.
//
// Resources: DIR/<tenant>/<agent>.json = {"clusters": [...], "listeners": [...], "routes": [...]},
// each entry proto3 JSON (as translate() returns it), read with protojson.Unmarshal into
// go-control-plane's Envoy types. The cache is keyed by "<tenant>/<agent>" (a NodeHash over the
// node id "<tenant>/<agent>/<instance>"), so all instances of an agent share one snapshot: the same
// sharing exitgate does. Versions are per type, a hash of the type's JSON, so a route-only change
// pushes only RDS (go-control-plane's best practice, not NewSnapshot's one version for all types).
//
// Control (HTTP on loopback):
//
//	POST /reload            re-read every file, SetSnapshot for each agent
//	POST /reload?key=T/A    re-read one agent's file (repeatable)
//	GET  /stats             {"streams": open streams, "requests": n, "acks": n}
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// agentHash keys the cache by "<tenant>/<agent>".
type agentHash struct{}

func (agentHash) ID(node *core.Node) string {
	if node == nil {
		return ""
	}
	parts := strings.SplitN(node.GetId(), "/", 3)
	if len(parts) < 2 {
		return node.GetId()
	}
	return parts[0] + "/" + parts[1]
}

type fileResources struct {
	Clusters  []json.RawMessage `json:"clusters"`
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: false}

func decodeAll[T proto.Message](raw []json.RawMessage, mk func() T) ([]types.Resource, string, error) {
	out := make([]types.Resource, 0, len(raw))
	h := sha256.New()
	for _, r := range raw {
		m := mk()
		if err := unmarshal.Unmarshal(r, m); err != nil {
			return nil, "", err
		}
		h.Write(r)
		h.Write([]byte{0})
		out = append(out, m)
	}
	return out, hex.EncodeToString(h.Sum(nil))[:16], nil
}

func loadSnapshot(file string) (*cachev3.Snapshot, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var f fileResources
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	snap := &cachev3.Snapshot{}
	set := func(typeURL string, items []types.Resource, version string) {
		snap.Resources[cachev3.GetResponseType(typeURL)] = cachev3.NewResources(version, items)
	}
	cl, v, err := decodeAll(f.Clusters, func() *cluster.Cluster { return &cluster.Cluster{} })
	if err != nil {
		return nil, fmt.Errorf("%s: clusters: %w", file, err)
	}
	set(resourcev3.ClusterType, cl, v)
	ls, v, err := decodeAll(f.Listeners, func() *listener.Listener { return &listener.Listener{} })
	if err != nil {
		return nil, fmt.Errorf("%s: listeners: %w", file, err)
	}
	set(resourcev3.ListenerType, ls, v)
	rs, v, err := decodeAll(f.Routes, func() *route.RouteConfiguration { return &route.RouteConfiguration{} })
	if err != nil {
		return nil, fmt.Errorf("%s: routes: %w", file, err)
	}
	set(resourcev3.RouteType, rs, v)
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return snap, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "xDS gRPC address")
	control := flag.String("control", "127.0.0.1:0", "control HTTP address")
	dir := flag.String("dir", "", "resource directory (<tenant>/<agent>.json)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	for _, a := range []string{*listen, *control} {
		host, _, err := net.SplitHostPort(a)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			log.Fatalf("%s: loopback addresses only", a)
		}
	}
	ctx := context.Background()
	cache := cachev3.NewSnapshotCache(true, agentHash{}, nil)

	var streams, requests, acks atomic.Int64
	callbacks := serverv3.CallbackFuncs{
		StreamOpenFunc:        func(context.Context, int64, string) error { streams.Add(1); return nil },
		StreamClosedFunc:      func(int64, *core.Node) { streams.Add(-1) },
		DeltaStreamOpenFunc:   func(context.Context, int64, string) error { streams.Add(1); return nil },
		DeltaStreamClosedFunc: func(int64, *core.Node) { streams.Add(-1) },
		StreamRequestFunc: func(_ int64, r *discovery.DiscoveryRequest) error {
			requests.Add(1)
			if r.GetResponseNonce() != "" && r.GetErrorDetail() == nil {
				acks.Add(1)
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discovery.DeltaDiscoveryRequest) error {
			requests.Add(1)
			if r.GetResponseNonce() != "" && r.GetErrorDetail() == nil {
				acks.Add(1)
			}
			return nil
		},
	}
	xds := serverv3.NewServer(ctx, cache, callbacks)

	reload := func(keys []string) (int, error) {
		var files []string
		if len(keys) == 0 {
			matches, err := filepath.Glob(filepath.Join(*dir, "*", "*.json"))
			if err != nil {
				return 0, err
			}
			files = matches
		} else {
			for _, k := range keys {
				files = append(files, filepath.Join(*dir, filepath.FromSlash(k)+".json"))
			}
		}
		for _, f := range files {
			snap, err := loadSnapshot(f)
			if err != nil {
				return 0, err
			}
			rel, _ := filepath.Rel(*dir, f)
			key := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
			if err := cache.SetSnapshot(ctx, key, snap); err != nil {
				return 0, err
			}
		}
		return len(files), nil
	}
	if n, err := reload(nil); err != nil {
		log.Fatalf("initial load: %v", err)
	} else {
		log.Printf("loaded %d snapshots", n)
	}

	grpcServer := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(16<<20),
	)
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, xds)
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	ctl, err := net.Listen("tcp", *control)
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		start := time.Now()
		n, err := reload(r.URL.Query()["key"])
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"snapshots": n, "ms": float64(time.Since(start).Microseconds()) / 1000})
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(map[string]any{"streams": streams.Load(), "requests": requests.Load(), "acks": acks.Load(), "heapInuse": ms.HeapInuse, "goroutines": runtime.NumGoroutine()})
	})
	go func() { log.Fatal(http.Serve(ctl, mux)) }()
	// One line the benchmark reads to learn the bound ports.
	fmt.Printf("{\"xds\":%q,\"control\":%q}\n", lis.Addr().String(), ctl.Addr().String())
	log.Fatal(grpcServer.Serve(lis))
}
