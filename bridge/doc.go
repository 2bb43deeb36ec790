// Package bridge is the domain core of imapbridge: users, mailboxes, stable
// UIDs, the durable state store, the sync engine that pulls mail from legacy
// sources, the change fan-out that keeps every session of a user in step,
// and what the retirement path needs to know (shadow mode, foreign
// deletions, readiness).
//
// It knows nothing of IMAP wire syntax, POP3 or mbox, and imports only the
// standard library and the store's driver (modernc.org/sqlite). A legacy
// mail host is a Source (source.go); the IMAP front end talks to Bridge,
// User and Mailbox and observes changes through Observer (observer.go).
//
// # The rules a change must not break
//
// Each rule names the code that holds it. Change that code and the rule
// moves with it; change the rule here first.
//
// UIDs are stable.
//
//   - A mailbox's UIDVALIDITY is given once, when the mailbox is created
//     (insertMailbox → nextUIDValidity, store.go), always above every
//     value the store handed out before (meta.last_uidvalidity), so a
//     mailbox deleted and re-created by the same name never gets its old
//     one. The only other write of mailboxes.uid_validity is
//     resetAllUIDValidity (store.go), run by checkRollback at Open when
//     the store is found rolled back (below): while a store lives on, its
//     UIDVALIDITY does not change.
//   - UIDs are never reused: a mailbox's uid_next only grows, and is
//     written in the same transaction as the messages that took the UIDs
//     (Mailbox.addBatch and Mailbox.transfer, mailbox.go).
//   - A source message gets one UID: the source-id map (the origins
//     table, UNIQUE(user_id, source, source_id)) is written in the
//     transaction that stores the message (originRef.insert from
//     addBatch), its rows are never deleted (only their state changes:
//     setOrigins, sync.go), and Plan (plan.go) fetches only ids the map
//     does not hold — once each, an id listed twice included.
//   - Rollback detection: every write transaction bumps meta.generation
//     (Bridge.writeLocked, store.go); highwater.json beside the database
//     keeps the highest generation seen (saveHighwater: at most 5 s
//     behind, and at Close). checkRollback (store.go), at Open, finds a
//     store behind its side file — restored from an older copy, whose
//     UIDs clients may already hold for other messages — and gives every
//     mailbox a new UIDVALIDITY, logged, counted and recorded in
//     uidvalidity_resets.
//
// No mail is lost.
//
//   - Before a POP3 DELE or an mbox rewrite: a message is deleted at its
//     source only once its blob is durable (file fsync'd, or syncfs of
//     the data directory, then the directory; commitBlobs/syncBlobs,
//     blob.go) and its row and origin are committed (Mailbox.addBatch,
//     run by ingester.commit, ingest.go). Bridge.poll (sync.go) deletes
//     what Plan allows — stored, listed once with the size recorded when
//     stored, a complete listing, serve mode, the policy says so — and
//     what the ingester reports committed in this very poll (after_sync).
//     The deletion is recorded as begun (originDeleting) before the
//     session's Close commits it (QUIT, mbox rewrite) and as done after.
//     A partial listing deletes nothing; a failed poll Aborts its session,
//     which commits nothing. A shadow feed never calls Delete at all.
//   - Before an IMAP OK: every change a session makes (Append, Store,
//     Expunge, CopyTo/MoveTo, mailbox create/delete/rename, subscriptions)
//     returns only after Bridge.write
//     (store.go) has committed it — SQLite in WAL mode with
//     synchronous(FULL), one writer connection serialised by writeMu —
//     and an appended body's blob is durable before that commit
//     (commitBlobs). The front end answers OK when the call returns.
//
// Every session sees every change.
//
//   - A Mailbox applies each change to its in-memory index and tells the
//     observers while still holding its lock, right after the commit, in
//     commit order: addBatch → arrivedLocked (Appended), Store
//     (FlagsChanged), expungedLocked (Expunged: the one path of EXPUNGE,
//     MOVE and DELETE of a mailbox). Mailbox.Watch takes its snapshot
//     under the same lock, so a session's snapshot and the events after
//     it fit together exactly (mailbox.go).
//
// # Lock order
//
// Take locks only in this order (a lock may be skipped, never taken
// against it):
//
//	User.mu → Mailbox.mu (two at once: by ascending MailboxID, transfer)
//	        → Bridge.writeMu → Bridge.mu
//	Bridge.writeMu → knownCache.mu → knownSet.mu   (dropAll, after a commit)
//	Mailbox.mu → knownCache.mu → knownSet.mu       (addBatch → known.stored)
//	Observer (called under Mailbox.mu) → imapfront's hub.mu → mailboxState.mu
//	Syncer.mu → feedLoop.mu; Syncer.mu → User.hooksMu
//
// Bridge.mu, feedRecords.mu, User.loginMu, userLoops.mu and User.hooksMu
// are leaves: nothing is locked or called into while one is held (User's
// hooks are read under hooksMu and called after it is released).
// Observers must not call back into the Mailbox they are told about.
//
// # The sync diff
//
// Plan (plan.go) is the whole diff, a pure function: listing, source-id
// map, policy, mode, time in; fetch, delete, would-delete, gone (foreign
// deletions) and forget (our deletions confirmed) out. Poll only carries
// it out. Its table test (TestPlan) runs every policy × mode × listing
// shape.
//
// # For the wiring: live changes and readiness (issue 13)
//
// A Feed carries its Mode (ModeServe, ModeShadow) and DeletePolicy. The
// config layer resolves a user's overrides into that user's []Feed and
// hands them over:
//
//   - Syncer.Add(u, feeds) at start (or at a passthrough user's first
//     login); Syncer.Update(ctx, u, feeds) on SIGHUP for a changed user
//     (policy, mode, intervals, credentials, a source added or dropped);
//     Syncer.Remove(ctx, user) for a user taken out of the config (polling
//     stops; mail and sessions stay: the IMAP side ends the sessions).
//     None of them touches another user's loops.
//   - The IMAP front calls User.RecordLogin(ctx, at) after each successful
//     LOGIN/AUTHENTICATE and User.RecordClient(ctx, ClientInfo{...}) when a
//     client sends ID.
//   - The status page serves Bridge.Status(ctx, now, quietPeriod) (quiet
//     period 0: DefaultQuietPeriod, 7 days) as {"generated_at": …,
//     "users": […]}: UserStatus and SourceStatus carry the JSON tags. The
//     drain chart of a feed is Bridge.HostHistory(ctx, user, source).
//     Readiness (status.go) is the verdict, a pure function of UserState.
package bridge
