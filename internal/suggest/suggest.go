// Package suggest finds the known name nearest to a mistyped one, for
// "did you mean …?" hints in error messages (the language's diagnostics,
// tenant files, policies). It imports nothing of the project, so that any
// package can use it.
package suggest

import "fmt"

// Suggest returns the candidate nearest to name when it is near enough to
// be a plausible typo (edit distance at most 2, and less than half the
// length of name), or "". Ties go to the earlier candidate.
func Suggest(name string, candidates []string) string {
	best, bestD := "", 3
	limit := min((len(name)+1)/2, 2)
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := distance(name, c)
		if d <= limit && d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// DidYouMean returns ` (did you mean "x"?)` for the candidate Suggest
// finds, or "": the hint as it follows a configuration error.
func DidYouMean(name string, candidates []string) string {
	if best := Suggest(name, candidates); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// distance is the optimal string alignment distance (Levenshtein with
// adjacent transpositions) between a and b, by bytes.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 99
	}
	prev2 := make([]int, len(b)+1)
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
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
