package webhook_test

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/smartlite/crmkit/webhook"
)

func ExampleSign() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"id":"evt_01","type":"record.updated"}`)
	fmt.Println(webhook.Sign(secret, time.Unix(1700000000, 0), body))
	// Output:
	// t=1700000000,v1=20f5ea0f91e11a7329f2766786ce1b1ce12209eb1cc5021c100e6831a6d0d129
}

func ExampleVerifier_Verify() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"id":"evt_01","type":"record.updated"}`)
	signedAt := time.Unix(1700000000, 0)
	header := http.Header{}
	header.Set("X-SmartLite-Signature", webhook.Sign(secret, signedAt, body))

	v := webhook.Verifier{
		Secrets: []string{secret},
		Clock:   func() time.Time { return signedAt.Add(2 * time.Minute) },
	}
	fmt.Println(v.Verify(header, body))

	v.Clock = func() time.Time { return signedAt.Add(10 * time.Minute) }
	fmt.Println(errors.Is(v.Verify(header, body), webhook.ErrTimestampOutOfRange))

	fmt.Println(errors.Is(v.Verify(header, []byte(`{"id":"evt_02"}`)), webhook.ErrInvalidSignature))
	// Output:
	// <nil>
	// true
	// true
}

func ExampleHeaders() {
	// During a rotation's grace period both the old and the new secret sign.
	old := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	next := "whsec_dGVzdC1zZWNyZXQtYi0zMi1ieXRlcy1sb25nISE="
	h, err := webhook.Headers([]string{old, next}, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.Get("webhook-id"))
	fmt.Println(h.Get("webhook-timestamp"))
	fmt.Println(h.Get("webhook-signature"))
	// Output:
	// msg_p5jXN8AQM9LWM0D4loKWxJek
	// 1614265330
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,vJak4ny7yeh92CkSLOiRePVxIkWLZCJHw5KC/OEpKfg=
}

func ExampleMiddleware() {
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// r.Body holds exactly the verified bytes.
		w.WriteHeader(http.StatusNoContent)
	})
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/crm", webhook.Middleware(webhook.Verifier{
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
	})(events))
	fmt.Println("mounted")
	// Output:
	// mounted
}
