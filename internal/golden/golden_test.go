package golden

import (
	"strings"
	"testing"
)

func TestFirstDifferenceNamesTheLine(t *testing.T) {
	for _, tc := range []struct{ want, got, line string }{
		{"a\nb\nc\n", "a\nB\nc\n", "line 2"},
		{"a\nb\n", "a\nb\nc\n", "line 3"},
		{"a\nb", "a\nb\n", "line 2"},
	} {
		if d := firstDifference([]byte(tc.want), []byte(tc.got)); !strings.Contains(d, tc.line+":") {
			t.Errorf("firstDifference(%q, %q) = %q, want it to name %s", tc.want, tc.got, d, tc.line)
		}
	}
}
