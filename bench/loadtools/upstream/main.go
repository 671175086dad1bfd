// Command upstream is the data-plane benchmark's origin server: a plain HTTP/1.1 server on a
// loopback address answering every request with a short 200. Written in Go so that the origin
// is not the bottleneck that hides the differences between the proxies in front of it.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.3:80", "address (loopback only)")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("%s: loopback addresses only", *listen)
	}
	body := []byte("{\"upstream\":\"bench-upstream\"}\n")
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("{\"listen\":%q}\n", lis.Addr().String())
	log.Fatal(http.Serve(lis, handler))
}
