package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// workerEnv marks a child process as a worker: it then speaks the worker
// protocol on stdin and stdout instead of parsing flags.
const workerEnv = "SSEBENCH_WORKER"

// workerMsg is one line of the worker protocol, JSON, in either direction:
// the master sends Op (and Cfg, Expect, Timeout); the worker answers
// with N, Users or Result, or Err. A targeted run's expectation holds a
// count per user, so lines may be long (maxMsg).
type workerMsg struct {
	Op      string        `json:"op,omitempty"`
	Cfg     *workerConfig `json:"cfg,omitempty"`
	Expect  *expectation  `json:"expect,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	N       int64         `json:"n,omitempty"`
	Users   []uint64      `json:"users,omitempty"`
	Result  *workerResult `json:"result,omitempty"`
	Err     string        `json:"err,omitempty"`
}

// maxMsg bounds one line of the worker protocol.
const maxMsg = 64 << 20

// remoteWorker runs a worker in a child process, so that one process never
// holds more connections than its file descriptor limit allows.
type remoteWorker struct {
	cfg workerConfig
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startRemote starts a child worker: this same executable with workerEnv
// set. The child exits when its stdin closes, so it cannot outlive us.
func startRemote(cfg workerConfig) (*remoteWorker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stderr = os.Stderr
	in, out, err := startPiped(cmd)
	if err != nil {
		return nil, err
	}
	return &remoteWorker{cfg: cfg, cmd: cmd, in: in, out: out}, nil
}

// call sends one request and reads its answer.
func (r *remoteWorker) call(m workerMsg) (workerMsg, error) {
	b, _ := json.Marshal(m)
	if _, err := r.in.Write(append(b, '\n')); err != nil {
		return workerMsg{}, fmt.Errorf("worker %d: %w", r.cmd.Process.Pid, err)
	}
	if !r.out.Scan() {
		err := r.out.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return workerMsg{}, fmt.Errorf("worker %d: %w", r.cmd.Process.Pid, err)
	}
	var ans workerMsg
	if err := json.Unmarshal(r.out.Bytes(), &ans); err != nil {
		return ans, err
	}
	if ans.Err != "" {
		return ans, errors.New(ans.Err)
	}
	return ans, nil
}

func (r *remoteWorker) Connect(context.Context) ([]uint64, error) {
	ans, err := r.call(workerMsg{Op: "connect", Cfg: &r.cfg})
	return ans.Users, err
}

func (r *remoteWorker) Mark() error {
	_, err := r.call(workerMsg{Op: "mark"})
	return err
}

func (r *remoteWorker) Drain(exp expectation, timeout time.Duration) (int64, error) {
	ans, err := r.call(workerMsg{Op: "drain", Expect: &exp, Timeout: timeout})
	return ans.N, err
}

// Close collects the result and waits for the child to exit.
func (r *remoteWorker) Close() (workerResult, error) {
	ans, err := r.call(workerMsg{Op: "close"})
	r.in.Close()
	werr := r.cmd.Wait()
	if err != nil {
		return workerResult{}, err
	}
	if ans.Result == nil {
		return workerResult{}, fmt.Errorf("worker: no result (%v)", werr)
	}
	return *ans.Result, nil
}

// abort kills a child that the master gives up on.
func (r *remoteWorker) abort() {
	r.in.Close()
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}

// workerMain serves the worker protocol until stdin closes.
func workerMain(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxMsg)
	enc := json.NewEncoder(out)
	var w *worker
	defer func() {
		if w != nil && !w.closing.Load() {
			w.Close()
		}
	}()
	for sc.Scan() {
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return err
		}
		var ans workerMsg
		var err error
		switch {
		case m.Op == "connect" && m.Cfg != nil && w == nil:
			w = newWorker(*m.Cfg)
			ans.Users, err = w.Connect(ctx)
		case w == nil:
			err = fmt.Errorf("%s before connect", m.Op)
		case m.Op == "mark":
			err = w.Mark()
		case m.Op == "drain" && m.Expect != nil:
			ans.N, err = w.Drain(*m.Expect, m.Timeout)
		case m.Op == "close":
			var res workerResult
			res, err = w.Close()
			ans.Result = &res
		default:
			err = fmt.Errorf("unknown op %q", m.Op)
		}
		if err != nil {
			ans.Err = err.Error()
		}
		if err := enc.Encode(ans); err != nil {
			return err
		}
		if m.Op == "close" {
			return nil
		}
	}
	return sc.Err()
}
