package sim

// The scheduler is the engine's pure core: no clock, no goroutines. The
// engine loop (engine.go) calls schedule to build a step, sleeps the step's
// duration, then calls commit. Tests drive it directly with a virtual clock.
//
// Accounting invariants (checked by the tests after every step):
//   - a sequence that has generated g tokens and is scheduled in a step
//     holds KV for prompt+g tokens after the step (the step computes the
//     tokens it lacks: the whole context for a prefill or a recompute after
//     preemption, one token for a decode) and emits token g+1;
//   - paged: blocks held = ceil(context/BlockSize) per running sequence, and
//     the sum never exceeds the cache's blocks;
//   - contiguous: a running sequence holds its reservation, fixed at
//     admission and at least prompt+output−1, and the sum of reservations
//     never exceeds KVTokens; the contiguous policy never preempts.

// seq is the scheduler's view of one request.
type seq struct {
	id        uint64
	prompt    int // prompt tokens
	maxTokens int // requested max output tokens
	target    int // tokens this request will generate (EOS point or max)

	generated int // output tokens emitted so far
	computed  int // tokens whose KV is in the cache (0 while waiting)
	blocks    int // paged: blocks held
	reserved  int // contiguous: tokens reserved
	admitted  uint64
	aborted   bool

	// set by schedule for the current step
	prefill bool

	pub *Seq // the handle the server reads; nil in scheduler tests
}

// context returns the tokens whose KV a step must hold to emit the next token.
func (s *seq) context() int { return s.prompt + s.generated }

// step is one scheduled iteration.
type step struct {
	seqs          []*seq // scheduled sequences, decodes first then prefills
	prefillTokens int
	decodeSeqs    int
	contextTokens int
	preempted     int
}

// scheduler holds the waiting queue, the running batch and the KV memory.
type scheduler struct {
	cfg         Config
	totalBlocks int
	freeBlocks  int // paged
	freeTokens  int // contiguous
	running     []*seq
	waiting     []*seq // FCFS; preempted sequences go back to the front
	admitCount  uint64
	preemptions uint64
	finished    []*seq // filled by commit, reused

	cur step
}

func newScheduler(cfg Config) *scheduler {
	s := &scheduler{cfg: cfg}
	s.totalBlocks = cfg.KVTokens / cfg.BlockSize
	s.freeBlocks = s.totalBlocks
	s.freeTokens = cfg.KVTokens
	return s
}

func (s *scheduler) paged() bool { return s.cfg.Policy == PolicyPaged }

func (s *scheduler) blocksFor(tokens int) int {
	return (tokens + s.cfg.BlockSize - 1) / s.cfg.BlockSize
}

// reservation returns the contiguous slab a request reserves at admission.
func (s *scheduler) reservation(q *seq) int {
	need := q.prompt + q.target // covers prompt+target−1 with one spare
	var r int
	switch s.cfg.Reservation {
	case ReserveMax:
		r = s.cfg.MaxModelLen
	case ReservePow2:
		r = q.prompt + nextPow2(q.maxTokens)
		if r > s.cfg.MaxModelLen {
			r = s.cfg.MaxModelLen
		}
	default: // oracle
		r = need
	}
	return max(r, need)
}

// fits reports whether a request can ever run in this cache; the server
// rejects the ones that cannot instead of letting them wait forever.
func (s *scheduler) fits(prompt, maxTokens, target int) bool {
	q := &seq{prompt: prompt, maxTokens: maxTokens, target: target}
	if s.paged() {
		return s.blocksFor(prompt+target) <= s.totalBlocks
	}
	return s.reservation(q) <= s.cfg.KVTokens
}

func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// add queues a new request.
func (s *scheduler) add(q *seq) { s.waiting = append(s.waiting, q) }

// free returns q's memory.
func (s *scheduler) free(q *seq) {
	s.freeBlocks += q.blocks
	s.freeTokens += q.reserved
	q.blocks, q.reserved, q.computed = 0, 0, 0
}

// dropAborted removes aborted sequences from both queues and frees them.
func (s *scheduler) dropAborted() {
	keep := s.running[:0]
	for _, q := range s.running {
		if q.aborted {
			s.free(q)
			continue
		}
		keep = append(keep, q)
	}
	clear(s.running[len(keep):])
	s.running = keep
	w := s.waiting[:0]
	for _, q := range s.waiting {
		if !q.aborted {
			w = append(w, q)
		}
	}
	clear(s.waiting[len(w):])
	s.waiting = w
}

