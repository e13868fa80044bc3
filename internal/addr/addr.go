// Package addr parses the network addresses vbench's commands take, the
// same way everywhere: a server to talk to (vbproxy --upstream, vbreplay
// --target and --upstream) may be given as HOST:PORT, :PORT or an http(s)
// URL, and an address to listen on (vbsim and vbproxy --listen) as
// HOST:PORT, :PORT or http://HOST:PORT. Ports are checked here, so a typo
// such as 99999 is refused when the command starts rather than at the
// first request.
package addr

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Server is a parsed server address.
type Server struct {
	// Scheme is "http" or "https".
	Scheme string
	// Host is the host name or IP, without brackets; never empty
	// (":PORT" means 127.0.0.1).
	Host string
	// Port is the port number, 1–65535.
	Port int
}

// HostPort is the address to dial: "host:port" (IPv6 in brackets).
func (s Server) HostPort() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL is the base URL: "http://host:port", no trailing slash.
func (s Server) URL() string { return s.Scheme + "://" + s.HostPort() }

// ParseServer parses the address of a server: "HOST:PORT", ":PORT"
// (127.0.0.1), or "http://HOST[:PORT]" / "https://HOST[:PORT]" (default
// ports 80 and 443; a trailing "/" is allowed, any other path is not: the
// tools append the API paths themselves).
func ParseServer(s string) (Server, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Server{}, fmt.Errorf("empty address: want HOST:PORT or http://HOST:PORT")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return Server{}, fmt.Errorf("%q: not a URL: want HOST:PORT or http://HOST:PORT", in)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return Server{}, fmt.Errorf("%q: scheme %q not supported: want http:// or https://", in, u.Scheme)
		}
		if u.User != nil {
			return Server{}, fmt.Errorf("%q: credentials in the URL are not supported (send them as a header)", in)
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
			return Server{}, fmt.Errorf("%q: give the server's base URL without a path (the API paths such as /v1/completions are added)", in)
		}
		if u.Hostname() == "" {
			return Server{}, fmt.Errorf("%q: no host: want %s://HOST[:PORT]", in, u.Scheme)
		}
		port := 80
		if u.Scheme == "https" {
			port = 443
		}
		if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
			n, err := parsePort(p, false)
			if err != nil {
				return Server{}, fmt.Errorf("%q: %w", in, err)
			}
			port = n
		}
		if !validHost(u.Hostname()) {
			return Server{}, fmt.Errorf("%q: host %q is neither a host name nor an IP address", in, u.Hostname())
		}
		return Server{Scheme: u.Scheme, Host: u.Hostname(), Port: port}, nil
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return Server{}, fmt.Errorf("%q: want HOST:PORT, :PORT or http://HOST[:PORT]", in)
	}
	port, err := parsePort(p, false)
	if err != nil {
		return Server{}, fmt.Errorf("%q: %w", in, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if !validHost(host) {
		return Server{}, fmt.Errorf("%q: host %q is neither a host name nor an IP address", in, host)
	}
	return Server{Scheme: "http", Host: host, Port: port}, nil
}

// ParseListen parses an address to listen on: "HOST:PORT", ":PORT" (all
// interfaces, as net.Listen reads it) or "http://HOST:PORT"; port 0 picks
// a free port. It returns "host:port" for net.Listen.
func ParseListen(s string) (string, error) {
	in := s
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "http://") {
		u, err := url.Parse(s)
		if err != nil || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return "", fmt.Errorf("%q: want HOST:PORT or http://HOST:PORT", in)
		}
		s = u.Host
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil || host != "" && !validHost(host) {
		return "", fmt.Errorf("%q: want HOST:PORT (e.g. 127.0.0.1:8000; port 0 picks a free one)", in)
	}
	port, err := parsePort(p, true)
	if err != nil {
		return "", fmt.Errorf("%q: %w", in, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// ValidPort checks a port number given on its own (vbsim --port): 1–65535,
// or 0 when zero is allowed (pick a free port).
func ValidPort(n int, zeroOK bool) error {
	_, err := parsePort(strconv.Itoa(n), zeroOK)
	return err
}

// validHost accepts an IP address or a DNS name (letters, digits, '.', '-',
// '_'); anything else would not survive the trip through a URL.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func parsePort(p string, zeroOK bool) (int, error) {
	if p == "" {
		return 0, fmt.Errorf("no port")
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 0, fmt.Errorf("port %q is not a number", p)
	}
	lo := 1
	if zeroOK {
		lo = 0
	}
	if n < lo || n > 65535 {
		return 0, fmt.Errorf("port %d out of range (%d–65535)", n, lo)
	}
	return n, nil
}
