package main

import (
	"log"
	"net/http"
	"net/http/pprof"
)

// servePprof serves the profiles on their own listener, so that profiling
// a run never shares the benchmark's routes.
func servePprof(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Printf("peerserver: pprof on %s: %v", addr, http.ListenAndServe(addr, mux))
}
