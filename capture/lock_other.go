//go:build !unix

package capture

import "errors"

var errLocked = errors.New("locked by a writer")

// lockShared is a no-op where flock does not exist.
func lockShared(dir string) (release func(), err error) { return func() {}, nil }
