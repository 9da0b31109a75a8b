// An intrusive doubly linked list over any T with two link members (prev
// and next by default): slabs on a heap's per-class lists and on the slab
// pool's idle list, SuperSlabs on the slab pool's lists.
#ifndef HAKMEM_SUPERSLAB_INTRUSIVE_LIST_H_
#define HAKMEM_SUPERSLAB_INTRUSIVE_LIST_H_

namespace hakmem {

template <typename T, T* T::*kPrev = &T::prev, T* T::*kNext = &T::next>
struct IntrusiveList {
  T* head = nullptr;
  T* tail = nullptr;
  void Push(T* x) {
    x->*kPrev = nullptr;
    x->*kNext = head;
    if (head != nullptr) {
      head->*kPrev = x;
    } else {
      tail = x;
    }
    head = x;
  }
  void PushBack(T* x) {
    x->*kNext = nullptr;
    x->*kPrev = tail;
    if (tail != nullptr) {
      tail->*kNext = x;
    } else {
      head = x;
    }
    tail = x;
  }
  void Remove(T* x) {
    if (x->*kPrev != nullptr) {
      (x->*kPrev)->*kNext = x->*kNext;
    } else {
      head = x->*kNext;
    }
    if (x->*kNext != nullptr) {
      (x->*kNext)->*kPrev = x->*kPrev;
    } else {
      tail = x->*kPrev;
    }
    x->*kPrev = x->*kNext = nullptr;
  }
};

}  // namespace hakmem

#endif  // HAKMEM_SUPERSLAB_INTRUSIVE_LIST_H_
