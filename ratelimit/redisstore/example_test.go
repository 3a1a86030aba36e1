package redisstore_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlite/crmkit/ratelimit"
	"github.com/smartlite/crmkit/ratelimit/redisstore"
)

// Replicas that share a Redis share their counts: give each the same client
// configuration and namespace.
func ExampleFactory() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	l, err := ratelimit.New(ratelimit.Config{
		NewStore: redisstore.Factory(client, "crmkit:"),
		Key: func(r *http.Request) (string, string, bool) {
			return r.Header.Get("X-Key-ID"), "pro", true
		},
	})
	fmt.Println(l != nil, err)
	// Output:
	// true <nil>
}

func ExampleNew() {
	_, err := redisstore.New(redisstore.Config{Tokens: 60, Interval: time.Minute})
	fmt.Println(err)
	// Output:
	// redisstore: Config.Client is required
}
