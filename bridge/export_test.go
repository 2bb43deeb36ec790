package bridge

// SetMaxInList sets how many UIDs one "uid IN (…)" query names and returns
// a function that restores it.
func SetMaxInList(n int) (restore func()) {
	old := maxInList
	maxInList = n
	return func() { maxInList = old }
}

// SetAfterBlobSync makes b call fn once the blobs of a commit are placed
// and durable, before the transaction that records them commits, with the
// number of blob files placed.
func SetAfterBlobSync(b *Bridge, fn func(n int)) { b.afterBlobSync = fn }
