// Package dns is Regent's authoritative DNS server.
//
// It serves the zones of the replicated state (read through Source) over UDP
// and TCP, answers AXFR/IXFR to allowed secondaries and sends them NOTIFY when
// a zone's serial changes. It never recurses and never acts as a secondary.
//
// # Data flow
//
// A goroutine owned by the Server follows Source.Wait. On every change it
// compares the zone serials with the ones it serves and rebuilds only the
// zones whose serial changed into an immutable lookup structure (owner name →
// type → RRset, plus every existing name including empty non-terminals,
// delegation points and wildcards). The complete set of zones is swapped in
// with an atomic pointer, so queries never take a lock on zone data.
//
// # Answers
//
// Answers follow RFC 1034 §4.3.2 as refined by RFC 2308 (negative answers:
// SOA in authority with TTL min(SOA TTL, MINIMUM)), RFC 4592 (wildcards, with
// closest-encloser matching; a wildcard below a delegation never applies),
// RFC 6891 (EDNS0; version ≠ 0 is answered BADVERS) and RFC 1995/5936
// (IXFR/AXFR over TCP only; IXFR from a version in the zone's journal of
// recent changes gets the differences, journal.go). In-zone CNAMEs are chased up to 8 links; a longer
// chain is answered SERVFAIL. Queries for type ANY return every RRset at the
// name (no RFC 8482 minimisation: the zones are small and not signed); at a
// CNAME that is the CNAME alone, not chased (RFC 1034 §4.3.2 step 3a). An apex
// SOA answer carries the NS set in authority; apex NS answers, referrals and
// MX/SRV answers carry in-zone A/AAAA in the additional section.
//
// Names are stored in lower case and looked up case-insensitively. The
// question is echoed as the client spelled it, and so is every owner name
// equal to the query name, in any section (a wildcard answer and the first
// record of a CNAME chain included): over UDP such an owner is packed as a
// compression pointer to the question, over TCP and in signed responses it
// is a copy of the record owned by the client's spelling, which compression
// turns into the same pointer. Other names, such as the records of a chased
// CNAME target, keep the stored spelling.
//
// # UDP fast path
//
// UDP is served by our own read loops (GOMAXPROCS of them sharing one
// socket, each moving up to 32 datagrams per recvmmsg/sendmmsg call) rather
// than miekg/dns's server. The socket does not use SO_REUSEPORT unless
// Config.UDPSockets asks for several: a port shared that way can be handed
// to a client of the same user as its source port, and that client (dig
// does this) then reads its own query back instead of the answer. A plain query (opcode
// QUERY, one question, no answer/authority records, at most a bare EDNS0 OPT
// record without options) is answered from a cache of packed responses keyed
// by the lower-cased question, the EDNS presence, the effective UDP size and
// the DO bit; a hit copies the bytes and patches the message ID, the RD/CD
// flags and the question's original spelling, which the owners equal to the
// query name (pointers to the question) follow. Everything else (misses,
// TSIG, NOTIFY, EDNS options, malformed packets) goes through the full
// miekg/dns path, which first applies the header checks the TCP server
// does (acceptMsg: FORMERR, from the header alone, unless ancount ≤ 1,
// nscount ≤ 1 and arcount ≤ 2, except for opcodes other than QUERY/NOTIFY),
// so both transports answer alike. respond then answers FORMERR without
// an OPT record for more than one OPT record (or one outside the
// additional section, RFC 6891 §6.1.1); and, with an OPT record when the
// request has one (RFC 6891 §7), NOTIMP for opcodes other than
// QUERY/NOTIFY, FORMERR without a question when qdcount ≠ 1, FORMERR for
// OPT, TKEY or TSIG as the question type, NOTIMP for MAILA and MAILB. RA
// and AD are 0 on every reply: the header
// replies clear them, and over TCP clearRAWriter does for the ones miekg/dns
// builds from the request. The cache hangs off the zone snapshot, so a zone swap
// invalidates it, and it is bounded in size.
//
// TCP is served by miekg/dns's server (an answer larger than 65,535 octets
// cut to fit, with TC: fitTCP) with unlimited queries per connection
// (MaxTCPQueries -1), a 10 s idle timeout, and at most Config.TCPConns
// connections open at once (tcplimit.go): at the bound the listener stops
// accepting until one closes, so clients of the DNS port cannot take every
// file descriptor of the process (and with them the HTTP API and raft). After
// a temporary accept error (EMFILE) it retries with a growing pause (5 ms to
// 1 s) rather than at once as miekg/dns's server would.
//
// # Lifecycle
//
// New validates the Config; Start loads the zones, binds (errors are
// returned synchronously; port 0 is allowed, see Addr) and starts the owned
// goroutines: socket loops, the zone follower and NOTIFY senders. They stop
// when Start's context ends or Shutdown is called; Shutdown waits for them.
package dns
