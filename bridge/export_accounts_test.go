package bridge

// SetSchemaVersionForTest makes Open migrate stores to version v only (to
// write a store as an older binary did) until the returned func is called.
func SetSchemaVersionForTest(v int) (restore func()) {
	old := schema
	schema = schema[:v]
	return func() { schema = old }
}
