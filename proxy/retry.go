package proxy

import (
	"errors"
	"io"
	"syscall"

	"github.com/valyala/fasthttp"
)

// maxStaleRetries bounds how many times one request is re-sent after a
// pooled upstream connection turned out to be closed. After a pause every
// pooled connection may be stale (fasthttp cannot see a peer's FIN until it
// uses the connection, and each failed try closes one), so the bound is
// generous; a stale try costs one write and one read on an open socket.
const maxStaleRetries = 16

// retryStaleConn decides, for fasthttp, whether a failed upstream attempt is
// sent again. Only the failures of a connection the upstream had already
// closed qualify: EOF or a reset before the first response byte, or a broken
// pipe while writing the request. Servers close idle keep-alive connections
// on their own clock (uvicorn, behind vLLM and transformers serve, after
// 5 s), and the pool cannot see it until it uses one; the request then never
// reached the application, so sending it again on another connection is
// what net/http's Transport does too (for a reused connection). Any byte of
// response, a dial error or a timeout is never retried. Methods are not
// distinguished: an LLM request is a POST, and this failure mode is the
// same for it. Each retry is counted (Stats.UpstreamRetries).
func (p *Proxy) retryStaleConn(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if attempts > maxStaleRetries || !staleConnErr(err) {
		return false, false
	}
	p.c.upstreamRetries.Add(1)
	return false, true
}

// staleConnErr reports whether err is how a connection closed by the peer
// shows up on first use.
func staleConnErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
