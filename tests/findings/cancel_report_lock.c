// gcc -O2 -pthread tests/findings/cancel_report_lock.c -o /tmp/cancel_report_lock
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so timeout 10 /tmp/cancel_report_lock; echo rc=$?
// A thread with a cancel pending double-frees (tests/misuse_test, ADoubleFreeIsReportedWhileACancellationIsPending), but the double free is found by a bin flush that holds the heap pool's
// lock (the blocks belong to an exited thread's pooled heap): the cancelled report leaves the
// lock held, and the next thread's first malloc waits for it forever. glibc aborts at once.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 300 };
static void* blocks[N];
static atomic_int phase;

static void* producer(void* arg) {  // allocates, then exits: its heap goes to the pool
  (void)arg;
  for (int i = 0; i < N; i++) blocks[i] = malloc(64);
  return NULL;
}

static void* victim(void* arg) {
  (void)arg;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
  void* volatile own = malloc(64);  // a heap of its own first
  free(own);
  atomic_store(&phase, 1);
  while (atomic_load(&phase) != 2) {
  }
  pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);  // a cancel request is pending
  free(blocks[0]);
  free(blocks[1]);
  free(blocks[0]);  // double free, not the bin's top: caught by the flush below
  for (int i = 2; i < N; i++) free(blocks[i]);  // the bin overflows: flushed under the pool lock
  return NULL;
}

static void* late(void* arg) {
  void* volatile p = malloc(100);  // a new thread's first malloc takes the pool lock
  free(p);
  return arg;
}

int main(void) {
  pthread_t v, p, l;
  pthread_create(&v, NULL, victim, NULL);
  while (atomic_load(&phase) != 1) {
  }
  pthread_create(&p, NULL, producer, NULL);
  pthread_join(p, NULL);
  pthread_cancel(v);
  atomic_store(&phase, 2);
  void* result;
  pthread_join(v, &result);
  printf("victim %s, no report\n", result == PTHREAD_CANCELED ? "cancelled" : "returned");
  fflush(stdout);
  pthread_create(&l, NULL, late, NULL);
  pthread_join(l, NULL);
  printf("a new thread allocated\n");
  return 0;
}
