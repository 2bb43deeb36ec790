package bridge

import "errors"

// ErrOverQuota: the user's mailboxes hold as much as they may. A delivery
// refused with it is answered 552 5.2.2 over LMTP, NO [OVERQUOTA] over IMAP.
// (Defined here for the LMTP intake; the quota itself is a separate change.)
var ErrOverQuota = errors.New("over quota")
