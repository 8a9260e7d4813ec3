package config

import "strings"

// Suggest returns the known key closest to key, or "" when none is close
// enough to be a plausible typo. Separators are ignored first, so cert_file
// and certfile both find cert-file.
func Suggest(key string, known []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "", ".", "", " ", "").Replace(strings.ToLower(s))
	}
	nk := norm(key)
	best, bestDist := "", len(key)/3+2
	for _, k := range known {
		if norm(k) == nk {
			return k
		}
		if d := levenshtein(nk, norm(k)); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
