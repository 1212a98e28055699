package systemtest

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// GetVia fetches url over a connection dialled inside another network
// namespace, as a VM or a host there would: enter runs its function with
// the calling thread in that namespace. It returns the status and body.
func GetVia(enter func(func() error) error, url string) (int, string, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := enter(func() (err error) {
			d := net.Dialer{Timeout: 3 * time.Second}
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
