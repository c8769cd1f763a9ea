package main

import (
	"context"
	"log/slog"
	"net/http"

	keyset "github.com/ssekit/sse/jwks"
)

// jwks is the identity provider's keys of --jwks-url: package jwks, which
// library users call the same way.
type jwks = keyset.Set

// openJWKS fetches the JWK Set of cfg.JWKSURL (see jwks.Open); its errors
// are one line naming --jwks-url.
func openJWKS(ctx context.Context, cfg config, log *slog.Logger) (*jwks, error) {
	return newJWKS(ctx, cfg, log, nil)
}

// newJWKS is openJWKS, fetching through transport (nil: the default).
func newJWKS(ctx context.Context, cfg config, log *slog.Logger, transport http.RoundTripper) (*jwks, error) {
	keys, err := keyset.Open(ctx, keyset.Options{
		URL:               cfg.JWKSURL,
		Refresh:           cfg.JWKSRefresh,
		RefreshUnknownKID: cfg.JWKSRefreshUnknownKID,
		Logger:            log,
		Transport:         transport,
	})
	if err != nil {
		return nil, badSetting("jwks-url", "%s", err)
	}
	return keys, nil
}
