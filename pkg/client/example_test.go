package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// The package documentation's example, compiled (it needs a running
// controller, so it is not run).
func Example() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv(client.EnvToken))

	m, _, err := c.Members().Create(ctx, &api.MemberInput{Name: new("Acme")})
	if err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Errors["name"].ErrorCode != "" {
			log.Fatalf("bad name: %s", e.Errors["name"].Detail)
		}
		log.Fatal(err)
	}
	m, _, err = c.Members().Update(ctx, m.ID, &api.MemberInput{Name: new("Acme Ltd")},
		&client.WriteOptions{IfMatch: m.ModifiedIndex})
	if client.IsConflict(err) {
		log.Print("changed meanwhile; read it again and retry")
	}

	page, meta, err := c.Members().List(ctx, &client.ListOptions{
		Search: map[string]string{"name__istartswith": "acme"}, Order: "-created", Limit: 20})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(page.Metadata.TotalRecords)

	// Wait for the next change of the member list.
	_, _, err = c.Members().List(ctx, &client.ListOptions{Index: meta.LastIndex, Wait: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	regions, _, err := client.ListAll[*api.Region](ctx, c, client.RegionPath, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(regions))
}
