package replay

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/vbench/vbench/internal/openai"
	"github.com/vbench/vbench/metric"
)

var (
	errCut     = errors.New("cut at the level's drain deadline")
	errTimeout = errors.New("request timeout")
)

// fail marks res as ended with error kind kind.
func fail(res *metric.Request, kind, msg string) {
	res.ErrorKind, res.Error, res.Outcome = kind, msg, metric.OutcomeOf(kind)
}

// newTransport returns an HTTP/1.1 transport tuned for thousands of
// concurrent streams against one host: every connection is kept for reuse,
// no compression (the stream must arrive as the server flushed it), no
// HTTP/2 (one TCP stream per request, as the engines' clients do).
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1 << 16,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 0,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
}

// streamer reads one response with the one OpenAI decoder
// (internal/openai): the same decoding the proxy records and the analysis
// reads. Each send takes one from the runner's pool.
type streamer struct {
	buf [16 << 10]byte
	dec openai.Decoder
}

// read consumes the body to its end, stamping the first byte and the first
// content read on the monotonic clock relative to sent, and returns what
// is wrong with the response (errStreamError, errTruncated) or the read
// error. res.End is the time of the last byte.
func (s *streamer) read(body io.Reader, streamed bool, sent time.Time, res *metric.Request) error {
	s.dec.Reset(res, streamed)
	for {
		n, err := body.Read(s.buf[:])
		if n > 0 {
			s.dec.Read(time.Since(sent), s.buf[:n])
		}
		if err == io.EOF {
			s.dec.Finish()
			res.End = s.dec.LastByte()
			switch s.dec.Problem() {
			case metric.KindStreamError:
				return errStreamError
			case metric.KindTruncated:
				// Servers that end a finished stream without [DONE]
				// (transformers serve) are complete, not truncated: the
				// decoder counts a finish_reason as an end.
				return errTruncated
			}
			return nil
		}
		if err != nil {
			s.dec.Finish()
			return err
		}
	}
}

var (
	errStreamError = errors.New("the response carried an error event")
	errTruncated   = errors.New("the response ended before [DONE] or a finish_reason (or is not one JSON object)")
)

// classify maps a transport or stream error to an error kind.
func classify(ctx context.Context, err error) string {
	if cause := context.Cause(ctx); cause != nil {
		switch {
		case errors.Is(cause, errCut):
			return metric.KindCut
		case errors.Is(cause, errTimeout):
			return metric.KindTimeout
		}
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, errStreamError):
		return metric.KindStreamError
	case errors.Is(err, errTruncated):
		return metric.KindTruncated
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return metric.KindConnect
	case errors.As(err, &oe) && oe.Op == "dial":
		return metric.KindConnect
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return metric.KindReset
	case errors.As(err, &ne) && ne.Timeout():
		return metric.KindTimeout
	}
	return metric.KindOther
}
