package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/regentcloud/regent/pkg/client"
)

// rootTokenFile is the file in a controller's data dir that holds the root
// token (server.RootTokenFile, which this package does not import so that
// regentctl does not link the server).
const rootTokenFile = "root.token"

// fallbackTokenPath is the token file used when no token is given: the
// root token of a dev node started in the current directory.
var fallbackTokenPath = "./" + filepath.Join("data", rootTokenFile)

// Conn holds the connection flags every command accepts.
type Conn struct {
	Addr, Token, TokenFile, CACert string
	// Output is the -o format: table or json.
	Output string
	// Timeout bounds each request, the answer's body included (-timeout);
	// 0 waits as long as the answer takes.
	Timeout time.Duration

	// Stderr receives the note that says the token is the root token of
	// ./data/root.token, used because none was given (os.Stderr when nil).
	Stderr io.Writer

	tool Tool
	// noToken: the command sends no API token (RegisterTransport alone).
	noToken bool
	// tokenFrom says where the token Client sent comes from, for the hint
	// of Describe: a tokenSource, "" before Client or with no token.
	tokenFrom tokenSource
	tokenPath string // the file of fromFile and fromRootFile
	noted     bool   // the note of the fallback is printed
}

// tokenSource is where the token Client sends comes from.
type tokenSource int

const (
	fromNone     tokenSource = iota // no token is sent
	fromFlag                        // -token
	fromFile                        // -token-file
	fromEnv                         // $REGENT_TOKEN
	fromRootFile                    // ./data/root.token, as none was given
)

// Conn returns the tool's connection settings with their defaults:
// $REGENT_ADDR (else client.DefaultAddr), $REGENT_CACERT and table output.
func (t Tool) Conn() *Conn {
	addr := os.Getenv(client.EnvAddr)
	if addr == "" {
		addr = client.DefaultAddr
	}
	return &Conn{Addr: addr, CACert: os.Getenv(client.EnvCACert), Output: "table", tool: t}
}

// Register adds the connection flags to fs, with the current settings as
// their defaults. Registering them on more than one flag set (before and
// after a command) is fine: all of them write c.
func (c *Conn) Register(fs *flag.FlagSet) {
	c.register(fs)
	fs.StringVar(&c.Addr, "addr", c.Addr, c.tool.AddrHelp+" ($"+client.EnvAddr+")")
	fs.Var(secret{&c.Token}, "token", "API `token` (default: the contents of -token-file if given, else $"+client.EnvToken+", else ./data/"+rootTokenFile+" if it exists)")
	fs.StringVar(&c.TokenFile, "token-file", c.TokenFile, "`file` holding the API token")
}

// RegisterTransport adds the flags of a command that takes its address
// otherwise and sends no API token: -ca-cert and -o. Its client has no token.
func (c *Conn) RegisterTransport(fs *flag.FlagSet) {
	c.noToken = true
	c.register(fs)
}

func (c *Conn) register(fs *flag.FlagSet) {
	fs.StringVar(&c.CACert, "ca-cert", c.CACert, c.tool.CACertHelp+" ($"+client.EnvCACert+")")
	fs.StringVar(&c.Output, "o", c.Output, "output `format`: table or json")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "give up on a request not done, its answer read in full, within this `duration`, e.g. 30s\n"+
		"(default: wait; a snapshot save or a blocking get may need long)")
}

// secret is a string flag whose value the usage text never shows.
type secret struct{ p *string }

func (s secret) String() string { return "" }
func (s secret) Set(v string) error {
	*s.p = v
	return nil
}

// Check validates the settings.
func (c *Conn) Check() error {
	if c.Output != "table" && c.Output != "json" {
		return UsageError(fmt.Sprintf("-o must be table or json, not %q", c.Output))
	}
	if c.Timeout < 0 {
		return UsageError(fmt.Sprintf("-timeout must not be negative, not %s", c.Timeout))
	}
	return nil
}

// JSON reports whether the output is to be JSON.
func (c *Conn) JSON() bool { return c.Output == "json" }

// Client checks the settings and builds the SDK client of Addr.
func (c *Conn) Client() (*client.Client, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	token, err := c.resolveToken()
	if err != nil {
		return nil, err
	}
	if c.tokenFrom == fromRootFile && !c.noted {
		// Said on stderr, so that output read by scripts (-o json) stays
		// as it is: whoever runs a command in a directory with a data dir
		// acts as its root, and should know it.
		c.noted = true
		w := c.Stderr
		if w == nil {
			w = os.Stderr
		}
		fmt.Fprintf(w, "%s: using the root token in %s (no -token, -token-file or $%s)\n", c.tool.Name, fallbackTokenPath, client.EnvToken)
	}
	opts := []client.Option{client.WithUserAgent(c.tool.Name), client.WithRetry(c.tool.Retry)}
	if c.Timeout > 0 {
		opts = append(opts, client.WithHTTPClient(&http.Client{Timeout: c.Timeout}))
	}
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate: %s holds no PEM certificates", c.CACert)
		}
		opts = append(opts, client.WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	return client.New(c.Addr, token, opts...), nil
}

// resolveToken picks the token: -token, then an explicit -token-file, then
// $REGENT_TOKEN, then ./data/root.token if it exists; it records where the
// token came from (tokenFrom, tokenPath).
func (c *Conn) resolveToken() (string, error) {
	c.tokenFrom, c.tokenPath = fromNone, ""
	if c.noToken {
		return "", nil
	}
	if c.Token != "" {
		c.tokenFrom = fromFlag
		return c.Token, nil
	}
	if c.TokenFile != "" {
		t, err := readTokenFile(c.TokenFile)
		if err == nil && t == "" {
			// Sent as no token, the API's 401 said to give one.
			return "", fmt.Errorf("token file: %s is empty", c.TokenFile)
		}
		if err == nil {
			c.tokenFrom, c.tokenPath = fromFile, c.TokenFile
		}
		return t, err
	}
	if t := os.Getenv(client.EnvToken); t != "" {
		c.tokenFrom = fromEnv
		return t, nil
	}
	t, err := readTokenFile(fallbackTokenPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err == nil && t != "" {
		c.tokenFrom, c.tokenPath = fromRootFile, fallbackTokenPath
	}
	return t, err
}

// tokenHint is what Describe says about a token the API refused: where the
// token sent came from, and how to give another.
func (c *Conn) tokenHint() string {
	give := "-token, -token-file or $" + client.EnvToken
	switch c.tokenFrom {
	case fromFlag:
		return "check the token given with -token: it must be one of this cluster's"
	case fromFile:
		return fmt.Sprintf("check the token in %s (-token-file): it must be one of this cluster's", c.tokenPath)
	case fromEnv:
		return "check the token in $" + client.EnvToken + ": it must be one of this cluster's"
	case fromRootFile:
		return fmt.Sprintf("the token sent is the one in %s, the fallback when no %s is given: "+
			"it is not valid in this cluster; give this cluster's token with one of those", c.tokenPath, give)
	}
	return "check the token given with " + give + ": it must be one of this cluster's"
}

func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
