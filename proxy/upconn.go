package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The header timeout and fasthttp's client.
//
// fasthttp's HostClient.DoTimeout is the one way to bound a request that
// fasthttp offers: it bounds the wait for a pooled connection and the
// request write, and sets a read deadline on the connection before reading
// the response headers. It never clears that deadline, so with
// StreamResponseBody the same deadline would cut a long stream's body. The
// proxy therefore dials its upstream connections itself, keeps the open
// ones in a connTable keyed by their addresses, and, once DoTimeout has
// returned the headers of a response with a body, finds the connection by
// the response's LocalAddr/RemoteAddr and clears the read deadline before
// the first body read (same goroutine, so no body read can see it). From
// then on only the idle watchdog bounds the body. A response without a
// body stream has already given its connection back to the pool; fasthttp
// itself resets the deadline on the connection's next use.

// connKey names an open TCP connection: its local and remote addresses.
// The local port alone is not unique when the upstream's name resolves to
// several addresses.
type connKey struct{ local, remote netip.AddrPort }

// keyOf returns the key of a connection with these addresses; ok is false
// for addresses that are not TCP.
func keyOf(local, remote net.Addr) (k connKey, ok bool) {
	l, ok1 := local.(*net.TCPAddr)
	r, ok2 := remote.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return connKey{}, false
	}
	return connKey{l.AddrPort(), r.AddrPort()}, true
}

// connTable holds the open upstream connections.
type connTable struct {
	mu sync.Mutex
	m  map[connKey]*upConn
}

// upConn is an upstream connection in a connTable; closing it removes it.
type upConn struct {
	net.Conn
	tab  *connTable
	key  connKey
	keep bool // registered in tab
	once sync.Once
}

// Close closes the connection and forgets it. fasthttp may close a
// connection twice (an interrupted body read, then the release).
func (c *upConn) Close() error {
	c.once.Do(func() {
		if c.keep {
			c.tab.mu.Lock()
			if c.tab.m[c.key] == c {
				delete(c.tab.m, c.key)
			}
			c.tab.mu.Unlock()
		}
	})
	return c.Conn.Close()
}

// add wraps a freshly dialed connection and registers it.
func (t *connTable) add(nc net.Conn) *upConn {
	c := &upConn{Conn: nc, tab: t}
	c.key, c.keep = keyOf(nc.LocalAddr(), nc.RemoteAddr())
	if c.keep {
		t.mu.Lock()
		if t.m == nil {
			t.m = make(map[connKey]*upConn)
		}
		t.m[c.key] = c
		t.mu.Unlock()
	}
	return c
}

// len returns the number of open connections.
func (t *connTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// clearReadDeadline removes the read deadline of the open connection with
// these addresses; false when there is none.
func (t *connTable) clearReadDeadline(local, remote net.Addr) bool {
	k, ok := keyOf(local, remote)
	if !ok {
		return false
	}
	t.mu.Lock()
	c := t.m[k]
	t.mu.Unlock()
	if c == nil {
		return false
	}
	return c.Conn.SetReadDeadline(time.Time{}) == nil
}

// dial connects to the upstream for fasthttp. timeout is what is left of
// the request's header timeout (0 without one); the connect itself is
// bounded by fasthttp's DefaultDialTimeout as it was before the header
// timeout existed, so a long header timeout does not make a dead host's
// connect wait longer.
func (p *Proxy) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > fasthttp.DefaultDialTimeout {
		timeout = fasthttp.DefaultDialTimeout
	}
	nc, err := fasthttp.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return p.conns.add(nc), nil
}
