// Command xds-load is the fan-out benchmark's load client: one process holding N simulated
// sidecars, each an ADS stream (even i: Delta, odd i: SotW) that subscribes the way Envoy does
// (CDS and LDS wildcard, then its agent's RDS route configuration by name) and ACKs every
// response as soon as it arrives. It is written in Go so that 10,000 streams on 10,000 HTTP/2
// connections cost the client little, and the same binary runs against every server compared.
//
// Node i is "<tenant>/agent-<i % agents>/i-<i / agents>". Commands arrive as JSON lines on stdin,
// events leave as JSON lines on stdout; times are CLOCK_MONOTONIC milliseconds, the clock Node's
// process.hrtime reads, so the orchestrator can subtract its own timestamps from them.
//
//	{"cmd":"connect","target":"127.0.0.1:18000","n":1000,"agents":100,"tenant":"acme","streamsPerConn":1,"timeoutMs":180000}
//	{"cmd":"arm","agents":["agent-7"],"timeoutMs":60000,"quietMs":300}   (agents omitted: all nodes)
//	{"cmd":"close"}
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

func monoMs() float64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return float64(ts.Sec)*1e3 + float64(ts.Nsec)/1e6
}

type command struct {
	Cmd            string   `json:"cmd"`
	Target         string   `json:"target"`
	N              int      `json:"n"`
	Agents         int      `json:"agents"`
	Tenant         string   `json:"tenant"`
	StreamsPerConn int      `json:"streamsPerConn"`
	TimeoutMs      int      `json:"timeoutMs"`
	AgentList      []string `json:"agentList"`
	QuietMs        int      `json:"quietMs"`
	// At most this many nodes connecting (stream opened, not yet synced) at once: sidecars that
	// start over time rather than a thundering herd. 0: all at once.
	Window int `json:"window"`
}

type sim struct {
	id, agent, route string
	delta            bool
	got              int // bit set: 1 CDS, 2 LDS, 4 RDS
	release          func()
	waiting          bool
	ended            bool
}

var (
	outMu sync.Mutex
	out   = json.NewEncoder(os.Stdout)
)

func emit(v map[string]any) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = out.Encode(v)
}

type state struct {
	mu       sync.Mutex
	sims     []*sim
	unsynced int
	synced   chan struct{}
	armed    *armState
	conns    []*grpc.ClientConn
	cancel   context.CancelFunc
}

type armState struct {
	remaining, expected, extra int
	extraTypes                 map[string]int
	firstAt, lastAt            float64
	lastAnyAt                  float64 // the last response of any type to any node while armed
	done                       chan struct{}
}

var typeBit = map[string]int{typeCluster: 1, typeListener: 2, typeRoute: 4}

// onResponse accounts for one response (already ACKed by the caller).
func (s *state) onResponse(x *sim, typeURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.got&7 != 7 {
		x.got |= typeBit[typeURL]
		if x.got&7 == 7 {
			if x.release != nil {
				x.release()
				x.release = nil
			}
			s.unsynced--
			if s.unsynced == 0 {
				close(s.synced)
			}
		}
		return
	}
	a := s.armed
	if a == nil {
		return
	}
	a.lastAnyAt = monoMs()
	if x.waiting && typeURL == typeRoute {
		x.waiting = false
		t := monoMs()
		if a.firstAt == 0 {
			a.firstAt = t
		}
		a.lastAt = t
		a.remaining--
		if a.remaining == 0 {
			close(a.done)
		}
	} else {
		a.extra++
		a.extraTypes[typeURL[strings.LastIndex(typeURL, ".")+1:]]++
	}
}

func (s *state) runSotw(ctx context.Context, conn *grpc.ClientConn, x *sim, node *core.Node) {
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx, grpc.MaxCallRecvMsgSize(64<<20))
	if err != nil {
		s.end(x)
		return
	}
	send := func(r *discovery.DiscoveryRequest) bool { return st.Send(r) == nil }
	if !send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typeCluster}) || !send(&discovery.DiscoveryRequest{TypeUrl: typeListener}) ||
		!send(&discovery.DiscoveryRequest{TypeUrl: typeRoute, ResourceNames: []string{x.route}}) {
		s.end(x)
		return
	}
	for {
		r, err := st.Recv()
		if err != nil {
			s.end(x)
			return
		}
		ack := &discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}
		if r.GetTypeUrl() == typeRoute {
			ack.ResourceNames = []string{x.route}
		}
		if !send(ack) {
			s.end(x)
			return
		}
		s.onResponse(x, r.GetTypeUrl())
	}
}

func (s *state) runDelta(ctx context.Context, conn *grpc.ClientConn, x *sim, node *core.Node) {
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx, grpc.MaxCallRecvMsgSize(64<<20))
	if err != nil {
		s.end(x)
		return
	}
	send := func(r *discovery.DeltaDiscoveryRequest) bool { return st.Send(r) == nil }
	if !send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: typeCluster}) || !send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeListener}) ||
		!send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeRoute, ResourceNamesSubscribe: []string{x.route}}) {
		s.end(x)
		return
	}
	for {
		r, err := st.Recv()
		if err != nil {
			s.end(x)
			return
		}
		if !send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()}) {
			s.end(x)
			return
		}
		s.onResponse(x, r.GetTypeUrl())
	}
}

