package jwks_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/ssekit/sse/jwks"
)

// An app that authenticates its own streams verifies its identity
// provider's tokens with Keyfunc; here the provider is a local server
// holding one Ed25519 key.
func Example() {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwk, _ := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "k1", ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig}})
	set, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(set) }))
	defer idp.Close()

	keys, err := jwks.Open(context.Background(), jwks.Options{URL: idp.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer keys.Close()

	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	signed := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	signed.Header["kid"] = "k1"
	raw, _ := signed.SignedString(priv)
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("guess"))

	for _, token := range []string{raw, forged} {
		_, err := jwt.Parse(token, keys.Keyfunc, jwt.WithValidMethods(jwks.Algorithms), jwt.WithExpirationRequired())
		fmt.Println(err == nil)
	}
	// Output:
	// true
	// false
}
