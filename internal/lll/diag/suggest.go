package diag

import (
	"fmt"

	"github.com/loglineos/loglineos/internal/suggest"
)

// DidYouMean returns `; did you mean "x"?` for the nearest candidate (see
// suggest.Suggest), or "".
func DidYouMean(name string, candidates []string) string {
	if s := suggest.Suggest(name, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}
