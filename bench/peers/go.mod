module github.com/ssekit/sse/bench/peers

go 1.26.8

replace github.com/ssekit/sse => ../..

require (
	github.com/alexandrevicenzi/go-sse v1.6.0
	github.com/r3labs/sse/v2 v2.10.0
	github.com/ssekit/sse v0.0.0-00010101000000-000000000000
	github.com/tmaxmax/go-sse v0.12.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/labstack/echo/v4 v4.16.0 // indirect
	github.com/labstack/gommon v0.5.0 // indirect
	github.com/mattn/go-colorable v0.1.15 // indirect
	github.com/mattn/go-isatty v0.0.22 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasttemplate v1.2.2 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	gopkg.in/cenkalti/backoff.v1 v1.1.0 // indirect
)
