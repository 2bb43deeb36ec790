package imapfront_test

import (
	"testing"
)

// bareAccount removes the default mailboxes and their subscriptions, so
// that a transcript can start from the hierarchy an RFC example assumes.
const bareAccount = `
		C: z1 DELETE Archive
		S: z1 OK DELETE completed
		C: z2 DELETE Drafts
		S: z2 OK DELETE completed
		C: z3 DELETE Junk
		S: z3 OK DELETE completed
		C: z4 DELETE Sent
		S: z4 OK DELETE completed
		C: z5 DELETE Trash
		S: z5 OK DELETE completed
		C: z6 UNSUBSCRIBE Archive
		S: z6 OK UNSUBSCRIBE completed
		C: z7 UNSUBSCRIBE Drafts
		S: z7 OK UNSUBSCRIBE completed
		C: z8 UNSUBSCRIBE Junk
		S: z8 OK UNSUBSCRIBE completed
		C: z9 UNSUBSCRIBE Sent
		S: z9 OK UNSUBSCRIBE completed
		C: z10 UNSUBSCRIBE Trash
		S: z10 OK UNSUBSCRIBE completed
`

// TestRFC5258Examples runs the numbered examples of RFC 5258 section 5 on
// the hierarchy each assumes. The server adds \HasChildren and
// \HasNoChildren to every LIST response (RFC 5258 section 4 allows it
// without RETURN (CHILDREN)); the RFC's \Marked and \NoInferiors on INBOX
// are its example server's own. Otherwise the responses are the RFC's,
// CHILDINFO spelled as it spells it. REMOTE selects nothing more here:
// there are no remote mailboxes.
func TestRFC5258Examples(t *testing.T) {
	t.Run("examples 1-6", func(t *testing.T) {
		e := newEnv(t)
		tr := newTranscript(t, e).login(1, "alice")
		tr.run(bareAccount + `
		C: s1 CREATE Fruit/Apple
		S: s1 OK CREATE completed
		C: s2 CREATE Fruit/Banana
		S: s2 OK CREATE completed
		C: s3 CREATE Fruit/Peach
		S: s3 OK CREATE completed
		C: s4 CREATE Tofu
		S: s4 OK CREATE completed
		C: s5 CREATE Vegetable/Broccoli
		S: s5 OK CREATE completed
		C: s6 CREATE Vegetable/Corn
		S: s6 OK CREATE completed
		C: s7 SUBSCRIBE Fruit/Banana
		S: s7 OK SUBSCRIBE completed
		C: s8 SUBSCRIBE Fruit/Peach
		S: s8 OK SUBSCRIBE completed
		C: s9 SUBSCRIBE Vegetable
		S: s9 OK SUBSCRIBE completed
		C: s10 SUBSCRIBE Vegetable/Broccoli
		S: s10 OK SUBSCRIBE completed
		C: s11 DELETE Fruit/Peach
		S: s11 OK DELETE completed

		# Example 1: the whole hierarchy.
		C: A01 LIST "" "*"
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasChildren) "/" "Fruit"
		S: * LIST (\HasNoChildren) "/" "Fruit/Apple"
		S: * LIST (\HasNoChildren) "/" "Fruit/Banana"
		S: * LIST (\HasNoChildren) "/" "Tofu"
		S: * LIST (\HasChildren) "/" "Vegetable"
		S: * LIST (\HasNoChildren) "/" "Vegetable/Broccoli"
		S: * LIST (\HasNoChildren) "/" "Vegetable/Corn"
		S: A01 OK LIST completed

		# Example 2: subscribed names only, a deleted one \NonExistent.
		C: A02 LIST (SUBSCRIBED) "" "*"
		S: * LIST (\HasNoChildren \Subscribed) "/" INBOX
		S: * LIST (\HasNoChildren \Subscribed) "/" "Fruit/Banana"
		S: * LIST (\NonExistent \Subscribed) "/" "Fruit/Peach"
		S: * LIST (\HasChildren \Subscribed) "/" "Vegetable"
		S: * LIST (\HasNoChildren \Subscribed) "/" "Vegetable/Broccoli"
		S: A02 OK LIST completed

		# Example 3: RETURN (CHILDREN).
		C: A03 LIST () "" "%" RETURN (CHILDREN)
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasChildren) "/" "Fruit"
		S: * LIST (\HasNoChildren) "/" "Tofu"
		S: * LIST (\HasChildren) "/" "Vegetable"
		S: A03 OK LIST completed

		# Example 4: REMOTE, the same without remote mailboxes.
		C: A04 LIST (REMOTE) "" "%" RETURN (CHILDREN)
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasChildren) "/" "Fruit"
		S: * LIST (\HasNoChildren) "/" "Tofu"
		S: * LIST (\HasChildren) "/" "Vegetable"
		S: A04 OK LIST completed

		# Example 5: REMOTE SUBSCRIBED.
		C: A05 LIST (REMOTE SUBSCRIBED) "" "*"
		S: * LIST (\HasNoChildren \Subscribed) "/" INBOX
		S: * LIST (\HasNoChildren \Subscribed) "/" "Fruit/Banana"
		S: * LIST (\NonExistent \Subscribed) "/" "Fruit/Peach"
		S: * LIST (\HasChildren \Subscribed) "/" "Vegetable"
		S: * LIST (\HasNoChildren \Subscribed) "/" "Vegetable/Broccoli"
		S: A05 OK LIST completed

		# Example 6: RETURN (SUBSCRIBED) marks the subscribed names among
		# all, and only those.
		C: A06 LIST (REMOTE) "" "*" RETURN (SUBSCRIBED)
		S: * LIST (\HasNoChildren \Subscribed) "/" INBOX
		S: * LIST (\HasChildren) "/" "Fruit"
		S: * LIST (\HasNoChildren) "/" "Fruit/Apple"
		S: * LIST (\HasNoChildren \Subscribed) "/" "Fruit/Banana"
		S: * LIST (\HasNoChildren) "/" "Tofu"
		S: * LIST (\HasChildren \Subscribed) "/" "Vegetable"
		S: * LIST (\HasNoChildren \Subscribed) "/" "Vegetable/Broccoli"
		S: * LIST (\HasNoChildren) "/" "Vegetable/Corn"
		S: A06 OK LIST completed
		`)
	})

	t.Run("example 7", func(t *testing.T) {
		e := newEnv(t)
		tr := newTranscript(t, e).login(1, "alice")
		tr.run(`
		C: s1 CREATE Sent/March2004
		S: s1 OK CREATE completed
		C: s2 CREATE Sent/December2003
		S: s2 OK CREATE completed
		C: s3 CREATE Sent/August2004
		S: s3 OK CREATE completed
		# Several patterns in one LIST.
		C: A07 LIST "" ("INBOX" "Drafts" "Sent/%")
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasNoChildren \Drafts) "/" "Drafts"
		S: * LIST (\HasNoChildren) "/" "Sent/August2004"
		S: * LIST (\HasNoChildren) "/" "Sent/December2003"
		S: * LIST (\HasNoChildren) "/" "Sent/March2004"
		S: A07 OK LIST completed
		`)
	})

	t.Run("example 8", func(t *testing.T) {
		e := newEnv(t)
		tr := newTranscript(t, e).login(1, "alice")
		tr.run(bareAccount + `
		C: s1 CREATE Foo/Bar
		S: s1 OK CREATE completed
		C: s2 UNSUBSCRIBE INBOX
		S: s2 OK UNSUBSCRIBE completed
		C: CA1 LIST "" "*"
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasChildren) "/" "Foo"
		S: * LIST (\HasNoChildren) "/" "Foo/Bar"
		S: CA1 OK LIST completed
		C: CA3 LIST "" "%" RETURN (CHILDREN)
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasChildren) "/" "Foo"
		S: CA3 OK LIST completed
		# A: Foo/Bar subscribed, Foo not: Foo comes for its child, with
		# CHILDINFO and without \Subscribed.
		C: s3 SUBSCRIBE Foo/Bar
		S: s3 OK SUBSCRIBE completed
		C: CA4 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)
		S: * LIST (\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))
		S: CA4 OK LIST completed
		# Without RECURSIVEMATCH nothing matches both the pattern and the
		# selection.
		C: CA5 LIST (SUBSCRIBED) "" "%" RETURN (CHILDREN)
		S: CA5 OK LIST completed
		# B: Foo subscribed, Foo/Bar not: no CHILDINFO.
		C: s4 UNSUBSCRIBE Foo/Bar
		S: s4 OK UNSUBSCRIBE completed
		C: s5 SUBSCRIBE Foo
		S: s5 OK SUBSCRIBE completed
		C: CA6 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)
		S: * LIST (\HasChildren \Subscribed) "/" "Foo"
		S: CA6 OK LIST completed
		# C: both subscribed.
		C: s6 SUBSCRIBE Foo/Bar
		S: s6 OK SUBSCRIBE completed
		C: CA7 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)
		S: * LIST (\HasChildren \Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))
		S: CA7 OK LIST completed
		# A2: Foo/Bar subscribed, and Foo gone with its child (the
		# subscription outlives the mailbox): Foo is \NonExistent.
		C: s7 UNSUBSCRIBE Foo
		S: s7 OK UNSUBSCRIBE completed
		C: s8 DELETE Foo/Bar
		S: s8 OK DELETE completed
		C: s9 DELETE Foo
		S: s9 OK DELETE completed
		C: CA8 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)
		S: * LIST (\NonExistent) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))
		S: CA8 OK LIST completed
		`)
	})

	t.Run("example 9", func(t *testing.T) {
		e := newEnv(t)
		tr := newTranscript(t, e).login(1, "alice")
		tr.run(bareAccount + `
		C: s0 UNSUBSCRIBE INBOX
		S: s0 OK UNSUBSCRIBE completed
		C: s1 CREATE foo2/bar1
		S: s1 OK CREATE completed
		C: s2 CREATE foo2/bar2
		S: s2 OK CREATE completed
		C: s3 CREATE baz2/bar2
		S: s3 OK CREATE completed
		C: s4 CREATE baz2/bar22
		S: s4 OK CREATE completed
		C: s5 CREATE baz2/bar222
		S: s5 OK CREATE completed
		C: s6 CREATE eps2/mamba
		S: s6 OK CREATE completed
		C: s7 CREATE qux2/bar2
		S: s7 OK CREATE completed
		C: t1 SUBSCRIBE foo2/bar1
		S: t1 OK SUBSCRIBE completed
		C: t2 SUBSCRIBE foo2/bar2
		S: t2 OK SUBSCRIBE completed
		C: t3 SUBSCRIBE baz2/bar2
		S: t3 OK SUBSCRIBE completed
		C: t4 SUBSCRIBE baz2/bar22
		S: t4 OK SUBSCRIBE completed
		C: t5 SUBSCRIBE baz2/bar222
		S: t5 OK SUBSCRIBE completed
		C: t6 SUBSCRIBE eps2
		S: t6 OK SUBSCRIBE completed
		C: t7 SUBSCRIBE eps2/mamba
		S: t7 OK SUBSCRIBE completed
		C: t8 SUBSCRIBE qux2/bar2
		S: t8 OK SUBSCRIBE completed
		# foo2 has a subscribed child "*2" does not match (bar1): CHILDINFO.
		# baz2's subscribed children all match, and baz2 is not subscribed:
		# it is not listed. eps2 is subscribed and eps2/mamba does not
		# match: CHILDINFO.
		C: D01 LIST (SUBSCRIBED RECURSIVEMATCH) "" "*2"
		S: * LIST (\HasNoChildren \Subscribed) "/" "baz2/bar2"
		S: * LIST (\HasNoChildren \Subscribed) "/" "baz2/bar22"
		S: * LIST (\HasNoChildren \Subscribed) "/" "baz2/bar222"
		S: * LIST (\HasChildren \Subscribed) "/" "eps2" ("CHILDINFO" ("SUBSCRIBED"))
		S: * LIST (\HasChildren) "/" "foo2" ("CHILDINFO" ("SUBSCRIBED"))
		S: * LIST (\HasNoChildren \Subscribed) "/" "foo2/bar2"
		S: * LIST (\HasNoChildren \Subscribed) "/" "qux2/bar2"
		S: D01 OK LIST completed
		# With "%" no child matches: every parent of a subscribed child
		# comes with CHILDINFO, and nothing else.
		C: D02 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"
		S: * LIST (\HasChildren) "/" "baz2" ("CHILDINFO" ("SUBSCRIBED"))
		S: * LIST (\HasChildren \Subscribed) "/" "eps2" ("CHILDINFO" ("SUBSCRIBED"))
		S: * LIST (\HasChildren) "/" "foo2" ("CHILDINFO" ("SUBSCRIBED"))
		S: * LIST (\HasChildren) "/" "qux2" ("CHILDINFO" ("SUBSCRIBED"))
		S: D02 OK LIST completed
		# RETURN (SUBSCRIBED) without the selection: \Subscribed on exactly
		# the subscribed names.
		C: D03 LIST "" "%" RETURN (SUBSCRIBED CHILDREN)
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasChildren) "/" "baz2"
		S: * LIST (\HasChildren \Subscribed) "/" "eps2"
		S: * LIST (\HasChildren) "/" "foo2"
		S: * LIST (\HasChildren) "/" "qux2"
		S: D03 OK LIST completed
		`)
	})
}

