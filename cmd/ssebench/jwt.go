package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// mintJWT returns an HS256 JWT with sub = user, valid for a day, and the
// extra claims (JSON members, e.g. `"channels":["bench"]`, or ""): enough
// for a subscriber token, written out by hand so that the generator needs
// no JWT library.
func mintJWT(secret, user, extra string, now time.Time) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	iat := now.Unix()
	claims := `{"sub":"` + user + `","iat":` + strconv.FormatInt(iat, 10) + `,"exp":` + strconv.FormatInt(iat+86400, 10)
	if extra != "" {
		claims += "," + extra
	}
	claims += "}"
	msg := head + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(mac.Sum(nil))
}