func (s *state) end(x *sim) {
	s.mu.Lock()
	x.ended = true
	if x.release != nil {
		x.release()
		x.release = nil
	}
	s.mu.Unlock()
}

func (s *state) connect(c command) {
	host, _, err := net.SplitHostPort(c.Target)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		emit(map[string]any{"event": "error", "message": "target must be a loopback address"})
		return
	}
	per := max(1, c.StreamsPerConn)
	nconns := (c.N + per - 1) / per
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.synced = make(chan struct{})
	s.unsynced = c.N
	for i := 0; i < nconns; i++ {
		conn, err := grpc.NewClient(c.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			emit(map[string]any{"event": "error", "message": err.Error()})
			return
		}
		s.conns = append(s.conns, conn)
	}
	for i := 0; i < c.N; i++ {
		agent := fmt.Sprintf("agent-%d", i%c.Agents)
		s.sims = append(s.sims, &sim{
			id:    fmt.Sprintf("%s/%s/i-%d", c.Tenant, agent, i/c.Agents),
			agent: agent, route: fmt.Sprintf("exitgate/%s/%s/egress", c.Tenant, agent), delta: i%2 == 0,
		})
	}
	started := monoMs()
	var window chan struct{}
	if c.Window > 0 {
		window = make(chan struct{}, c.Window)
	}
	deadline := time.After(time.Duration(c.TimeoutMs) * time.Millisecond)
	go s.start(ctx, nconns, window)
	ok := true
	select {
	case <-s.synced:
	case <-deadline:
		ok = false
	}
	s.report(c, nconns, started, ok)
}

func (s *state) start(ctx context.Context, nconns int, window chan struct{}) {
	for i, x := range s.sims {
		if window != nil {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			s.mu.Lock()
			x.release = func() { <-window }
			s.mu.Unlock()
		}
		proto := "sotw"
		if x.delta {
			proto = "delta"
		}
		meta, _ := structpb.NewStruct(map[string]any{"exitgate": map[string]any{"listen": "127.0.0.1:15001", "xds": proto}})
		node := &core.Node{Id: x.id, Metadata: meta}
		conn := s.conns[i%nconns]
		if x.delta {
			go s.runDelta(ctx, conn, x, node)
		} else {
			go s.runSotw(ctx, conn, x, node)
		}
	}
}

func (s *state) report(c command, nconns int, started float64, ok bool) {
	syncedAt := monoMs()
	s.mu.Lock()
	ended := 0
	for _, x := range s.sims {
		if x.ended {
			ended++
		}
	}
	ev := map[string]any{"event": "connected", "nodes": c.N, "connections": nconns, "startedAt": started, "syncedAt": syncedAt, "ended": ended}
	if !ok {
		ev["timeout"] = true
		ev["unsynced"] = s.unsynced
	}
	s.mu.Unlock()
	emit(ev)
}

func (s *state) arm(c command) {
	set := map[string]bool{}
	for _, a := range c.AgentList {
		set[a] = true
	}
	a := &armState{done: make(chan struct{}), extraTypes: map[string]int{}}
	s.mu.Lock()
	for _, x := range s.sims {
		x.waiting = len(c.AgentList) == 0 || set[x.agent]
		if x.waiting {
			a.expected++
		}
	}
	a.remaining = a.expected
	s.armed = a
	s.mu.Unlock()
	emit(map[string]any{"event": "armed"})
	ok := true
	if a.expected > 0 {
		select {
		case <-a.done:
		case <-time.After(time.Duration(c.TimeoutMs) * time.Millisecond):
			ok = false
		}
	}
	// Keep counting for a quiet period: anything arriving now is a push nobody expected.
	time.Sleep(time.Duration(c.QuietMs) * time.Millisecond)
	s.mu.Lock()
	s.armed = nil
	for _, x := range s.sims {
		x.waiting = false
	}
	ev := map[string]any{"event": "done", "expected": a.expected, "firstAt": a.firstAt, "lastAt": a.lastAt, "lastAnyAt": a.lastAnyAt, "extra": a.extra, "extraTypes": a.extraTypes}
	if !ok {
		ev["timeout"] = true
		ev["remaining"] = a.remaining
	}
	s.mu.Unlock()
	emit(ev)
}

func main() {
	s := &state{}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	emit(map[string]any{"event": "ready"})
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			emit(map[string]any{"event": "error", "message": err.Error()})
			continue
		}
		switch c.Cmd {
		case "connect":
			s.connect(c)
		case "arm":
			s.arm(c)
		case "close":
			if s.cancel != nil {
				s.cancel()
			}
			for _, conn := range s.conns {
				_ = conn.Close()
			}
			return
		}
	}
	// stdin closed: the orchestrator is gone; never outlive it.
}