// TestLSubNoselect: RFC 3501 section 6.3.9, as imaptest's "subscribe"
// test checks it: with "%", a level that is not subscribed but has a
// subscribed child comes back \Noselect; a subscribed one comes as it is;
// names the pattern does not reach are not listed.
func TestLSubNoselect(t *testing.T) {
	e := newEnv(t)
	tr := newTranscript(t, e).login(1, "alice")
	tr.run(`
		C: s1 CREATE box/test
		S: s1 OK CREATE completed
		C: s2 CREATE box/test2/test
		S: s2 OK CREATE completed
		C: s3 CREATE box/test3/test3
		S: s3 OK CREATE completed
		C: s4 SUBSCRIBE box/test
		S: s4 OK SUBSCRIBE completed
		C: s5 SUBSCRIBE box/test2/test
		S: s5 OK SUBSCRIBE completed
		C: s6 SUBSCRIBE box/test3/test3
		S: s6 OK SUBSCRIBE completed
		C: l1 LSUB "" box/%
		S: * LSUB (\HasNoChildren \Subscribed) "/" "box/test"
		S: * LSUB (\Noselect) "/" "box/test2"
		S: * LSUB (\Noselect) "/" "box/test3"
		S: l1 OK LSUB completed
		C: l2 LSUB "" *test
		S: * LSUB (\HasNoChildren \Subscribed) "/" "box/test"
		S: * LSUB (\HasNoChildren \Subscribed) "/" "box/test2/test"
		S: l2 OK LSUB completed
		# The parent level above: box itself is not subscribed either.
		C: l3 LSUB "" %
		S: * LSUB (\HasNoChildren \Subscribed) "/" INBOX
		S: * LSUB (\HasNoChildren \Subscribed \Archive) "/" "Archive"
		S: * LSUB (\HasNoChildren \Subscribed \Drafts) "/" "Drafts"
		S: * LSUB (\HasNoChildren \Subscribed \Junk) "/" "Junk"
		S: * LSUB (\HasNoChildren \Subscribed \Sent) "/" "Sent"
		S: * LSUB (\HasNoChildren \Subscribed \Trash) "/" "Trash"
		S: * LSUB (\Noselect) "/" "box"
		S: l3 OK LSUB completed
		C: s7 UNSUBSCRIBE box/test2/test
		S: s7 OK UNSUBSCRIBE completed
		C: l4 LSUB "" box/%
		S: * LSUB (\HasNoChildren \Subscribed) "/" "box/test"
		S: * LSUB (\Noselect) "/" "box/test3"
		S: l4 OK LSUB completed
		# LIST (SUBSCRIBED) is not LSUB: no \Noselect parents there.
		C: l5 LIST (SUBSCRIBED) "" box/%
		S: * LIST (\HasNoChildren \Subscribed) "/" "box/test"
		S: l5 OK LIST completed
	`)
}
