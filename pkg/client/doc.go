// Package client is the Go SDK of the Regent API, used by the agent, the
// regentctl and regent-controller command-line tools, and tests.
//
// A Client talks to any controller node (followers forward to the leader)
// and authenticates with an API token sent as X-Auth-Token:
//
//	c := client.New("http://127.0.0.1:8080", os.Getenv(client.EnvToken))
//
//	m, _, err := c.Members().Create(ctx, &api.MemberInput{Name: new("Acme")})
//	if err != nil {
//		var e *api.Error // every non-2xx answer is an *api.Error
//		if errors.As(err, &e) && e.Errors["name"].ErrorCode != "" {
//			log.Fatalf("bad name: %s", e.Errors["name"].Detail)
//		}
//		log.Fatal(err)
//	}
//
//	// PATCH only the fields that are set; If-Match makes it compare-and-swap.
//	m, _, err = c.Members().Update(ctx, m.ID, &api.MemberInput{Name: new("Acme Ltd")},
//		&client.WriteOptions{IfMatch: m.ModifiedIndex})
//	if client.IsConflict(err) {
//		// someone else changed it first: read it again and retry
//	}
//
//	// Filter, order and page; ListAll follows the pages.
//	page, meta, err := c.Members().List(ctx, &client.ListOptions{
//		Search: map[string]string{"name__istartswith": "acme"}, Order: "-created", Limit: 20})
//
//	// Blocking query: returns once the member list changes after the read
//	// above, or after Wait.
//	page, meta, err = c.Members().List(ctx, &client.ListOptions{Index: meta.LastIndex, Wait: 30 * time.Second})
//
// Services are typed Service values over the generic functions List,
// ListAll, Get, Create, Update, Replace and Delete, which any path of the
// CloudCIX-style API can use directly:
//
//	regions, _, err := client.ListAll[*api.Region](ctx, c, client.RegionPath, nil)
//
// Routes with no typed service (the CIX lists, the utilities such as
// /iaas/subnet_space/) take the generic functions with a struct of the
// fields you need (openapi.yaml names them) or a map:
//
//	type Space struct {
//		AddressRange string `json:"address_range"`
//	}
//	free, _, err := client.List[Space](ctx, c, "/iaas/subnet_space/3/",
//		&client.ListOptions{Search: map[string]string{"space_type": "free"}})
//
// Raw passes JSON through untyped, for any method and route: it sends the
// body as given and returns the response body as it came (regentctl's iaas
// commands are built on it and on List[json.RawMessage]):
//
//	body, _, err := client.Raw(ctx, c, http.MethodPatch, "/iaas/subnet/5/", nil,
//		json.RawMessage(`{"name": "web"}`), &client.WriteOptions{IfMatch: 42})
//
// A request the API answers with 503 regent_cluster_001 (no leader: nothing
// was done) or 429 fails with that *api.Error, whose RetryAfter says when
// to ask again; WithRetry(n) makes the Client do so itself, up to n times
// (not after a Retry-After over MaxRetryWait, 30 s):
//
//	c := client.New(addr, token, client.WithRetry(3))
//
// Every call returns a *Meta besides its result: X-Regent-Index as
// LastIndex (chain it into QueryOptions.Index or ListOptions.Index), and the
// stale-read headers. The cluster administration API is c.Operator(), and
// c.Health() asks one node for its health.
package client
