// Command connectbench measures CONNECT tunnel set-up: C workers each open a TCP connection to
// the proxy, send "CONNECT target", wait for the 200, and close; for a duration. It prints one
// JSON line: tunnels per second and set-up latency percentiles. With -direct it dials the target
// itself (the no-proxy baseline: one TCP connection set-up). Loopback addresses only.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func main() {
	proxy := flag.String("proxy", "", "proxy host:port (empty with -direct)")
	target := flag.String("target", "", "CONNECT authority host:port")
	direct := flag.String("direct", "", "dial this address instead of tunnelling (baseline)")
	conc := flag.Int("c", 16, "concurrent workers")
	dur := flag.Duration("d", 5*time.Second, "duration")
	maxN := flag.Int("n", 2_000_000, "stop after this many tunnels")
	flag.Parse()
	if *direct != "" {
		if !loopback(*direct) {
			log.Fatal("-direct: loopback only")
		}
	} else if !loopback(*proxy) || *target == "" {
		log.Fatal("-proxy (loopback) and -target are required")
	}
	deadline := time.Now().Add(*dur)
	var mu sync.Mutex
	var lat []time.Duration
	errs := map[string]int{}
	var wg sync.WaitGroup
	var count int
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			localErr := map[string]int{}
			for time.Now().Before(deadline) {
				mu.Lock()
				if count >= *maxN {
					mu.Unlock()
					break
				}
				count++
				mu.Unlock()
				t0 := time.Now()
				if err := once(*proxy, *target, *direct); err != nil {
					localErr[err.Error()]++
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			for k, v := range localErr {
				errs[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	nerr := 0
	for _, v := range errs {
		nerr += v
	}
	out := map[string]any{
		"ok": len(lat), "errors": nerr, "errorKinds": errs, "seconds": elapsed.Seconds(),
		"rate": float64(len(lat)) / elapsed.Seconds(), "p50": pct(0.50), "p99": pct(0.99), "max": pct(1),
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func once(proxy, target, direct string) error {
	if direct != "" {
		c, err := net.DialTimeout("tcp", direct, 5*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		return err
	}
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}
