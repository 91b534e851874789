package main

import (
	"net/url"
	"strings"
)

// The layout of stores written before segments (segments.go), one file per object, which
// OpenStore moves into a segment. Keys map to paths segment by segment: folder names are
// percent-encoded with `.` encoded too, and file names are the encoded last segment plus
// `.s3o`, so a folder never has a dot and a file always has one. `a/b` and `a/b/c` can both
// exist, and `.`, `..` or empty segments are safe. The encoding is Python's
// `urllib.parse.quote(part, safe="")`, which wrote the first such stores.
const objectSuffix = ".s3o"

// storePath is the file of key, relative to its bucket's folder.
func storePath(key string) string {
	parts := strings.Split(key, "/")
	for i, part := range parts[:len(parts)-1] {
		parts[i] = strings.ReplaceAll(quote(part), ".", "%2E")
		if parts[i] == "" {
			parts[i] = "%"
		}
	}
	last := len(parts) - 1
	parts[last] = quote(parts[last]) + objectSuffix
	return strings.Join(parts, "/")
}

// keyOf is the inverse of storePath.
func keyOf(path string) string {
	parts := strings.Split(path, "/")
	last := len(parts) - 1
	parts[last] = strings.TrimSuffix(parts[last], objectSuffix)
	for i, part := range parts {
		if part == "%" && i < last {
			parts[i] = ""
			continue
		}
		if decoded, err := url.PathUnescape(part); err == nil {
			parts[i] = decoded
		}
	}
	return strings.Join(parts, "/")
}

const upperHex = "0123456789ABCDEF"

// quote percent-encodes every byte but ASCII letters, digits and `_.-~`.
func quote(text string) string {
	var out strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '_' || c == '.' || c == '-' || c == '~' {
			out.WriteByte(c)
			continue
		}
		out.WriteByte('%')
		out.WriteByte(upperHex[c>>4])
		out.WriteByte(upperHex[c&15])
	}
	return out.String()
}

// urlQuote is S3's `encoding-type=url` form of a key: like quote, but `/` stays.
func urlQuote(text string) string {
	return strings.ReplaceAll(quote(text), "%2F", "/")
}
