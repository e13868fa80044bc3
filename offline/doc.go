// Package offline holds no Go code: it is the home of the offline vLLM bundle's
// scripts (lock.sh, bundle.sh, host.sh), its lock files and prune list, and of the
// Go tests that run those scripts on a small fake payload (split, verify,
// assemble, install) and check make setup-gpu's argument handling with a fake uv.
// See docs/offline.md.
package offline
