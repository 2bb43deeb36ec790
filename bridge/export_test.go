package bridge

// SetMaxInList sets how many UIDs one "uid IN (…)" query names and returns
// a function that restores it.
func SetMaxInList(n int) (restore func()) {
	old := maxInList
	maxInList = n
	return func() { maxInList = old }
}
