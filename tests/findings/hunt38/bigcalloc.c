// N threads alive at once, each callocs 2 blocks of 256 KiB (a big class)
// and writes one byte of each; RSS while they are held.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int N; static pthread_barrier_t bar;
static long rss(void){ FILE *f=fopen("/proc/self/status","r"); char l[256]; long v=0; while(fgets(l,sizeof l,f)) if(!strncmp(l,"VmRSS",5)) v=atol(l+6); fclose(f); return v; }
static long r0;
static void *w(void *a){
  void *x = malloc(16); free(x);
  pthread_barrier_wait(&bar);
  char *p = calloc(1, 250000), *q = calloc(1, 250000);
  p[0] = 1; q[0] = 1;
  pthread_barrier_wait(&bar);
  if (a == 0) printf("held: +%ld KB (%d x 2 x 256 KiB = %d KB)\n", rss() - r0, N, N * 512);
  pthread_barrier_wait(&bar);
  free(p); free(q);
  return NULL;
}
int main(int argc,char**argv){
  N = argc>1?atoi(argv[1]):48;
  pthread_t *t = malloc(N*sizeof(pthread_t));
  pthread_barrier_init(&bar,NULL,N);
  r0 = rss();
  for (long i=0;i<N;i++) pthread_create(&t[i],NULL,w,(void*)i);
  for (int i=0;i<N;i++) pthread_join(t[i],NULL);
  return 0;
}
