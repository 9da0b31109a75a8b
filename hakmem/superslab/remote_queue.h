// Lock-free multi-producer, single-consumer stack of freed blocks.
//
// Any thread pushes a block it freed but does not own; the owning thread takes
// the whole stack at once (one atomic exchange) and frees the blocks locally.
// Taking everything at once sidesteps ABA: the consumer never pops a single
// node while producers push.
#ifndef HAKMEM_SUPERSLAB_REMOTE_QUEUE_H_
#define HAKMEM_SUPERSLAB_REMOTE_QUEUE_H_

#include <atomic>

#include "hakmem/superslab/superslab.h"

namespace hakmem {

class RemoteQueue {
 public:
  void Push(Block* block) { PushChain(block, block); }

  // Pushes the chain first -> ... -> last (linked through Block::next) with
  // one atomic operation: remote frees are batched per owner.
  // (seq_cst, the same instruction as release on x86: a pusher's later
  // seq_cst load of the owner's state and a pooling's seq_cst store of that
  // state and its EmptyOrdered() see at least one of the two writes; see
  // g_pooled_queue_pending in hakmem/tiny/heap.cc.)
  void PushChain(Block* first, Block* last) {
    Block* head = head_.load(std::memory_order_relaxed);
    do {
      last->next = head;
    } while (!head_.compare_exchange_weak(head, first, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  }

  bool Empty() const {
    return head_.load(std::memory_order_relaxed) == nullptr;
  }
  // Empty(), in the single order of seq_cst operations (see PushChain).
  bool EmptyOrdered() const {
    return head_.load(std::memory_order_seq_cst) == nullptr;
  }

  // Every block pushed so far, newest first, or nullptr.
  Block* TakeAll() {
    if (Empty()) return nullptr;
    return head_.exchange(nullptr, std::memory_order_acquire);
  }

 private:
  std::atomic<Block*> head_{nullptr};
};

}  // namespace hakmem

#endif  // HAKMEM_SUPERSLAB_REMOTE_QUEUE_H_
