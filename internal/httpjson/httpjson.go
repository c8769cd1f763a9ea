// Package httpjson writes the JSON answers of the hub and of ssehub, in
// one way: the content type, and no-store so that no cache keeps an answer
// about credentials, limits or ids.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Header values shared by every answer, rather than made per answer: a
// Header value is only ever replaced or appended to, and an append to a
// slice of capacity 1 copies it.
var (
	contentType = []string{"application/json"}
	noStore     = []string{"no-store"}
)

// Write writes status with v as its JSON body.
func Write(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h["Content-Type"], h["Cache-Control"] = contentType, noStore
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
