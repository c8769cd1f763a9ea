// Package sse is ssekit for Echo v4 apps, with the API of the SSE module
// they come from: NewHub, NewModule for a core.Kit, SendToUser and the
// rest.
//
// The hub itself is package ssekit (github.com/ssekit/sse/ssekit), which
// imports no web framework: every name below other than the Echo module's
// (Module, ModuleConfig, NewModule, ContextUserID) is an alias of ssekit's
// or a one-line call of it, generated from it, so the two never differ and
// values pass freely between them. Read ssekit's package doc for how the
// hub works: channels, resuming, delivery, the concurrency model.
//
// Echo v5 apps use package echo5 with ssekit instead, and never compile
// Echo v4; plain net/http apps use ssekit alone (Hub.Handler).
package sse

//go:generate go run ./internal/aliasgen/cmd ssekit github.com/ssekit/sse/ssekit sse aliases.go
