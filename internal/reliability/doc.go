// Package reliability holds vbench's hardening suite: faults between the
// proxy and the upstream, crashes, a full disk, a slow and lossy network,
// load soaks, bad input to every command and security checks. It has no
// library code; the suite is its tests (TestReliability*), run with
// `make reliability` (short form, CI) or `make reliability-long`.
// docs/reliability.md lists every scenario, what it asserts and its figures.
package reliability
