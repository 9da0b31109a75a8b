// An intrusive doubly linked list over any T with prev/next members (slabs
// on a heap's per-class lists, SuperSlabs on the slab pool's lists).
#ifndef HAKMEM_SUPERSLAB_INTRUSIVE_LIST_H_
#define HAKMEM_SUPERSLAB_INTRUSIVE_LIST_H_

namespace hakmem {

template <typename T>
struct IntrusiveList {
  T* head = nullptr;
  void Push(T* x) {
    x->prev = nullptr;
    x->next = head;
    if (head != nullptr) head->prev = x;
    head = x;
  }
  // At the end: O(length), for rare moves.
  void PushBack(T* x) {
    if (head == nullptr) {
      Push(x);
      return;
    }
    T* last = head;
    while (last->next != nullptr) last = last->next;
    x->prev = last;
    x->next = nullptr;
    last->next = x;
  }
  void Remove(T* x) {
    if (x->prev != nullptr) {
      x->prev->next = x->next;
    } else {
      head = x->next;
    }
    if (x->next != nullptr) x->next->prev = x->prev;
    x->prev = x->next = nullptr;
  }
};

}  // namespace hakmem

#endif  // HAKMEM_SUPERSLAB_INTRUSIVE_LIST_H_
