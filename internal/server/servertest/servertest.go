// Package servertest starts a real server for tests of other packages:
// server.Open over a listener on 127.0.0.1, served by the http.Server that
// logline serve builds, and stopped when the test ends.
package servertest

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/loglineos/loglineos/internal/server"
)

// A Server is a running server and its base URL.
type Server struct {
	*server.Server
	URL  string
	stop func()
}

// Start opens a server with cfg and serves it; it fails tb on error.
func Start(tb testing.TB, cfg server.Config) *Server {
	tb.Helper()
	s, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		tb.Fatal(err)
	}
	srv := cfg.HTTPServer(s.Handler(), nil)
	go srv.Serve(ln)
	var once sync.Once
	ts := &Server{Server: s, URL: "http://" + ln.Addr().String()}
	ts.stop = func() {
		once.Do(func() {
			s.BeginShutdown()
			srv.Close()
			if err := s.Close(); err != nil {
				tb.Error(err)
			}
		})
	}
	tb.Cleanup(ts.stop)
	return ts
}

// Stop stops the server (once; the cleanup does it otherwise).
func (s *Server) Stop() { s.stop() }
