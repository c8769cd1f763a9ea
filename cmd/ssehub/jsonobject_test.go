package main

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestEachFieldSplitsAnObject(t *testing.T) {
	for _, tc := range []struct {
		body string
		keys []string
		vals []string
	}{
		{`{}`, nil, nil},
		{` { "a" : 1 , "b":"x" } `, []string{"a", "b"}, []string{`1`, `"x"`}},
		{`{"d":{"k":"}]\"{","l":[1,{"m":[]}]},"e":[ "]", "\"" ],"f":null,"g":-1.5e3}`,
			[]string{"d", "e", "f", "g"},
			[]string{`{"k":"}]\"{","l":[1,{"m":[]}]}`, `[ "]", "\"" ]`, `null`, `-1.5e3`}},
		{`{"\u0075sers":true}`, []string{"users"}, []string{"true"}},
	} {
		if !json.Valid([]byte(tc.body)) {
			t.Fatalf("bad case %s", tc.body)
		}
		var keys, vals []string
		err := eachField([]byte(tc.body), func(k string, v json.RawMessage) error {
			keys, vals = append(keys, k), append(vals, string(v))
			return nil
		})
		if err != nil || !slices.Equal(keys, tc.keys) || !slices.Equal(vals, tc.vals) {
			t.Errorf("eachField(%s) = %q %q %v, want %q %q", tc.body, keys, vals, err, tc.keys, tc.vals)
		}
	}
	for _, body := range []string{`[1]`, `"x"`, `7`, `{"a":1} {"b":2}`} {
		if err := eachField([]byte(body), func(string, json.RawMessage) error { return nil }); err == nil {
			t.Errorf("eachField(%s) = nil, want an error", body)
		}
	}
}
