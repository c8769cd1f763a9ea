// Package echo5 is ssekit's Echo v5 module: GET <prefix>/stream and GET
// <prefix>/status on a core.Kit (package github.com/ssekit/sse/echo5/core),
// with the behaviour of the Echo v4 module in package github.com/ssekit/sse
// (RequireAuth and its 401 JSON body, the user id from the Echo context's
// "user_id" or "account_id", the tenant from "tenant_id", streams
// detached through Echo's response when ssekit.Config.DetachStreams is
// set).
//
// The hub is package github.com/ssekit/sse/ssekit's: this package imports
// Echo v5 and ssekit, never the root package, so an app on Echo v5 does
// not compile Echo v4, and one on Echo v4 does not compile this.
//
// Middleware that cannot carry a stream (Echo's middleware.ContextTimeout
// cuts it at the deadline, middleware.BodyDump keeps a copy of it in
// memory) is to be skipped on the stream route; see docs/echo.md in the
// repository.
package echo5
