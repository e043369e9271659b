package span_test

import (
	"errors"
	"fmt"

	"github.com/loglineos/loglineos/internal/span"
)

func ExampleCanonicalize() {
	out, err := span.Canonicalize([]byte(`{ "b": 1E2, "a": "\u00e9\/", "c": [-0, 0.0000001] }`))
	fmt.Println(string(out), err)
	// Output: {"a":"é/","b":100,"c":[0,1e-7]} <nil>
}

func ExampleParse() {
	s, err := span.Parse([]byte(`{"id":"s_1","tenant":"t_voulezvous","when":"2025-10-05T22:18:07Z","data":{"items":3,"gross":19.90}}`), span.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.ID, s.Tenant, s.When, s.WhenOK)
	fmt.Println(s.Members)
	fmt.Println(string(s.Data))
	fmt.Println(string(s.Canonical()))
	// Output:
	// s_1 t_voulezvous 2025-10-05 22:18:07 +0000 UTC true
	// [data id tenant when]
	// {"gross":19.9,"items":3}
	// {"data":{"gross":19.9,"items":3},"id":"s_1","tenant":"t_voulezvous","when":"2025-10-05T22:18:07Z"}
}

func ExampleSyntaxError() {
	_, err := span.Parse([]byte(`{"id":"s_1","id":"s_2"}`), span.Limits{})
	var se *span.SyntaxError
	if errors.As(err, &se) {
		fmt.Println(se.Offset, se.Msg)
		fmt.Println(err)
	}
	// Output:
	// 12 duplicate member "id"
	// duplicate member "id" at byte 12
}
