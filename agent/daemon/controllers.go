package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// controllers is the agent's view of the controller cluster: one client
// per configured URL. A call goes to the controller that answered last and
// fails over to the next on a transport error or 502/503/504 (a node
// without a leader or shutting down); any other answer is final. When a
// call fails over, the calls under way to other controllers than the new
// current one end and start again on it.
type controllers struct {
	urls []string
	opts []client.Option // changed under setMu only
	log  hclog.Logger

	// timeout bounds one call to one controller (a blocking work query:
	// its wait plus timeout), so that a controller that accepts
	// connections and never answers (stopped, stuck) is failed over.
	timeout time.Duration

	setMu   sync.Mutex // serialises setToken and setTLS
	mu      sync.Mutex
	clients []*client.Client
	token   string
	tls     *tls.Config // verifies the controllers (nil: the system's roots)
	cur     int
	// moves counts the changes of cur: a call that chose its controller
	// before a move it was not yet in inflight for ends at once (callOne).
	moves uint64
	// inflight are the calls under way, each to one controller: when a
	// call fails over (cur moves), those to another controller than the
	// new current one end and start again on it.
	inflight map[*call]struct{}
	// beforeCall, when set (tests), runs in callOne after the call chose
	// its controller and before it is in inflight.
	beforeCall func()
}

// call is one call under way to controller idx.
type call struct {
	idx    int
	cancel context.CancelCauseFunc
}

// errFailedOver ends a call to a controller another call failed over
// from: a blocking work query to a partitioned controller would otherwise
// wait out its wait and the timeout (minutes) after heartbeats moved on.
var errFailedOver = errors.New("another call failed over to another controller")

// callTimeout is controllers.timeout's default.
const callTimeout = 30 * time.Second

func newControllers(urls []string, token string, log hclog.Logger, opts ...client.Option) *controllers {
	c := &controllers{urls: urls, opts: opts, log: log, timeout: callTimeout}
	c.setToken(token)
	return c
}

// setToken makes every later call use token.
func (c *controllers) setToken(token string) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	c.mu.Lock()
	tlsCfg := c.tls
	c.mu.Unlock()
	c.set(token, tlsCfg)
}

// setAgentID makes every later call carry the agent's instance id
// (api.HeaderAgentID).
func (c *controllers) setAgentID(id string) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	c.opts = append(slices.Clone(c.opts), client.WithHeader(api.HeaderAgentID, id))
	c.mu.Lock()
	token, tlsCfg := c.token, c.tls
	c.mu.Unlock()
	c.set(token, tlsCfg)
}

// setTLS makes every later connection verify the controllers with cfg.
func (c *controllers) setTLS(cfg *tls.Config) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	c.set(c.currentToken(), cfg)
}

func (c *controllers) set(token string, tlsCfg *tls.Config) {
	opts := c.opts
	if tlsCfg != nil {
		opts = append(slices.Clone(opts), client.WithTLSConfig(tlsCfg))
	}
	clients := make([]*client.Client, 0, len(c.urls))
	for _, u := range c.urls {
		clients = append(clients, client.New(u, token, opts...))
	}
	c.mu.Lock()
	c.clients, c.token, c.tls = clients, token, tlsCfg
	c.mu.Unlock()
}

// currentToken is the token calls use.
func (c *controllers) currentToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// noAnswerError is a call a controller did not answer within the call's
// time (controllers.timeout): "unavailable", unlike a caller's context
// that ended.
type noAnswerError struct {
	url string
	in  time.Duration
	err error
}

func (e *noAnswerError) Error() string {
	return fmt.Sprintf("%s did not answer within %s: %v", e.url, e.in, e.err)
}

