// 38 idle threads with heaps (>= 32 active), then 2 threads that each
// malloc a 16 B counter and increment it 200M times, on the 2 cores.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static long ITER; static pthread_barrier_t bar2; static int idle_go;
static void *idle(void *a){ (void)a; void *x = malloc(100); free(x); while(!__atomic_load_n(&idle_go,0)) usleep(1000); return NULL; }
static volatile long *ctr[2];
static void *w(void *a){
  long id=(long)a;
  volatile long *c = malloc(16); *c = 0; ctr[id]=c;
  pthread_barrier_wait(&bar2);
  for (long i=0;i<ITER;i++) (*c)++;
  free((void*)c);
  return NULL;
}
int main(int argc,char**argv){
  ITER = atol(argv[1]);
  pthread_t t[40];
  for (long i=0;i<38;i++) pthread_create(&t[i],NULL,idle,NULL);
  usleep(100000);
  pthread_barrier_init(&bar2,NULL,2);
  struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a);
  pthread_create(&t[38],NULL,w,(void*)0); pthread_create(&t[39],NULL,w,(void*)1);
  pthread_join(t[38],NULL); pthread_join(t[39],NULL);
  clock_gettime(CLOCK_MONOTONIC,&b);
  printf("counters %p %p: %.3f s\n", (void*)ctr[0], (void*)ctr[1], (b.tv_sec-a.tv_sec)+(b.tv_nsec-a.tv_nsec)/1e9);
  __atomic_store_n(&idle_go,1,0);
  for (int i=0;i<38;i++) pthread_join(t[i],NULL);
}
