package lab

import (
	"fmt"
	"strings"
	"testing"
)

func TestRoutesWrongSaysHowManyAndWhich(t *testing.T) {
	if err := routesWrong(nil, 400); err != nil {
		t.Fatalf("nothing wrong: %v", err)
	}
	var wrong []string
	for i := range 11 {
		wrong = append(wrong, fmt.Sprintf("node%d has no route to pod p (10.0.0.%d)", i, i))
	}
	err := routesWrong(wrong, 400)
	for _, want := range []string{"11 of 400 pod routes not as planned", "node0 has no route", "node7 has no route", "and 3 more"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "node8 ") {
		t.Errorf("%v lists more than %d", err, maxListed)
	}
}
