package capture

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const crashEnv = "VBENCH_CAPTURE_CRASH_CHILD"

// crashRecord is the deterministic record number id of the crash test.
func crashRecord(id uint64) *Record {
	r := &Record{
		ID:          id,
		Labels:      map[string]string{"variant": "crash"},
		Tags:        Tags{Index: int64(id)},
		Method:      "POST",
		Path:        "/v1/completions",
		Status:      200,
		Received:    1_700_000_000_000_000_000 + int64(id)*1000,
		End:         int64(id),
		Outcome:     OutcomeOK,
		RequestBody: bytes.Repeat([]byte{byte('a' + id%26)}, 200),
	}
	for i := range 20 {
		r.Chunks = append(r.Chunks, Chunk{At: int64(i) * 1e6, Size: 120, Events: 1, Content: 1, Tokens: 1, Usage: int32(i)})
	}
	return r
}

// crashRecordMode is crashRecord, except that in mode "vlog" every 7th
// record carries 2 KiB of incompressible bytes, so it is stored in
// Badger's value log.
func crashRecordMode(id uint64, mode string) *Record {
	r := crashRecord(id)
	if mode == "vlog" && id%7 == 0 {
		r.RequestBody = noise(id, 2048)
	}
	return r
}

// noise returns n pseudo-random bytes seeded by id.
func noise(id uint64, n int) []byte {
	b := make([]byte, n)
	x := id*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// crashChild starts this test binary as a writer that records until killed
// and appends the writer's FlushedID to ack every few milliseconds.
func crashChild(t *testing.T, dir, ack, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashEnv+"="+mode, "VBENCH_CRASH_DIR="+dir, "VBENCH_CRASH_ACK="+ack)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("child output:\n%s", out.String())
		}
	})
	return cmd
}

func lastAck(t *testing.T, path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		// The last line may be torn by the kill; the one before is whole.
		if i == len(lines)-1 && !strings.HasSuffix(string(b), "\n") {
			continue
		}
		if n, err := strconv.ParseUint(lines[i], 10, 64); err == nil {
			return n
		}
	}
	return 0
}

// TestCrashChild is the writer process of the crash tests; it runs only
// when started by crashChild.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashEnv) == "" {
		t.Skip("runs only as the child of the crash tests")
	}
	s, err := Open(os.Getenv("VBENCH_CRASH_DIR"), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := os.OpenFile(os.Getenv("VBENCH_CRASH_ACK"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	mode := os.Getenv(crashEnv)
	if mode == "vlog" {
		if err := s.PutMeta(Meta{Tool: "crash-child"}); err != nil {
			t.Fatal(err)
		}
	}
	w := s.Writer()
	stop := time.After(60 * time.Second)
	go func() {
		for {
			time.Sleep(2 * time.Millisecond)
			fmt.Fprintf(ack, "%d\n", w.Stats().FlushedID)
		}
	}()
	for {
		select {
		case <-stop:
			t.Fatal("not killed within 60 s")
		default:
		}
		r := crashRecordMode(w.NextID(), mode)
		for !w.Put(r) { // keep IDs gap-free: retry a dropped record
			time.Sleep(100 * time.Microsecond)
		}
		if mode == "vlog" && r.ID%64 == 0 {
			// Paced, so the capture the damage tests copy stays small.
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestCrashKill9 kills a writer under load with SIGKILL and reopens its
// capture: every record the writer had reported as committed (FlushedID,
// read through a side file) before the kill must be there, intact.
func TestCrashKill9(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("child")
	}
	for round := range 2 {
		dir := filepath.Join(t.TempDir(), "cap")
		ack := filepath.Join(t.TempDir(), "ack")
		cmd := crashChild(t, dir, ack, "1")
		target := uint64(10_000 + round*10_000)
		waitFor(t, func() bool { return lastAck(t, ack) >= target })
		time.Sleep(time.Duration(round*7) * time.Millisecond) // kill at varied points
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		acked := lastAck(t, ack)

		s := openTest(t, dir, Options{}) // read-write: recovers the log
		seen := make(map[uint64]bool)
		err := s.Records(func(r *Record) error {
			want := crashRecord(r.ID)
			if !bytes.Equal(r.RequestBody, want.RequestBody) || len(r.Chunks) != 20 || r.Received != want.Received {
				return fmt.Errorf("record %d corrupt", r.ID)
			}
			seen[r.ID] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for id := uint64(1); id <= acked; id++ {
			if !seen[id] {
				missing++
			}
		}
		t.Logf("round %d: child acknowledged %d committed records before kill -9; store holds %d; missing among acknowledged: %d", round, acked, len(seen), missing)
		if missing > 0 {
			t.Errorf("%d of %d acknowledged records lost", missing, acked)
		}
		// The store is usable: new IDs continue after the survivors.
		if id := s.Writer().NextID(); id <= uint64(len(seen)) {
			t.Errorf("NextID after recovery = %d, not after %d stored", id, len(seen))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
