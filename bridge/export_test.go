package bridge

// SetMaxInList sets how many UIDs one "uid IN (…)" query names and returns
// a function that restores it.
func SetMaxInList(n int) (restore func()) {
	old := maxInList
	maxInList = n
	return func() { maxInList = old }
}

// SetBeforeBatch makes b call fn before committing each batch of fetched
// messages, with the batch's size (the crash campaign prints it).
func SetBeforeBatch(b *Bridge, fn func(n int)) { b.beforeBatch = fn }
