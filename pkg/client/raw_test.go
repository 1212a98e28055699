package client_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

func TestRaw(t *testing.T) {
	t.Parallel()
	ctx, c := ctxT(t), root()
	name := uniq("raw")
	body, meta, err := client.Raw(ctx, c, http.MethodPost, client.MemberPath, nil, json.RawMessage(`{"name": "`+name+`"}`), nil)
	if err != nil || meta.StatusCode != http.StatusCreated {
		t.Fatalf("create: %v %+v", err, meta)
	}
	var created api.Item[api.Member]
	if err := json.Unmarshal(body, &created); err != nil || created.Content.Name != name || created.Content.ID == 0 {
		t.Fatalf("create body %s: %v", body, err)
	}
	m := created.Content
	path := client.MemberPath + strconv.FormatUint(m.ID, 10) + "/"

	// A read with a query; the body is the envelope as the API sent it.
	body, _, err = client.Raw(ctx, c, http.MethodGet, path, url.Values{"stale": {"true"}}, nil, nil)
	var got api.Item[api.Member]
	if err != nil || json.Unmarshal(body, &got) != nil || got.Content.ID != m.ID {
		t.Fatalf("get: %v %s", err, body)
	}
	body, _, err = client.Raw(ctx, c, http.MethodGet, client.MemberPath, url.Values{"search[name]": {name}}, nil, nil)
	var list api.List[api.Member]
	if err != nil || json.Unmarshal(body, &list) != nil || len(list.Content) != 1 || list.Metadata.TotalRecords != 1 {
		t.Fatalf("list: %v %s", err, body)
	}

	// A compare-and-swap that lost is a 409 *api.Error.
	_, _, err = client.Raw(ctx, c, http.MethodPatch, path, nil, json.RawMessage(`{"name": "x`+name+`"}`), &client.WriteOptions{IfMatch: 1})
	apiErr(t, err, http.StatusConflict)
	body, _, err = client.Raw(ctx, c, http.MethodPut, path, nil, json.RawMessage(`{"name": "y`+name+`"}`), &client.WriteOptions{IfMatch: m.ModifiedIndex})
	if err != nil || json.Unmarshal(body, &got) != nil || got.Content.Name != "y"+name {
		t.Fatalf("put: %v %s", err, body)
	}
	// Field errors come back as they do from the typed calls.
	_, _, err = client.Raw(ctx, c, http.MethodPost, client.MemberPath, nil, json.RawMessage(`{"colour": "red"}`), nil)
	if e := apiErr(t, err, http.StatusBadRequest); e.Errors["colour"].ErrorCode != api.CodeUnknownField {
		t.Fatalf("unknown field: %+v", e)
	}
	// Invalid JSON is refused before anything is sent.
	if _, meta, err := client.Raw(ctx, c, http.MethodPost, client.MemberPath, nil, json.RawMessage(`{"name":`), nil); err == nil || meta != nil {
		t.Fatalf("invalid body: %v %+v", err, meta)
	}
	body, meta, err = client.Raw(ctx, c, http.MethodDelete, path, nil, nil, nil)
	if err != nil || (meta.StatusCode == http.StatusNoContent) != (body == nil) {
		t.Fatalf("delete: %v %+v %s", err, meta, body)
	}
}
