//go:build !unix

package capture

import "os"

// dirUnlinked cannot tell a removed directory from a moved one here.
func dirUnlinked(f *os.File) (unlinked, ok bool) { return false, false }
