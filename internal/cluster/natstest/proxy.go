package natstest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"sync"
)

// Proxy forwards route connections from a loopback port to a node's
// cluster port. It reads the CONNECT line the connecting server sends
// first, to learn who it is (its server id), and can cut connections: Cut
// closes every open connection and refuses new ones (accepted and closed
// at once) until Heal; CutFrom does the same for the connections of one
// connecting server only.
type Proxy struct {
	l      net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	cutFrom map[string]bool       // server ids refused
	conns   map[net.Conn]string   // open connections, by the connecting server's id ("" before its CONNECT)
	pairs   map[net.Conn]net.Conn // each accepted connection's outgoing one
	done    bool
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{l: l, target: target, cutFrom: map[string]bool{}, conns: map[net.Conn]string{}, pairs: map[net.Conn]net.Conn{}}
	go p.serve()
	return p, nil
}

// Addr returns the address the proxy listens on.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

func (p *Proxy) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut || p.done {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.mu.Unlock()
		go p.forward(in)
	}
}

func (p *Proxy) forward(in net.Conn) {
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		in.Close()
		return
	}
	if !p.track(in, out, "") {
		return
	}
	// The connecting server's first line is CONNECT {"name":"<server id>",...}.
	r := bufio.NewReaderSize(in, 64<<10)
	line, err := r.ReadSlice('\n')
	if err != nil {
		p.untrack(in, out)
		return
	}
	if !p.track(in, out, serverID(line)) {
		return
	}
	if _, err := out.Write(line); err != nil {
		p.untrack(in, out)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst net.Conn, src io.Reader, srcConn net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		srcConn.Close()
	}
	go pipe(out, r, in)
	go pipe(in, out, out)
	wg.Wait()
	p.untrack(in, out)
}

// serverID returns the "name" of a CONNECT line, "" if it is not one.
func serverID(line []byte) string {
	rest, ok := bytes.CutPrefix(line, []byte("CONNECT "))
	if !ok {
		return ""
	}
	var c struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(bytes.TrimSpace(rest), &c)
	return c.Name
}

// track records a connection pair of the server id (or refuses it, closing
// both, when the proxy or that server is cut off).
func (p *Proxy) track(in, out net.Conn, id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.done || p.cutFrom[id] {
		in.Close()
		out.Close()
		delete(p.conns, in)
		delete(p.pairs, in)
		return false
	}
	p.conns[in], p.pairs[in] = id, out
	return true
}

func (p *Proxy) untrack(in, out net.Conn) {
	in.Close()
	out.Close()
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.pairs, in)
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for in, out := range p.pairs {
		in.Close()
		out.Close()
	}
}

// CutFrom closes the connections of the server with id and refuses its
// new ones until Heal.
func (p *Proxy) CutFrom(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutFrom[id] = true
	for in, cid := range p.conns {
		if cid == id {
			in.Close()
			p.pairs[in].Close()
		}
	}
}

// Heal lets connections through again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	clear(p.cutFrom)
	p.mu.Unlock()
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.done = true
	for in, out := range p.pairs {
		in.Close()
		out.Close()
	}
	p.mu.Unlock()
	p.l.Close()
}
