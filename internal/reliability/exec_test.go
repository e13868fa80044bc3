package reliability

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/backends"
)

// TestReliabilityExecBackendArgv: the exec backend runs exactly the argv
// written in the study (placeholders replaced inside single arguments,
// no shell), so a model name full of shell syntax runs nothing.
func TestReliabilityExecBackendArgv(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	dir := t.TempDir()
	script := filepath.Join(dir, "serve.sh")
	argvFile := filepath.Join(dir, "argv.txt")
	os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+argvFile+"\nexec "+bin(t, "vbsim")+" --preset tiny --listen 127.0.0.1:$1\n"), 0o700)
	evil := "m; touch " + filepath.Join(dir, "PWNED") + " $(touch " + filepath.Join(dir, "PWNED2") + ") `touch " + filepath.Join(dir, "PWNED3") + "`"
	spec := backends.Spec{Kind: backends.KindExec, Model: evil, Command: []string{script, "{port}", "{model}", "--name={model}"}, HealthPaths: []string{"/health"}}
	b, err := backends.New(spec, backends.Options{StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	var log lockedBuf
	if err := b.Start(ctx, &log); err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	if err := b.WaitHealthy(ctx, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	got, _ := os.ReadFile(argvFile)
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 3 || lines[1] != evil || lines[2] != "--name="+evil {
		t.Errorf("the server got argv %q; want [PORT, %q, --name=...] as written in the study", lines, evil)
	}
	for _, f := range []string{"PWNED", "PWNED2", "PWNED3"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s exists: shell syntax in the model name was run", f)
		}
	}
	if argv := b.Command().Argv; argv[0] != script {
		t.Errorf("ran %q; want the study's command %q", argv[0], script)
	}
	t.Logf("exec backend ran %q with %d arguments, exactly as written; nothing from the model name was run", filepath.Base(script), len(lines))
}
