package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Admission of client connections (slowloris and other floods).
//
// Each open client connection holds a descriptor and memory (connCost);
// each exchange being forwarded holds a second descriptor, its upstream
// connection. The listener admits a connection only if
//   - its client address holds fewer than Config.MaxConnsPerClient
//     connections (so one address cannot take every slot: real clients at
//     other addresses are still served while it holds its share);
//   - one more descriptor fits: client connections + upstream connections
//     < the descriptor limit less fdReserve (a connection still sending its
//     headers costs one descriptor, not two: thousands of slow connections
//     leave room for real exchanges);
//   - the memory budget has room for connCost.
// A refused connection is answered 503 once its request has arrived, off
// the accept loop (refuse), never before: a response written before the
// request is one the client did not ask for (Go's client logs
// "Unsolicited response received on idle HTTP channel" and the request
// fails with a reset). A connection that
// does not send its request headers within Config.ClientHeaderTimeout is
// closed by fasthttp (ReadTimeout), whatever it trickles.

// admission counts open client connections.
type admission struct {
	mu        sync.Mutex
	byClient  map[netip.Addr]int
	open      atomic.Int64
	refused   atomic.Int64
	answering atomic.Int64 // refused connections being answered (refuse)
}

// limitListener wraps the proxy's listener with the admission rules.
type limitListener struct {
	net.Listener
	p *Proxy
}

// clientAddr returns the IP of a connection's peer (the zero Addr when it
// is not TCP).
func clientAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	return netip.Addr{}
}

// Accept returns the next admitted connection; refused ones are answered
// and closed here.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if why := l.p.admit(c); why != "" {
			l.p.adm.refused.Add(1)
			l.p.adm.refuse(c, why)
			continue
		}
		return &admittedConn{Conn: c, p: l.p, addr: clientAddr(c)}, nil
	}
}

// admit takes a slot for c, or says why not.
func (p *Proxy) admit(c net.Conn) string {
	a := &p.adm
	addr := clientAddr(c)
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.byClient[addr]; n >= p.cfg.MaxConnsPerClient {
		return fmt.Sprintf("client %s already holds %d connections (--max-conns-per-client)", addr, n)
	}
	if int(a.open.Load())+p.conns.len()+1 > p.fdCap {
		return fmt.Sprintf("no file descriptor left (%d client and %d upstream connections open)", a.open.Load(), p.conns.len())
	}
	if !p.mem.try(connCost) {
		p.mem.refused.Add(1)
		return "memory budget full (--max-memory)"
	}
	if a.byClient == nil {
		a.byClient = make(map[netip.Addr]int)
	}
	a.byClient[addr]++
	a.open.Add(1)
	return ""
}

// Refused connections are answered by at most maxAnswering goroutines at
// once, each waiting at most refuseTimeout for the request; past that a
// refused connection is closed without a byte (which a client reads as a
// reset, as with any full server).
const (
	maxAnswering  = 64
	refuseTimeout = time.Second
)

// refuse answers a refused connection with a 503 on its own goroutine, or
// closes it at once when maxAnswering are being answered.
func (a *admission) refuse(c net.Conn, why string) {
	if a.answering.Add(1) > maxAnswering {
		a.answering.Add(-1)
		c.Close()
		return
	}
	go func() {
		defer a.answering.Add(-1)
		answer503(c, why)
	}()
}

// answer503 reads one request from c (its body too, up to 64 KiB, so that
// closing does not reset the connection under data the client sent),
// answers it with a 503 and Retry-After, and closes c; all within
// refuseTimeout.
func answer503(c net.Conn, why string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(refuseTimeout))
	req, err := http.ReadRequest(bufio.NewReaderSize(c, 4<<10))
	if err != nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(req.Body, 64<<10))
	body := "vbproxy: connection refused: " + why + "\n"
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if tc, ok := c.(*net.TCPConn); ok {
		// Half-close and let the client close, so the 503 is read before
		// the connection goes.
		tc.CloseWrite()
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
}

// admittedConn gives its slot back when closed.
type admittedConn struct {
	net.Conn
	p    *Proxy
	addr netip.Addr
	once sync.Once
}

func (c *admittedConn) Close() error {
	c.once.Do(func() {
		a := &c.p.adm
		a.mu.Lock()
		if a.byClient[c.addr]--; a.byClient[c.addr] <= 0 {
			delete(a.byClient, c.addr)
		}
		a.mu.Unlock()
		a.open.Add(-1)
		c.p.mem.release(connCost)
	})
	return c.Conn.Close()
}

// upstreamRoom reports whether one more upstream connection fits in the
// descriptor limit.
func (p *Proxy) upstreamRoom() bool {
	return int(p.adm.open.Load())+p.conns.len()+1 <= p.fdCap
}
