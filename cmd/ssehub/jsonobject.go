package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// eachField calls fn with each key of the JSON object body and its value,
// raw, in order. body must be one object, and valid JSON (the caller has
// checked it with json.Valid): this only finds where each part ends. It
// is the publish path's one pass over a body, without the allocations of
// json.Decoder's tokens.
func eachField(body []byte, fn func(key string, value json.RawMessage) error) error {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return errors.New("malformed JSON body: want an object")
	}
	i = skipSpace(body, i+1)
	for i < len(body) && body[i] != '}' {
		end := stringEnd(body, i)
		key, err := unquote(body[i:end])
		if err != nil {
			return err
		}
		i = skipSpace(body, end) // at the ':'
		start := skipSpace(body, i+1)
		end = valueEnd(body, start)
		if err := fn(key, body[start:end]); err != nil {
			return err
		}
		i = skipSpace(body, end)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	if i = skipSpace(body, i+1); i < len(body) {
		return errors.New("malformed JSON body: more than one value")
	}
	return nil
}

// unquote returns the text of a JSON string, copying it as is when it
// has no escapes.
func unquote(s []byte) (string, error) {
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s[1 : len(s)-1]), nil
	}
	var out string
	if err := json.Unmarshal(s, &out); err != nil {
		return "", fmt.Errorf("malformed JSON body: key %s: %w", s, err)
	}
	return out, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// valueEnd returns the index after the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && !bytes.ContainsRune([]byte(",}] \t\r\n"), rune(b[i])) {
		i++
	}
	return i
}
