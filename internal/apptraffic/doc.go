// Package apptraffic holds the app-traffic test of issue 9: real
// application traffic in, real traffic out. An application written with the
// official OpenAI Node SDK (internal/testdata/node/apptraffic.mjs) talks to
// vbsim through vbproxy; the capture is exported to a trace with vbanalyze
// export-trace and replayed with vbreplay against a second vbsim variant
// through a second capture, and the test checks that the replayed requests
// are the application's: same bodies (modulo the forced stream and usage
// options and the --model override), same order, the same arrival times
// within a tolerance, and the conversation's turns each sent only after the
// previous answer ended plus the recorded think time.
//
// Every step runs the real binaries (built into a temporary directory) on
// loopback. The test skips when node or the SDK (npm install in
// internal/testdata/node; .ci/run does it) is missing, and under -short.
package apptraffic
