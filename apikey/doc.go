// Package apikey issues and checks the API keys external systems use to call
// crmkit, and provides the net/http middleware that enforces them.
//
// # Keys
//
// A key is "slk_", 32 random base62 characters, and a 6-character base62
// CRC32 of what precedes it:
//
//	slk_Xq3v9TzK0bHc2mPw7RfLs1Ny8DjGe4Ua01bC3d
//
// The checksum lets [Parse] refuse a mistyped or invented key without any
// database work and lets secret scanners recognise leaked keys. The plaintext
// is returned once, by [Service.Create] or [Service.Rotate]; only its SHA-256
// and a display prefix ("slk_" and four characters) are stored.
//
// # Scopes
//
// A key carries scopes READ, WRITE, DELETE, BULK and ADMIN, written in
// capitals. ADMIN implies every other scope; WRITE, DELETE and BULK imply
// READ. A key can only create keys with scopes it holds itself
// ([Principal.CanGrant]).
//
// # Verification
//
// [Service.Verify] parses, hashes, and looks the hash up through a small
// in-process cache (never keyed by plaintext), then checks revocation and
// expiry against the injected clock. Revocation applies at once on the
// replica that revoked and within Config.CacheTTL (5 s by default) on
// others. last_used_at is written in the background at most once per
// Config.TouchInterval (a minute by default) per key.
//
// Rotation ([Service.Rotate]) issues a new key with the same name, scopes and
// expiry, and schedules the old one's revocation after a grace period the
// caller chooses; during the grace both keys work.
//
// # Middleware
//
// [Authenticate] and [RequireScope] are plain func(http.Handler)
// http.Handler and work with any router. A missing, malformed, mistyped,
// unknown, revoked or expired key all get the same 401 response body and
// `WWW-Authenticate: Bearer`, so nothing can be learned by probing. A
// missing scope is a 403 problem with code "missing_scope" naming the
// scope. Keys never appear in logs or errors.
//
// Storage is the small [Store] interface; package store implements it on
// SQLite and Postgres.
package apikey