// preempt frees q (recompute) and puts it back at the front of the queue.
func (s *scheduler) preempt(q *seq) {
	s.free(q)
	s.waiting = append(s.waiting, nil)
	copy(s.waiting[1:], s.waiting)
	s.waiting[0] = q
	s.preemptions++
	s.cur.preempted++
}

// schedule builds the next step. It returns nil when there is nothing to do.
func (s *scheduler) schedule() *step {
	s.dropAborted()
	st := &s.cur
	st.seqs = st.seqs[:0]
	st.prefillTokens, st.decodeSeqs, st.contextTokens, st.preempted = 0, 0, 0, 0
	budget := s.cfg.MaxBatchTokens

	// 1. Running sequences decode one token each; paged memory grows on
	// demand, preempting the newest sequences when it runs out.
	if s.paged() {
		for i := 0; i < len(s.running); i++ {
			q := s.running[i]
			need := s.blocksFor(q.context()) - q.blocks
			for need > s.freeBlocks {
				last := len(s.running) - 1
				victim := s.running[last]
				s.running = s.running[:last]
				s.preempt(victim)
				if victim == q {
					break
				}
			}
			if i >= len(s.running) { // q itself was preempted
				break
			}
			s.freeBlocks -= need
			q.blocks += need
		}
	}
	for _, q := range s.running {
		q.prefill = false
		st.seqs = append(st.seqs, q)
		st.decodeSeqs++
		st.contextTokens += q.context()
		budget--
	}

	// 2. Admit waiting sequences FCFS while the batch, the token budget
	// and the memory allow; the first that does not fit blocks the rest.
	// Like vLLM, nothing new is admitted in a step that preempted.
	for len(s.waiting) > 0 && st.preempted == 0 && len(s.running) < s.cfg.MaxNumSeqs {
		q := s.waiting[0]
		ctx := q.context()
		// A prefill larger than the remaining budget waits, unless it
		// would be the step's first prefill (so long prompts never starve).
		if ctx > budget && st.prefillTokens > 0 {
			break
		}
		if s.paged() {
			need := s.blocksFor(ctx)
			if need > s.freeBlocks {
				break
			}
			s.freeBlocks -= need
			q.blocks = need
		} else {
			r := s.reservation(q)
			if r > s.freeTokens {
				break
			}
			s.freeTokens -= r
			q.reserved = r
		}
		s.waiting[0] = nil
		s.waiting = s.waiting[1:]
		s.admitCount++
		q.admitted = s.admitCount
		q.prefill = true
		s.running = append(s.running, q)
		st.seqs = append(st.seqs, q)
		st.prefillTokens += ctx - q.computed
		st.contextTokens += ctx
		budget -= ctx
	}
	if len(st.seqs) == 0 {
		return nil
	}
	return st
}

// commit applies a step: every scheduled sequence emits one token; those
// that reach their target finish and free their memory. It returns the
// finished sequences (valid until the next commit).
func (s *scheduler) commit(st *step) []*seq {
	s.finished = s.finished[:0]
	for _, q := range st.seqs {
		q.computed = q.context()
		q.generated++
		if q.generated >= q.target {
			s.finished = append(s.finished, q)
		}
	}
	if len(s.finished) > 0 {
		keep := s.running[:0]
		for _, q := range s.running {
			if q.generated >= q.target {
				s.free(q)
				continue
			}
			keep = append(keep, q)
		}
		clear(s.running[len(keep):])
		s.running = keep
	}
	return s.finished
}

// usage returns the KV tokens in use (blocks × size for paged, reserved
// tokens for contiguous) and the tokens actually holding state.
func (s *scheduler) usage() (used, stored int) {
	for _, q := range s.running {
		stored += q.computed
	}
	if s.paged() {
		return (s.totalBlocks - s.freeBlocks) * s.cfg.BlockSize, stored
	}
	return s.cfg.KVTokens - s.freeTokens, stored
}

// capacity returns the usable KV tokens.
func (s *scheduler) capacity() int {
	if s.paged() {
		return s.totalBlocks * s.cfg.BlockSize
	}
	return s.cfg.KVTokens
}
