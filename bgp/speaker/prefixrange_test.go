package speaker

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// anyRange is GoBGP's match of p against a prefix set of entries es.
func anyRange(es []prefixRange, p netip.Prefix) bool {
	return slices.ContainsFunc(es, func(e prefixRange) bool { return e.contains(p) })
}

func rangesString(es []prefixRange) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s %d..%d", e.Prefix, e.Min, e.Max)
	}
	return out
}

// TestRuleRanges: each operator's entries, as GoBGP will be given them.
func TestRuleRanges(t *testing.T) {
	cases := []struct {
		name string
		rule FilterRule
		want []string
	}{
		{"all: the family's /0 with the rule's lengths", rule("", FilterReject, MatchAll, "", false, 25, 0), []string{"0.0.0.0/0 25..32"}},
		{"all v6", rule("", FilterReject, MatchAll, "", true, 0, 64), []string{"::/0 0..64"}},
		{"in: from the cidr's own length", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 8, 28), []string{"10.244.0.0/16 16..28"}},
		{"in: a longer minimum", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 26, 0), []string{"10.244.0.0/16 26..32"}},
		{"in: the lengths end before the cidr", rule("", FilterReject, MatchIn, "10.244.0.0/16", false, 0, 15), nil},
		{"equal: exactly the cidr", rule("", FilterReject, MatchEqual, "10.244.1.0/26", false, 0, 0), []string{"10.244.1.0/26 26..26"}},
		{"equal: the cidr's length out of range", rule("", FilterReject, MatchEqual, "10.244.1.0/26", false, 27, 0), nil},
		{"not in: siblings, then the covers in range", rule("", FilterReject, MatchNotIn, "128.0.0.0/2", false, 0, 0),
			[]string{"0.0.0.0/1 1..32", "192.0.0.0/2 2..32", "0.0.0.0/0 0..0", "128.0.0.0/1 1..1"}},
		{"not in: lengths bound siblings and covers", rule("", FilterReject, MatchNotIn, "10.0.0.0/8", false, 7, 24),
			[]string{"128.0.0.0/1 7..24", "64.0.0.0/2 7..24", "32.0.0.0/3 7..24", "16.0.0.0/4 7..24",
				"0.0.0.0/5 7..24", "12.0.0.0/6 7..24", "8.0.0.0/7 7..24", "11.0.0.0/8 8..24", "10.0.0.0/7 7..7"}},
		{"not in /0: nothing", rule("", FilterReject, MatchNotIn, "0.0.0.0/0", false, 0, 0), nil},
		{"not equal: other lengths of everything, siblings at the cidr's", rule("", FilterReject, MatchNotEqual, "128.0.0.0/2", false, 0, 0),
			[]string{"0.0.0.0/0 0..1", "0.0.0.0/0 3..32", "0.0.0.0/1 2..2", "192.0.0.0/2 2..2"}},
		{"not equal: the cidr's length out of range", rule("", FilterReject, MatchNotEqual, "10.244.1.0/26", false, 27, 28), []string{"0.0.0.0/0 27..28"}},
		{"not equal v6 ::/0", rule("", FilterReject, MatchNotEqual, "::/0", true, 0, 0), []string{"::/0 1..128"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := validateRule(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			if got := rangesString(ruleRanges(r)); !slices.Equal(got, tc.want) {
				t.Errorf("entries %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIntersect: nested prefixes give the longer with both ranges' bounds;
// disjoint ones and the other family nothing.
func TestIntersect(t *testing.T) {
	pool := prefixRange{netip.MustParsePrefix("10.244.0.0/16"), 16, 32}
	cases := []struct {
		name string
		a    prefixRange
		want string
	}{
		{"everything of a length", prefixRange{netip.MustParsePrefix("0.0.0.0/0"), 26, 26}, "10.244.0.0/16 26..26"},
		{"inside the pool", prefixRange{netip.MustParsePrefix("10.244.7.0/24"), 24, 28}, "10.244.7.0/24 24..28"},
		{"covers only, shorter than the pool", prefixRange{netip.MustParsePrefix("10.0.0.0/8"), 8, 15}, ""},
		{"disjoint", prefixRange{netip.MustParsePrefix("10.245.0.0/16"), 16, 32}, ""},
		{"other family", prefixRange{netip.MustParsePrefix("::/0"), 0, 128}, ""},
	}
	for _, tc := range cases {
		got := ""
		if e, ok := intersect(tc.a, pool); ok {
			got = fmt.Sprintf("%s %d..%d", e.Prefix, e.Min, e.Max)
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRuleRangesProperty: for random rules and prefixes of both families,
// GoBGP's membership of the entries (evaluated as GoBGP does) is exactly
// FilterRule.matches, and the entries of an Accept's accepted part are
// exactly the rule's set inside the pools. Prefixes are drawn near the
// rule's CIDR (its covers, itself, inside, siblings) as well as anywhere.
func TestRuleRangesProperty(t *testing.T) {
	seed := uint64(20261130)
	rng := rand.New(rand.NewPCG(seed, seed))
	pools := map[bool][]netip.Prefix{
		false: prefixes("10.0.0.0/8", "192.168.0.0/16", "10.244.0.0/16"),
		true:  prefixes("fd00:10:244::/56", "2001:db8::/32"),
	}
	const rules, perRule = 2000, 100
	for i := range rules {
		v6 := i%2 == 1
		r := randomRule(rng, v6, pools[v6])
		r, err := validateRule(r)
		if err != nil {
			t.Fatalf("random rule %+v: %v", r, err)
		}
		es := ruleRanges(r)
		for _, e := range es {
			if e.Prefix != e.Prefix.Masked() || e.Min < e.Prefix.Bits() || e.Min > e.Max || e.Max > familyBits(v6) || e.Prefix.Addr().Is6() != v6 {
				t.Fatalf("rule %+v: bad entry %+v", r, e)
			}
		}
		accepted := intersectAll(es, poolRanges(pools[v6], v6))
		for range perRule {
			p := randomPrefix(rng, v6, r.CIDR)
			if got, want := anyRange(es, p), r.matches(p); got != want {
				t.Fatalf("rule %+v, prefix %s: entries %q match %v, the rule %v", r, p, rangesString(es), got, want)
			}
			if got, want := anyRange(accepted, p), r.matches(p) && importable(p, pools[v6]); got != want {
				t.Fatalf("rule %+v, prefix %s: accepted part %q matches %v, want %v", r, p, rangesString(accepted), got, want)
			}
		}
	}
}

func randomRule(rng *rand.Rand, v6 bool, pools []netip.Prefix) FilterRule {
	bits := familyBits(v6)
	r := FilterRule{IPv6: v6, Match: MatchOperator(rng.IntN(5)), Action: FilterAction(rng.IntN(2))}
	base := pools[rng.IntN(len(pools))].Addr()
	if rng.IntN(3) == 0 {
		base = randomAddr(rng, v6)
	}
	r.CIDR = netip.PrefixFrom(base, rng.IntN(bits+1)).Masked()
	if r.Match == MatchAll {
		r.CIDR = netip.Prefix{}
	}
	if rng.IntN(2) == 0 {
		r.MinLen = rng.IntN(bits + 1)
		r.MaxLen = r.MinLen + rng.IntN(bits+1-r.MinLen)
		if r.MaxLen == 0 {
			r.MinLen = 0 // MaxLen 0 means the family's length
		}
	}
	return r
}

func randomAddr(rng *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
}

// randomPrefix draws a prefix of the family: anywhere, or near cidr (its
// address with at most one bit flipped, cut at any length).
func randomPrefix(rng *rand.Rand, v6 bool, cidr netip.Prefix) netip.Prefix {
	bits := familyBits(v6)
	a := randomAddr(rng, v6)
	if cidr.IsValid() && rng.IntN(4) != 0 {
		a = cidr.Addr()
		if rng.IntN(2) == 0 {
			a = flipBit(a, rng.IntN(bits))
		}
		// Sometimes random bits past the CIDR: inside it.
		if rng.IntN(2) == 0 {
			r := randomAddr(rng, v6)
			for i := cidr.Bits(); i < bits; i++ {
				if bitAt(r, i) != bitAt(a, i) {
					a = flipBit(a, i)
				}
			}
		}
	}
	l := rng.IntN(bits + 1)
	if cidr.IsValid() && rng.IntN(3) == 0 {
		l = max(0, min(bits, cidr.Bits()+rng.IntN(5)-2))
	}
	return netip.PrefixFrom(a, l).Masked()
}

func bitAt(a netip.Addr, i int) bool {
	b := a.AsSlice()
	return b[i/8]&(0x80>>(i%8)) != 0
}
