// Command fakeserver stands in for vllm, transformers, vbsim or any server in
// the backends tests. It records its argv and VLLM_* / FAKE_* / CUDA_VISIBLE_DEVICES environment
// as JSON to $FAKE_RECORD, answers --version with $FAKE_VERSION, and serves
// /health and /v1/models on the --port it is given. $FAKE_MODE changes its
// behaviour: "never-ready" (never listens), "crash-after" (exits 3 after
// $FAKE_CRASH_AFTER), "stubborn" (ignores SIGTERM and starts a child that
// ignores it too), "child" (starts a child that ignores SIGTERM, then exits
// cleanly on SIGTERM itself, leaving the child to the group kill).
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "--version" {
		fmt.Println(os.Getenv("FAKE_VERSION"))
		return
	}
	if len(args) == 2 && args[0] == "-c" { // a python without the module asked for
		fmt.Fprintf(os.Stderr, "ModuleNotFoundError: No module named %q\n", strings.TrimPrefix(args[1], "import "))
		os.Exit(1)
	}
	if len(args) == 1 && args[0] == "--sleep-forever" {
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Hour)
		return
	}
	if rec := os.Getenv("FAKE_RECORD"); rec != "" {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "VLLM_") || strings.HasPrefix(k, "FAKE_") || k == "PYTHONPATH" || k == "CUDA_VISIBLE_DEVICES" {
				env[k] = v
			}
		}
		b, _ := json.Marshal(map[string]any{"argv": os.Args, "env": env})
		if err := os.WriteFile(rec, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	port, host := "", "127.0.0.1"
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--port":
			port = args[i+1]
		case "--host":
			host = args[i+1]
		}
	}
	fmt.Println("fake server: loading model")
	mode := os.Getenv("FAKE_MODE")
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if mode == "stubborn" || mode == "child" {
		child := exec.Command(os.Args[0], "--sleep-forever")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("fake server: child %d\n", child.Process.Pid)
	}
	if mode == "never-ready" {
		fmt.Println("fake server: still loading")
		<-term
		os.Exit(0)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake server:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"fake","object":"model"}]}`)
	})
	go http.Serve(ln, mux)
	fmt.Println("fake server: ready")
	if mode == "crash-after" {
		d, _ := time.ParseDuration(os.Getenv("FAKE_CRASH_AFTER"))
		time.Sleep(d)
		fmt.Println("fake server: CUDA out of memory (simulated crash)")
		os.Exit(3)
	}
	for range term {
		if mode == "stubborn" {
			fmt.Println("fake server: ignoring SIGTERM")
			continue
		}
		fmt.Println("fake server: shutting down")
		os.Exit(0)
	}
}
