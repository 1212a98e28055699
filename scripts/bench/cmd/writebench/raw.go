package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawConn is the lean HTTP/1.1 client of one benchmark client: one keep-alive
// connection, the request's fixed head rendered once, each request written
// with one system call and the response parsed in place (Content-Length or
// chunked). On this 2-core machine the load generator shares the cores with
// the nodes it measures, so its own cost per request matters: net/http's
// client spends about 70 µs of CPU on each request here, this one a fraction
// of that (see docs/benchmarks.md). It only speaks what the benchmark needs.
type rawConn struct {
	addr    string // host:port
	head    []byte // request line and headers up to "Content-Length: "
	timeout time.Duration
	conn    net.Conn
	r       *bufio.Reader
	buf     []byte
}

func newRawConn(target, token string, timeout time.Duration) (*rawConn, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("raw client: %s: only http:// is supported", target)
	}
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", u.RequestURI(), u.Host)
	if token != "" {
		head = fmt.Appendf(head, "X-Auth-Token: %s\r\n", token)
	}
	head = append(head, "Content-Length: "...)
	return &rawConn{addr: u.Host, head: head, timeout: timeout}, nil
}

// post sends body and checks the status; any error closes the connection so
// that the next request starts on a fresh one.
func (c *rawConn) post(body []byte, want int) error {
	status, msg, err := c.roundTrip(body)
	if err != nil {
		c.close()
		return err
	}
	if status != want {
		return fmt.Errorf("%d: %s", status, bytes.TrimSpace(msg))
	}
	return nil
}

func (c *rawConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *rawConn) roundTrip(body []byte) (int, []byte, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 2*time.Second)
		if err != nil {
			return 0, nil, err
		}
		c.conn = conn
		if c.r == nil {
			c.r = bufio.NewReaderSize(conn, 16<<10)
		} else {
			c.r.Reset(conn)
		}
	}
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, nil, err
	}
	c.buf = append(c.buf[:0], c.head...)
	c.buf = strconv.AppendInt(c.buf, int64(len(body)), 10)
	c.buf = append(c.buf, "\r\n\r\n"...)
	c.buf = append(c.buf, body...)
	if _, err := c.conn.Write(c.buf); err != nil {
		return 0, nil, err
	}
	return c.readResponse()
}

// readResponse reads one response; it returns the status and, when the
// status is not 2xx, the start of the body for the error message.
func (c *rawConn) readResponse() (int, []byte, error) {
	line, err := c.line()
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 201 Created"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("raw client: bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("raw client: bad status line %q", line)
	}
	length, chunked, closing := -1, false, false
	for {
		h, err := c.line()
		if err != nil {
			return 0, nil, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, nil, fmt.Errorf("raw client: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	var keep []byte
	if status/100 != 2 {
		keep = make([]byte, 0, 300)
	}
	switch {
	case chunked:
		for {
			l, err := c.line()
			if err != nil {
				return 0, nil, err
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(l)), 16, 64)
			if err != nil {
				return 0, nil, fmt.Errorf("raw client: bad chunk size %q", l)
			}
			if n == 0 {
				if _, err := c.line(); err != nil { // the empty trailer
					return 0, nil, err
				}
				break
			}
			if keep, err = c.body(int(n), keep); err != nil {
				return 0, nil, err
			}
			if _, err := c.line(); err != nil {
				return 0, nil, err
			}
		}
	case length >= 0:
		if keep, err = c.body(length, keep); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, errors.New("raw client: response without length")
	}
	if closing {
		c.close()
	}
	return status, keep, nil
}

// body consumes n bytes, appending up to cap(keep) of them to keep.
func (c *rawConn) body(n int, keep []byte) ([]byte, error) {
	for n > 0 {
		b, err := c.r.Peek(min(n, c.r.Size()))
		if err != nil && len(b) == 0 {
			return keep, err
		}
		if room := cap(keep) - len(keep); room > 0 {
			keep = append(keep, b[:min(room, len(b))]...)
		}
		if _, err := c.r.Discard(len(b)); err != nil {
			return keep, err
		}
		n -= len(b)
	}
	return keep, nil
}

// line returns the next CRLF-terminated line without its end; it is valid
// until the next read.
func (c *rawConn) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}
