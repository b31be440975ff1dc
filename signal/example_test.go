package signal_test

import (
	"fmt"
	"regexp"

	"github.com/p2phttp/p2phttp/signal"
)

func ExampleNewCode() {
	code := signal.NewCode() // e.g. "7-amber-otter"
	fmt.Println(regexp.MustCompile(`^\d{1,3}-[a-z]+-[a-z]+$`).MatchString(code))
	c, err := signal.ParseCode(" 7 Amber OTTER ")
	fmt.Println(c, c.Nameplate, err)
	_, err = signal.ParseCode("amber-otter")
	fmt.Println(err)
	// Output:
	// true
	// 7-amber-otter 7 <nil>
	// signal: invalid code: "amber-otter" does not start with a nameplate (a number, as the 7 of 7-amber-otter)
}
