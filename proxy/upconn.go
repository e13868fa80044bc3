package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
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

// connectError wraps a failure to connect to the upstream (refused,
// unreachable, timed out), so the handler can tell it from a failure of
// an established connection: its own outcome, a 502.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// dial connects to the upstream for fasthttp. timeout is what is left of
// the request's header timeout (0 without one); the connect itself is
// bounded by Config.DialTimeout, so a long header timeout does not make a
// dead host's connect wait longer.
func (p *Proxy) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if !p.upstreamRoom() {
		return nil, errNoDescriptor
	}
	if timeout <= 0 || timeout > p.cfg.DialTimeout {
		timeout = p.cfg.DialTimeout
	}
	nc, err := fasthttp.DialTimeout(addr, timeout)
	if err != nil {
		var ne net.Error
		if errors.Is(err, fasthttp.ErrDialTimeout) || errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("no connection within %v: %w", timeout, err)
		}
		return nil, &connectError{err}
	}
	return p.conns.add(nc), nil
}

// headCopy holds copyResponseHeader's buffers between uses.
type headCopy struct {
	buf []byte
	rd  bytes.Reader
	br  *bufio.Reader
}

var headPool = sync.Pool{New: func() any { return new(headCopy) }}

// copyResponseHeader copies the upstream's response head to the client's:
// status, and every header as it came (Date and Server included: the
// proxy adds neither), except the hop-by-hop ones and the framing
// (Content-Length, Transfer-Encoding, Trailer), which fasthttp writes for
// the client's connection. It goes through fasthttp's header parser: the
// setters drop Date ("managed automatically"), and ResponseHeader.CopyTo
// also copies the client side's default-Date flag, so the proxy used to
// replace the upstream's Date with its own. Parsing keeps the flag the
// server set (NoDefaultDate) and stores Date like any header.
func copyResponseHeader(dst, src *fasthttp.ResponseHeader) error {
	hc := headPool.Get().(*headCopy)
	defer headPool.Put(hc)
	b := hc.buf[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(src.StatusCode()), 10)
	b = append(b, ' ')
	if m := src.StatusMessage(); len(m) > 0 {
		b = append(b, m...)
	} else {
		b = append(b, fasthttp.StatusMessage(src.StatusCode())...)
	}
	b = append(b, "\r\n"...)
	var drop []string
	if conn := src.Peek("Connection"); len(conn) > 0 {
		drop = connectionTokens(conn)
	}
	for k, v := range src.All() {
		if isFraming(k) || isHop(k) || len(drop) > 0 && slices.ContainsFunc(drop, func(d string) bool { return strings.EqualFold(d, string(k)) }) {
			continue
		}
		b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
	}
	// Framing as the upstream's, so the parser neither invents an
	// identity body nor marks the client's connection to close; fasthttp
	// then frames the body for the client (SetBodyStream, SetBodyRaw).
	if cl := src.ContentLength(); cl >= 0 {
		b = append(strconv.AppendInt(append(b, "Content-Length: "...), int64(cl), 10), "\r\n"...)
	} else {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "\r\n"...)
	if cap(b) <= 64<<10 {
		hc.buf = b
	}
	hc.rd.Reset(b)
	if hc.br == nil || hc.br.Size() < len(b)+16 {
		hc.br = bufio.NewReaderSize(&hc.rd, max(len(b)+16, 4096))
	} else {
		hc.br.Reset(&hc.rd)
	}
	if err := dst.Read(hc.br); err != nil {
		return err
	}
	dst.ResetConnectionClose() // hop-by-hop: the upstream's connection, not the client's
	return nil
}
