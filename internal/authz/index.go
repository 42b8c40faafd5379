package authz

import "strings"

// ruleList holds the rules of one action for one kind of filter chain, in
// policy order, indexed by the peer identity their sources require, so that
// a decision looks only at rules that can match its peer.
//
// A rule is indexed when every one of its `from` entries requires either an
// exact principal or an exact namespace; its positions are listed under
// those keys. Every other rule is in rest. The index only chooses which
// rules to try; each candidate is still matched in full.
type ruleList struct {
	rules  []*rule
	byPeer map[string][]int // "spiffe://td/ns/a/sa/b" → positions
	byNS   map[string][]int // namespace → positions
	rest   []int
}

// indexThreshold is the list length below which scanning beats the maps.
// Tests lower it to exercise the index on small lists.
var indexThreshold = 8

func (l *ruleList) add(rs ...*rule) { l.rules = append(l.rules, rs...) }

// build indexes the list once all its rules are added.
func (l *ruleList) build() {
	if len(l.rules) < indexThreshold {
		return
	}
	l.byPeer, l.byNS = map[string][]int{}, map[string][]int{}
	for i, ru := range l.rules {
		peers, namespaces, ok := ru.peerKeys()
		if !ok {
			l.rest = append(l.rest, i)
			continue
		}
		for _, p := range peers {
			l.byPeer[p] = appendOnce(l.byPeer[p], i)
		}
		for _, ns := range namespaces {
			l.byNS[ns] = appendOnce(l.byNS[ns], i)
		}
	}
}

func appendOnce(list []int, i int) []int {
	if n := len(list); n > 0 && list[n-1] == i {
		return list
	}
	return append(list, i)
}

// peerKeys returns the exact principals and namespaces one of which a
// request's peer must have for the rule to match, and whether every source
// of the rule requires one.
func (ru *rule) peerKeys() (peers, namespaces []string, ok bool) {
	if len(ru.from) == 0 {
		return nil, nil, false
	}
	for _, and := range ru.from {
		found := false
		for i := range and {
			f := &and[i]
			if len(f.values) == 0 || (f.attr != attrPeer && f.attr != attrNamespace) {
				continue
			}
			exact := true
			for _, v := range f.values {
				switch {
				case f.attr == attrPeer && v.str.kind == strExact:
				case f.attr == attrNamespace && v.str.kind == strContains && !strings.Contains(v.str.s[4:len(v.str.s)-1], "/"):
				default:
					exact = false
				}
			}
			if !exact {
				continue
			}
			for _, v := range f.values {
				if f.attr == attrPeer {
					peers = append(peers, v.str.s)
				} else {
					namespaces = append(namespaces, v.str.s[4:len(v.str.s)-1]) // "/ns/<ns>/"
				}
			}
			found = true
			break
		}
		if !found {
			return nil, nil, false
		}
	}
	return peers, namespaces, true
}

// first returns the first rule, in policy order, that matches r.
func (l *ruleList) first(r *Request) Match {
	best := len(l.rules)
	if l.byPeer == nil {
		for i, ru := range l.rules {
			if ru.match(r) {
				best = i
				break
			}
		}
	} else {
		if r.Peer != "" {
			l.scanList(l.byPeer[r.Peer], r, &best)
			// Istio's namespace matcher is the regex ".*/ns/<ns>/.*": any
			// "/ns/<ns>/" in the identity counts, so try each.
			for p := strings.Index(r.Peer, "/ns/"); p >= 0; {
				seg := r.Peer[p+4:]
				if end := strings.IndexByte(seg, '/'); end >= 0 {
					l.scanList(l.byNS[seg[:end]], r, &best)
				}
				next := strings.Index(r.Peer[p+1:], "/ns/")
				if next < 0 {
					break
				}
				p += 1 + next
			}
		}
		l.scanList(l.rest, r, &best)
	}
	if best == len(l.rules) {
		return Match{}
	}
	return Match{Policy: l.rules[best].policy, Rule: l.rules[best].index}
}

// scanList tries the rules at positions (ascending) that come before best.
func (l *ruleList) scanList(positions []int, r *Request, best *int) {
	for _, i := range positions {
		if i >= *best {
			return
		}
		if l.rules[i].match(r) {
			*best = i
			return
		}
	}
}
