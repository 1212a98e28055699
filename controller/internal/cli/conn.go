package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/regentcloud/regent/pkg/client"
)

// rootTokenFile is the file in a controller's data dir that holds the root
// token (server.RootTokenFile, which this package does not import so that
// regentctl does not link the server).
const rootTokenFile = "root.token"

// Conn holds the connection flags every command accepts.
type Conn struct {
	Addr, Token, TokenFile, CACert string
	// Output is the -o format: table or json.
	Output string

	tool Tool
	// noToken: the command sends no API token (RegisterTransport alone).
	noToken bool
}

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
	opts := []client.Option{client.WithUserAgent(c.tool.Name)}
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
// $REGENT_TOKEN, then ./data/root.token if it exists.
func (c *Conn) resolveToken() (string, error) {
	if c.noToken {
		return "", nil
	}
	if c.Token != "" {
		return c.Token, nil
	}
	if c.TokenFile != "" {
		return readTokenFile(c.TokenFile)
	}
	if t := os.Getenv(client.EnvToken); t != "" {
		return t, nil
	}
	t, err := readTokenFile(filepath.Join("data", rootTokenFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return t, err
}

func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