// unavailable reports whether err means "try another controller".
func unavailable(err error) bool {
	var na *noAnswerError
	if errors.As(err, &na) {
		return true
	}
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch client.StatusCode(err) {
	case 0, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// do runs fn against each controller in turn, starting with the current
// one, until one answers (successfully or with a final error). Each call
// gets a context of its own that ends after the timeout (plus extra: a
// blocking query's wait).
func (c *controllers) do(ctx context.Context, fn func(context.Context, *client.Client) error) error {
	return c.doIn(ctx, c.timeout, fn)
}

// doWithin is do for a call that may take extra longer than the timeout
// (a blocking query).
func (c *controllers) doWithin(ctx context.Context, extra time.Duration, fn func(context.Context, *client.Client) error) error {
	return c.doIn(ctx, c.timeout+extra, fn)
}

// doIn is do with within as the time each controller has to answer (a
// heartbeat's is shorter than the timeout: a heartbeat held by a hung
// controller for the whole timeout, 30 s, then delivered by the next,
// leaves a gap past the controller's down-after deadline, three
// heartbeats by default, and the server is reported down while its agent
// is well).
//
// A call to a controller that stops being the current one (another call
// failed over from it) ends and starts again on the new current one.
func (c *controllers) doIn(ctx context.Context, within time.Duration, fn func(context.Context, *client.Client) error) error {
	c.mu.Lock()
	start, clients, moves := c.cur, c.clients, c.moves
	c.mu.Unlock()
	var err error
	var errs []error
	for i := 0; i < len(clients); i++ {
		idx := (start + i) % len(clients)
		err = c.callOne(ctx, within, idx, moves, clients[idx], fn)
		if errors.Is(err, errFailedOver) && ctx.Err() == nil {
			c.mu.Lock()
			start, clients, moves, i = c.cur, c.clients, c.moves, -1
			c.mu.Unlock()
			errs = nil
			c.log.Debug("controller failed over by another call; calling the current one", "url", clients[start].BaseURL())
			continue
		}
		if !unavailable(err) || ctx.Err() != nil {
			if idx != start {
				c.use(idx)
				c.log.Info("using controller", "url", clients[idx].BaseURL())
			}
			return err
		}
		errs = append(errs, err)
		if len(clients) > 1 {
			c.log.Debug("controller unavailable, trying the next", "url", clients[idx].BaseURL(), "error", err)
		}
	}
	if len(clients) > 1 {
		return &noneAnswered{errs: errs}
	}
	return err
}

// callOne is one call of doIn to controller idx (cl), which has within
// to answer; it ends with errFailedOver when another call makes another
// controller the current one, also when that happened after doIn chose
// idx (moves is c.moves then) and before the call was in inflight, where
// the move could not end it: a blocking work query would otherwise go to
// the controller the heartbeats had just failed over from, and wait there
// for its wait and the timeout.
func (c *controllers) callOne(ctx context.Context, within time.Duration, idx int, moves uint64, cl *client.Client, fn func(context.Context, *client.Client) error) error {
	mctx, cancelMoved := context.WithCancelCause(ctx)
	defer cancelMoved(nil)
	cctx, cancel := context.WithTimeout(mctx, within)
	defer cancel()
	k := &call{idx: idx, cancel: cancelMoved}
	if c.beforeCall != nil {
		c.beforeCall()
	}
	c.mu.Lock()
	if c.moves != moves && c.cur != idx {
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", cl.BaseURL(), errFailedOver)
	}
	if c.inflight == nil {
		c.inflight = map[*call]struct{}{}
	}
	c.inflight[k] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.inflight, k)
		c.mu.Unlock()
		cancelMoved(nil)
	}()
	err := fn(cctx, cl)
	if err != nil && ctx.Err() == nil {
		if context.Cause(mctx) == errFailedOver {
			return fmt.Errorf("%s: %w", cl.BaseURL(), errFailedOver)
		}
		if cctx.Err() != nil {
			return &noAnswerError{url: cl.BaseURL(), in: within, err: err}
		}
	}
	return err
}

// use makes controller idx the current one, and ends the calls under way
// to others (they start again on it).
func (c *controllers) use(idx int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == idx {
		return
	}
	c.cur = idx
	c.moves++
	for k := range c.inflight {
		if k.idx != idx {
			k.cancel(errFailedOver)
		}
	}
}

// noneAnswered is the error of a call no controller answered. Its text
// gives the last attempt's error (and says the others failed too); errors.As
// finds any attempt's: a certificate of an unknown CA from one controller
// while the other is down.
type noneAnswered struct{ errs []error }

func (e *noneAnswered) Error() string {
	return fmt.Sprintf("none of the %d controllers answers, the last: %v", len(e.errs), e.errs[len(e.errs)-1])
}

func (e *noneAnswered) Unwrap() []error { return e.errs }

func (c *controllers) SetRouterState(ctx context.Context, id uint64, r client.StateReport) error {
	return c.do(ctx, func(ctx context.Context, cl *client.Client) error { return cl.Agent().SetRouterState(ctx, id, r) })
}

// backoff is an exponential delay between min and max.
type backoff struct{ min, max, cur time.Duration }

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
