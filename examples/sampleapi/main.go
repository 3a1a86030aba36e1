// Command sampleapi is a small customer API on loopback for trying a pull
// connector: GET /customers answers
//
//	{"data":[{"id":1,"name":"…","email":"…","industry":"…","updated_at":"…"},…],
//	 "meta":{"next_cursor":"…"}}
//
// ordered by (updated_at, id), ?limit= records at a time (default 100),
// from ?cursor= (the next_cursor of the previous page), with updated_at at
// or after ?updated_since= when given. Ten customers share each updated_at,
// as records written by one batch job upstream would. POST
// /customers/{id}/touch renames a customer and moves its updated_at to now,
// so the next incremental run picks it up. Requests need
// "Authorization: Bearer sample-token".
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

type customer struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Email     string `json:"email"`
	Industry  string `json:"industry"`
	UpdatedAt string `json:"updated_at"`
}

type api struct {
	mu    sync.Mutex
	recs  []customer
	token string
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "listen address")
	n := flag.Int("n", 1000, "how many customers to serve")
	flag.Parse()
	a := &api{token: "sample-token"}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	industries := []string{"Retail", "Software", "Logistics", "Finance"}
	for i := 1; i <= *n; i++ {
		a.recs = append(a.recs, customer{ID: i, Name: fmt.Sprintf("Customer %d", i),
			Email: fmt.Sprintf("customer%d@example.com", i), Industry: industries[i%len(industries)],
			UpdatedAt: base.Add(time.Duration(i/10) * time.Minute).Format(time.RFC3339)})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /customers", a.list)
	mux.HandleFunc("POST /customers/{id}/touch", a.touch)
	log.Printf("serving %d customers on http://%s/customers", *n, *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

func (a *api) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return false
	}
	return true
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 || limit > 1000 {
		limit = 100
	}
	from, _ := strconv.Atoi(q.Get("cursor"))
	since := q.Get("updated_since")
	a.mu.Lock()
	var match []customer
	for _, c := range a.recs {
		if since == "" || c.UpdatedAt >= since {
			match = append(match, c)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(match, func(x, y customer) int {
		if x.UpdatedAt != y.UpdatedAt {
			if x.UpdatedAt < y.UpdatedAt {
				return -1
			}
			return 1
		}
		return x.ID - y.ID
	})
	from = min(max(from, 0), len(match))
	to := min(from+limit, len(match))
	next := ""
	if to < len(match) {
		next = strconv.Itoa(to)
	}
	page := match[from:to]
	if page == nil {
		page = []customer{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": page, "meta": map[string]string{"next_cursor": next}})
}

func (a *api) touch(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	id, _ := strconv.Atoi(r.PathValue("id"))
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.recs {
		if a.recs[i].ID == id {
			a.recs[i].Name += " (renamed)"
			a.recs[i].UpdatedAt = time.Now().UTC().Format(time.RFC3339)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(a.recs[i])
			return
		}
	}
	http.NotFound(w, r)
}
